"""Paper-trading bots: the bot rows, their orders, fills, positions, equity snapshots and events.

The bot manager writes everything one candle did to a set of bots in one transaction
(:func:`record_candle`), together with each bot's ``last_candle_time`` and state, which is what
makes a restart resume exactly where the last commit left off. The service layer and the
dashboard use the read functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from config.domain import ms_to_datetime
from database.models import Bot, BotEvent, EquitySnapshot, Fill, Order, Position, SignalRow, utc_now


@dataclass(frozen=True, slots=True)
class OrderRecord:
    client_order_id: str
    symbol: str
    side: str
    order_type: str
    quantity: Decimal
    status: str
    reason: str = ""
    limit_price: float | None = None
    stop_price: float | None = None
    candle_time_ms: int | None = None


@dataclass(frozen=True, slots=True)
class FillRecord:
    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    slippage_bps: float
    realised_pnl: Decimal
    position_after: Decimal
    balance_after: Decimal
    liquidity: str
    reason: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class EventRecord:
    kind: str
    message: str
    level: str = "INFO"
    data: dict[str, Any] = field(default_factory=dict)
    candle_time_ms: int | None = None


@dataclass(slots=True)
class BotCandleWrite:
    """What one candle did to one bot. ``position`` holds the open position row's values (with
    ``"id"`` when the row exists) or None; ``closed_positions`` the positions closed this candle."""

    bot_id: int
    candle_time_ms: int
    balance: Decimal
    equity: Decimal
    fees_paid: Decimal
    realised_pnl: Decimal
    peak_equity: Decimal
    state: dict[str, Any]
    unrealised_pnl: Decimal
    position_value: Decimal
    drawdown: float
    new_orders: list[OrderRecord] = field(default_factory=list)
    order_status: dict[str, str] = field(default_factory=dict)  # client_order_id -> new status
    fills: list[FillRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    closed_positions: list[dict[str, Any]] = field(default_factory=list)
    position: dict[str, Any] | None = None
    write_position: bool = False
    status: str | None = None  # set when the manager changes it (halted)
    status_reason: str | None = None
    snapshot: bool = True  # False for a write between candles (e.g. the portfolio kill switch)


# ---------------------------------------------------------------------------- bots


def create_bot(session: Session, *, name: str, exchange: str, symbol: str, timeframe: str, strategy: str,
               config: dict[str, Any], starting_balance: Decimal, status: str = "created",
               config_path: str | None = None, last_candle_time_ms: int | None = None) -> Bot:
    bot = Bot(name=name, exchange=exchange, symbol=symbol, timeframe=timeframe, strategy=strategy,
              config=config, config_path=config_path, starting_balance=starting_balance,
              balance=starting_balance, equity=starting_balance, peak_equity=starting_balance,
              fees_paid=Decimal(0), realised_pnl=Decimal(0), status=status, state={},
              last_candle_time=None if last_candle_time_ms is None else ms_to_datetime(last_candle_time_ms))
    session.add(bot)
    session.flush()
    return bot


def get_bot(session: Session, name: str) -> Bot | None:
    return session.scalar(select(Bot).where(Bot.name == name))


def list_bots(session: Session, statuses: Iterable[str] | None = None) -> list[Bot]:
    query = select(Bot).order_by(Bot.name)
    if statuses is not None:
        query = query.where(Bot.status.in_(list(statuses)))
    return list(session.scalars(query))


def bot_statuses(session: Session) -> dict[int, tuple[str, str, datetime]]:
    """``{bot id: (name, status, updated_at)}`` for every bot: the manager's cheap control poll."""
    rows = session.execute(select(Bot.id, Bot.name, Bot.status, Bot.updated_at))
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def set_status(session: Session, name: str, status: str, reason: str | None = None,
               last_candle_time_ms: int | None = None) -> bool:
    """Set the desired status (and optionally move ``last_candle_time`` forward). False if no such bot."""
    values: dict[str, Any] = {"status": status, "status_reason": reason}
    if last_candle_time_ms is not None:
        values["last_candle_time"] = ms_to_datetime(last_candle_time_ms)
    result = cast(CursorResult[Any], session.execute(update(Bot).where(Bot.name == name).values(**values)))
    return bool(result.rowcount)


def set_state(session: Session, name: str, state: dict[str, Any], peak_equity: Decimal) -> None:
    """Replace a stopped or halted bot's stored state (the manager owns it while the bot runs)."""
    session.execute(update(Bot).where(Bot.name == name).values(state=state, peak_equity=peak_equity))


def update_config(session: Session, name: str, config: dict[str, Any], strategy: str,
                  config_path: str | None) -> bool:
    result = cast(CursorResult[Any], session.execute(
        update(Bot).where(Bot.name == name).values(config=config, strategy=strategy, config_path=config_path)))
    return bool(result.rowcount)


