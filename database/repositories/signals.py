"""Strategy signals: idempotent writes on (source, exchange, symbol, timeframe, candle_time) and
the reads the dashboard needs.

Writing the same signal twice leaves one row; writing a different verdict for the same key (the
signal engine's correction after a revised candle) replaces the row: last write wins. A source
``bot:<name>`` is linked to that bot's row (``bot_id``) when the bot exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, Connection, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from config.domain import SignalEvent, SignalType, Timeframe, datetime_to_ms, ms_to_datetime
from database.models import Bot, SignalRow

_KEY = ["source", "exchange", "symbol", "timeframe", "candle_time"]
_UPDATED = ("strategy", "signal_type", "strength", "reason", "price", "params", "bot_id")
BOT_SOURCE_PREFIX = "bot:"


def _dialect(session: Session | Connection) -> str:
    conn = session.connection() if isinstance(session, Session) else session
    return conn.dialect.name


def _bot_ids(session: Session, sources: Iterable[str]) -> dict[str, int]:
    names = {s[len(BOT_SOURCE_PREFIX):] for s in sources if s.startswith(BOT_SOURCE_PREFIX)}
    if not names:
        return {}
    rows = session.execute(select(Bot.name, Bot.id).where(Bot.name.in_(names)))
    return {f"{BOT_SOURCE_PREFIX}{name}": bot_id for name, bot_id in rows}


def upsert_signals(session: Session, events: Sequence[SignalEvent]) -> int:
    """Store signals; one row per (source, exchange, symbol, timeframe, candle_time), last write wins.
    Returns the number of distinct keys written."""
    if not events:
        return 0
    bot_ids = _bot_ids(session, (e.source for e in events))
    latest: dict[tuple[str, str, str, str, int], SignalEvent] = {}
    for e in events:
        latest[(e.source, e.exchange, e.symbol, e.timeframe.value, e.candle_time_ms)] = e
    rows = [
        {
            "source": e.source, "strategy": e.strategy, "exchange": e.exchange, "symbol": e.symbol,
            "timeframe": e.timeframe.value, "candle_time": ms_to_datetime(e.candle_time_ms),
            "signal_type": e.signal_type.value, "strength": e.strength, "reason": e.reason,
            "price": e.price, "params": dict(e.params), "bot_id": bot_ids.get(e.source),
        }
        for e in latest.values()
    ]
    ins = pg_insert(SignalRow) if _dialect(session) == "postgresql" else sqlite_insert(SignalRow)
    stmt = ins.on_conflict_do_update(index_elements=_KEY, set_={c: ins.excluded[c] for c in _UPDATED})
    session.execute(stmt, rows)
    return len(rows)


def row_to_event(row: SignalRow) -> SignalEvent:
    return SignalEvent(
        source=row.source, strategy=row.strategy, exchange=row.exchange, symbol=row.symbol,
        timeframe=Timeframe(row.timeframe), candle_time_ms=datetime_to_ms(row.candle_time),
        signal_type=SignalType(row.signal_type), strength=row.strength, reason=row.reason,
        price=row.price, params=dict(row.params or {}),
    )


def _conditions(
    exchange: str | None, symbol: str | None, timeframe: Timeframe | None, source: str | None,
    signal_types: Sequence[SignalType] | None, start_ms: int | None, end_ms: int | None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if exchange:
        conditions.append(SignalRow.exchange == exchange)
    if symbol:
        conditions.append(SignalRow.symbol == symbol)
    if timeframe:
        conditions.append(SignalRow.timeframe == Timeframe(timeframe).value)
    if source:
        conditions.append(SignalRow.source == source)
    if signal_types:
        conditions.append(SignalRow.signal_type.in_([SignalType(t).value for t in signal_types]))
    if start_ms is not None:
        conditions.append(SignalRow.candle_time >= ms_to_datetime(start_ms))
    if end_ms is not None:
        conditions.append(SignalRow.candle_time < ms_to_datetime(end_ms))
    return conditions


def signals_in_range(
    session: Session, exchange: str, symbol: str, timeframe: Timeframe,
    start_ms: int | None = None, end_ms: int | None = None, *, source: str | None = None,
    signal_types: Sequence[SignalType] | None = None,
) -> list[SignalEvent]:
    """Signals of one market with candle time in ``[start_ms, end_ms)``, ascending (chart markers)."""
    where = _conditions(exchange, symbol, timeframe, source, signal_types, start_ms, end_ms)
    rows = session.scalars(select(SignalRow).where(*where).order_by(SignalRow.candle_time, SignalRow.source))
    return [row_to_event(r) for r in rows]


def recent_signals(
    session: Session, limit: int = 100, *, exchange: str | None = None, symbol: str | None = None,
    timeframe: Timeframe | None = None, source: str | None = None,
    signal_types: Sequence[SignalType] | None = (SignalType.BUY, SignalType.SELL),
) -> list[SignalEvent]:
    """The latest signals, newest first (BUY and SELL only unless ``signal_types`` says otherwise)."""
    where = _conditions(exchange, symbol, timeframe, source, signal_types, None, None)
    rows = session.scalars(select(SignalRow).where(*where)
                           .order_by(SignalRow.candle_time.desc(), SignalRow.id.desc()).limit(limit))
    return [row_to_event(r) for r in rows]


def count_signals(
    session: Session, *, exchange: str | None = None, symbol: str | None = None,
    timeframe: Timeframe | None = None, source: str | None = None,
    signal_types: Sequence[SignalType] | None = None,
) -> int:
    where = _conditions(exchange, symbol, timeframe, source, signal_types, None, None)
    return int(session.scalar(select(func.count()).select_from(SignalRow).where(*where)) or 0)


def list_signal_sources(session: Session) -> list[tuple[str, str]]:
    """Distinct (source, strategy) pairs that have signals, sorted."""
    rows = session.execute(select(SignalRow.source, SignalRow.strategy).distinct()
                           .order_by(SignalRow.source, SignalRow.strategy))
    return [(r[0], r[1]) for r in rows]