def delete_bot(session: Session, name: str) -> bool:
    """Delete a bot and (by cascade) its orders, fills, positions, snapshots, events and signals."""
    bot_id = session.scalar(select(Bot.id).where(Bot.name == name))
    if bot_id is None:
        return False
    for model in (Fill, Order, Position, EquitySnapshot, BotEvent, SignalRow):
        session.execute(delete(model).where(model.bot_id == bot_id))
    session.execute(delete(Bot).where(Bot.id == bot_id))
    return True


def add_event(session: Session, bot_id: int, kind: str, message: str, *, level: str = "INFO",
              data: dict[str, Any] | None = None, candle_time_ms: int | None = None) -> None:
    session.add(BotEvent(bot_id=bot_id, kind=kind, message=message, level=level, data=data or {},
                         candle_time=None if candle_time_ms is None else ms_to_datetime(candle_time_ms)))


# ---------------------------------------------------------------------------- the manager's write


def record_candle(session: Session, writes: Sequence[BotCandleWrite]) -> dict[int, int | None]:
    """Store what one candle did to each bot (bots deleted meanwhile are skipped).

    Returns ``{bot id: open position row id or None}`` for the bots written.
    """
    if not writes:
        return {}
    alive = _update_bots(session, writes)
    writes = [w for w in writes if w.bot_id in alive]
    if not writes:
        return {}
    new_orders = [(w.bot_id, o) for w in writes for o in w.new_orders]
    if new_orders:
        session.execute(insert(Order), [
            {"bot_id": bot_id, "client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side,
             "order_type": o.order_type, "quantity": o.quantity, "limit_price": o.limit_price,
             "stop_price": o.stop_price, "status": o.status, "reason": o.reason,
             "candle_time": None if o.candle_time_ms is None else ms_to_datetime(o.candle_time_ms)}
            for bot_id, o in new_orders
        ])
    for w in writes:
        for client_id, status in w.order_status.items():
            session.execute(update(Order).where(Order.client_order_id == client_id).values(status=status))
    fill_rows = [(w.bot_id, f) for w in writes for f in w.fills]
    if fill_rows:
        ids = dict(session.execute(select(Order.client_order_id, Order.id).where(
            Order.client_order_id.in_([f.client_order_id for _, f in fill_rows]))).all())
        session.execute(insert(Fill), [
            {"order_id": ids[f.client_order_id], "bot_id": bot_id, "symbol": f.symbol, "side": f.side,
             "quantity": f.quantity, "price": f.price, "fee": f.fee, "slippage_bps": f.slippage_bps,
             "realised_pnl": f.realised_pnl, "position_after": f.position_after,
             "balance_after": f.balance_after, "liquidity": f.liquidity, "reason": f.reason,
             "ts": ms_to_datetime(f.ts_ms)}
            for bot_id, f in fill_rows
        ])
    position_ids: dict[int, int | None] = {}
    for w in writes:
        for closed in w.closed_positions:
            _save_position(session, w.bot_id, closed)
        if w.position is not None and w.write_position:
            position_ids[w.bot_id] = _save_position(session, w.bot_id, w.position)
        else:
            position_ids[w.bot_id] = None if w.position is None else w.position.get("id")
    events = [(w.bot_id, e) for w in writes for e in w.events]
    if events:
        session.execute(insert(BotEvent), [
            {"bot_id": bot_id, "level": e.level, "kind": e.kind,
             "message": e.message, "data": e.data,
             "candle_time": None if e.candle_time_ms is None else ms_to_datetime(e.candle_time_ms)}
            for bot_id, e in events
        ])
    snapshots = [
        {"bot_id": w.bot_id, "ts": ms_to_datetime(w.candle_time_ms), "equity": w.equity, "balance": w.balance,
         "position_value": w.position_value, "unrealised_pnl": w.unrealised_pnl, "drawdown": w.drawdown}
        for w in writes if w.snapshot
    ]
    if snapshots:
        session.execute(insert(EquitySnapshot), snapshots)
    return position_ids


_PG_UPDATE = (
    "UPDATE bots SET balance = v.balance, equity = v.equity, fees_paid = v.fees_paid, "
    "realised_pnl = v.realised_pnl, peak_equity = v.peak_equity, state = v.state, "
    "last_candle_time = v.last_candle_time, updated_at = v.updated_at "
    "FROM (VALUES %s) AS v(id, balance, equity, fees_paid, realised_pnl, peak_equity, state, last_candle_time, "
    "updated_at) WHERE bots.id = v.id RETURNING bots.id"
)
_PG_TEMPLATE = ("(%s::bigint, %s::numeric, %s::numeric, %s::numeric, %s::numeric, %s::numeric, %s::json, "
                "%s::timestamptz, %s::timestamptz)")


def _update_bots(session: Session, writes: Sequence[BotCandleWrite]) -> set[int]:
    """Each bot's money, state and ``last_candle_time``; returns the ids of the bots that still exist.

    PostgreSQL: one ``UPDATE … FROM (VALUES …) RETURNING`` for all bots (one round trip; it also locks
    the rows, so a concurrent delete waits for this transaction). SQLite: ``executemany``.
    """
    now = utc_now()
    rows = [(w.bot_id, w.balance, w.equity, w.fees_paid, w.realised_pnl, w.peak_equity, w.state,
             ms_to_datetime(w.candle_time_ms), now) for w in writes]
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        from psycopg2.extras import Json, execute_values

        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        try:
            found = execute_values(cur, _PG_UPDATE, [(*r[:6], Json(r[6]), *r[7:]) for r in rows],
                                   template=_PG_TEMPLATE, page_size=1000, fetch=True)
        finally:
            cur.close()
        alive = {int(r[0]) for r in found}
    else:
        alive = set(session.scalars(select(Bot.id).where(Bot.id.in_([w.bot_id for w in writes]))))
        table = cast(Table, Bot.__table__)
        names = ("bot_id", *_STATE_COLUMNS, "updated_at")
        session.execute(update(table).where(table.c.id == bindparam("bot_id"))
                        .values({c: bindparam(c) for c in names[1:]}),
                        [dict(zip(names, r, strict=True)) for r in rows if r[0] in alive])
    for w in writes:
        if w.status is not None and w.bot_id in alive:
            session.execute(update(Bot).where(Bot.id == w.bot_id)
                            .values(status=w.status, status_reason=w.status_reason))
    return alive


_STATE_COLUMNS = ("balance", "equity", "fees_paid", "realised_pnl", "peak_equity", "state", "last_candle_time")


def _save_position(session: Session, bot_id: int, values: dict[str, Any]) -> int:
    row = {k: v for k, v in values.items() if k != "id"}
    for key in ("opened_at", "closed_at"):
        if isinstance(row.get(key), int):
            row[key] = ms_to_datetime(row[key])
    if values.get("id") is None:
        return int(session.execute(insert(Position).values(bot_id=bot_id, **row).returning(Position.id)).scalar_one())
    session.execute(update(Position).where(Position.id == values["id"]).values(**row))
    return int(values["id"])


# ---------------------------------------------------------------------------- reads


def open_position(session: Session, bot_id: int) -> Position | None:
    return session.scalar(select(Position).where(Position.bot_id == bot_id, Position.status == "open")
                          .order_by(Position.id.desc()).limit(1))


def positions(session: Session, bot_id: int, limit: int = 100) -> list[Position]:
    return list(session.scalars(select(Position).where(Position.bot_id == bot_id)
                                .order_by(Position.opened_at.desc(), Position.id.desc()).limit(limit)))


def fills(session: Session, bot_id: int, limit: int | None = None) -> list[Fill]:
    """Fills in time order (the last ``limit`` when given)."""
    query = select(Fill).where(Fill.bot_id == bot_id).order_by(Fill.ts.desc(), Fill.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(reversed(list(session.scalars(query))))


def orders(session: Session, bot_id: int, status: str | None = None, limit: int = 200) -> list[Order]:
    query = select(Order).where(Order.bot_id == bot_id)
    if status is not None:
        query = query.where(Order.status == status)
    return list(session.scalars(query.order_by(Order.id.desc()).limit(limit)))


def equity_curve(session: Session, bot_id: int, start_ms: int | None = None,
                 limit: int | None = None) -> list[EquitySnapshot]:
    """Equity snapshots ascending (one per processed candle; the last ``limit`` when given)."""
    query = select(EquitySnapshot).where(EquitySnapshot.bot_id == bot_id)
    if start_ms is not None:
        query = query.where(EquitySnapshot.ts >= ms_to_datetime(start_ms))
    query = query.order_by(EquitySnapshot.ts.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(reversed(list(session.scalars(query))))


def events(session: Session, bot_id: int, limit: int = 100) -> list[BotEvent]:
    """The latest events, newest first."""
    return list(session.scalars(select(BotEvent).where(BotEvent.bot_id == bot_id)
                                .order_by(BotEvent.id.desc()).limit(limit)))


def last_signals(session: Session, bot_ids: Sequence[int]) -> dict[int, SignalRow]:
    """The newest stored signal of each bot."""
    if not bot_ids:
        return {}
    latest = (select(SignalRow.bot_id, func.max(SignalRow.candle_time).label("t"))
              .where(SignalRow.bot_id.in_(list(bot_ids))).group_by(SignalRow.bot_id).subquery())
    rows = session.scalars(select(SignalRow).join(
        latest, (SignalRow.bot_id == latest.c.bot_id) & (SignalRow.candle_time == latest.c.t)))
    return {r.bot_id: r for r in rows if r.bot_id is not None}


def open_positions(session: Session, bot_ids: Sequence[int]) -> dict[int, Position]:
    if not bot_ids:
        return {}
    rows = session.scalars(select(Position).where(Position.bot_id.in_(list(bot_ids)), Position.status == "open"))
    return {r.bot_id: r for r in rows}
