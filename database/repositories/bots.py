"""Paper-trading bots: the bot rows, their orders, fills, positions, equity snapshots and events.

The bot manager writes everything one candle did to a set of bots in one transaction
(:func:`record_candle`), together with each bot's ``last_candle_time`` and state, which is what
makes a restart resume exactly where the last commit left off. The service layer and the
dashboard use the read functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from psycopg2.errors import ForeignKeyViolation
from sqlalchemy import CursorResult, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from config.domain import SignalEvent, ms_to_datetime
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
    signal: SignalEvent | None = None  # the bot's BUY/SELL signal of this candle (stored in ``signals``)


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


def record_candle(session: Session, writes: Sequence[BotCandleWrite],
                  durable: bool = True) -> dict[int, int | None]:
    """Store what one candle did to each bot (bots deleted meanwhile are skipped), signals included.

    Returns ``{bot id: open position row id or None}`` for the bots written. On PostgreSQL it takes
    two round trips whatever the number of bots (:func:`_record_pg`); ``durable=False`` lets the
    commit return before its WAL is on disk (``synchronous_commit = off`` for this transaction only).
    """
    if not writes:
        return {}
    if session.connection().dialect.name == "postgresql":
        return _record_pg(session, writes, durable)
    alive = _update_bots(session, writes)
    writes = [w for w in writes if w.bot_id in alive]
    if not writes:
        return {}
    from database.repositories.signals import upsert_signals

    upsert_signals(session, [w.signal for w in writes if w.signal is not None])
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
    b"UPDATE bots SET balance = v.balance, equity = v.equity, fees_paid = v.fees_paid, "
    b"realised_pnl = v.realised_pnl, peak_equity = v.peak_equity, state = v.state, "
    b"last_candle_time = v.last_candle_time, updated_at = v.updated_at "
    b"FROM (VALUES %s) AS v(id, balance, equity, fees_paid, realised_pnl, peak_equity, state, last_candle_time, "
    b"updated_at) WHERE bots.id = v.id RETURNING bots.id"
)
_PG_BOT_ROW = ("(%s::bigint, %s::numeric, %s::numeric, %s::numeric, %s::numeric, %s::numeric, %s::json, "
               "%s::timestamptz, %s::timestamptz)")
_PG_ORDERS = (b"INSERT INTO orders (bot_id, client_order_id, symbol, side, order_type, quantity, limit_price, "
              b"stop_price, status, reason, candle_time, created_at, updated_at) VALUES ")
_PG_ORDER_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
_PG_ORDER_STATUS = (b"UPDATE orders SET status = v.status, updated_at = %s FROM (VALUES %s) AS v(client_order_id, "
                    b"status) WHERE orders.client_order_id = v.client_order_id")
_PG_FILLS = (b"INSERT INTO fills (order_id, bot_id, symbol, side, quantity, price, fee, slippage_bps, realised_pnl, "
             b"position_after, balance_after, liquidity, reason, ts) VALUES ")
_PG_FILL_ROW = ("((SELECT id FROM orders WHERE client_order_id = %s), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s)")
_POSITION_COLUMNS = ("symbol", "side", "quantity", "entry_price", "status", "stop_loss", "take_profit",
                     "trailing_peak", "fees", "realised_pnl", "exit_price", "exit_reason", "opened_at", "closed_at")
_PG_POSITIONS = b"INSERT INTO positions (bot_id, " + ", ".join(_POSITION_COLUMNS).encode() + b") VALUES "
_PG_POSITION_ROW = "(" + ", ".join(["%s"] * (len(_POSITION_COLUMNS) + 1)) + ")"
_PG_POSITION_UPDATE = ("UPDATE positions SET " + ", ".join(f"{c} = %s" for c in _POSITION_COLUMNS)
                       + " WHERE id = %s")
_PG_EVENTS = b"INSERT INTO bot_events (bot_id, ts, candle_time, level, kind, message, data) VALUES "
_PG_EVENT_ROW = "(%s, %s, %s, %s, %s, %s, %s::json)"
_PG_SNAPSHOTS = (b"INSERT INTO equity_snapshots (bot_id, ts, equity, balance, position_value, unrealised_pnl, "
                 b"drawdown) VALUES ")
_PG_SNAPSHOT_ROW = "(%s, %s, %s, %s, %s, %s, %s)"
_PG_SIGNALS = (b"INSERT INTO signals (source, strategy, exchange, symbol, timeframe, candle_time, signal_type, "
               b"strength, reason, price, params, bot_id, created_at) VALUES ")
_PG_SIGNAL_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::json, %s, %s)"
_PG_SIGNALS_CONFLICT = (b" ON CONFLICT (source, exchange, symbol, timeframe, candle_time) DO UPDATE SET "
                        + ", ".join(f"{c} = EXCLUDED.{c}" for c in ("strategy", "signal_type", "strength", "reason",
                                                                     "price", "params", "bot_id")).encode())


def _ts(ms: int | None) -> datetime | None:
    return None if ms is None else ms_to_datetime(ms)


def _position_values(values: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(_ts(values[c]) if c in ("opened_at", "closed_at") and isinstance(values[c], int) else values[c]
                 for c in _POSITION_COLUMNS)


class _Rows:
    """SQL text for a batch of rows: one ``mogrify`` for the whole ``VALUES`` list of a table."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def __call__(self, template: str, values: Sequence[tuple[Any, ...]]) -> bytes:
        return cast(bytes, self.cur.mogrify(",".join([template] * len(values)), [x for v in values for x in v]))


def _record_pg(session: Session, writes: Sequence[BotCandleWrite], durable: bool) -> dict[int, int | None]:
    """The PostgreSQL write of :func:`record_candle` in one round trip (plus the caller's commit).

    One multi-statement query: the bots update (``UPDATE bots … FROM (VALUES …)``: every bot's money,
    state and ``last_candle_time``; it locks the rows), then in dependency order the orders, order
    status changes, fills (order ids looked up in SQL), position updates, events, equity snapshots and
    signals, and last the new positions with a ``SELECT`` of the bots that exist (``RETURNING`` the new
    position ids). A bot deleted meanwhile makes one of its inserts break a foreign key: the write is
    rolled back to its savepoint and done again for the bots that still exist (two round trips).
    """
    now = utc_now()
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    cur = raw.cursor()
    try:
        rows = _Rows(cur)
        head = b"" if durable else b"SET LOCAL synchronous_commit = off;"
        update = _PG_UPDATE % rows(_PG_BOT_ROW, [
            (w.bot_id, w.balance, w.equity, w.fees_paid, w.realised_pnl, w.peak_equity, json.dumps(w.state),
             ms_to_datetime(w.candle_time_ms), now) for w in writes])
        try:
            cur.execute(b";".join([head + b"SAVEPOINT record_candle", update, *_dependent_sql(rows, writes, now)]))
        except ForeignKeyViolation:
            cur.execute(b"ROLLBACK TO SAVEPOINT record_candle")
            cur.execute(update)
            alive = {int(r[0]) for r in cur.fetchall()}
            writes = [w for w in writes if w.bot_id in alive]
            if not writes:
                return {}
            cur.execute(b";".join(_dependent_sql(rows, writes, now)))
        found: dict[int, int | None] = {}
        for bot_id, status_, position_id in cur.fetchall():
            if status_ == "open" or int(bot_id) not in found:
                found[int(bot_id)] = None if position_id is None or status_ != "open" else int(position_id)
    finally:
        cur.close()
    # a bot whose open position was written before keeps that row's id
    return {w.bot_id: found[w.bot_id] if found[w.bot_id] is not None or w.position is None
            else w.position.get("id") for w in writes if w.bot_id in found}


def _dependent_sql(rows: _Rows, writes: Sequence[BotCandleWrite], now: datetime) -> list[bytes]:
    """Statements after the bots update; the last one returns ``(bot id, new position status, its id)``
    for every bot in ``writes`` that exists (a row per new position, or one with NULLs)."""
    cur = rows.cur
    sql: list[bytes] = []
    for w in writes:
        if w.status is not None:
            sql.append(cur.mogrify("UPDATE bots SET status = %s, status_reason = %s WHERE id = %s",
                                   (w.status, w.status_reason, w.bot_id)))
    orders = [(w.bot_id, o.client_order_id, o.symbol, o.side, o.order_type, o.quantity, o.limit_price,
               o.stop_price, o.status, o.reason, _ts(o.candle_time_ms), now, now)
              for w in writes for o in w.new_orders]
    if orders:
        sql.append(_PG_ORDERS + rows(_PG_ORDER_ROW, orders))
    status = [(client_id, s) for w in writes for client_id, s in w.order_status.items()]
    if status:
        sql.append(_PG_ORDER_STATUS % (cur.mogrify("%s", (now,)), rows("(%s, %s)", status)))
    fill_rows = [(f.client_order_id, w.bot_id, f.symbol, f.side, f.quantity, f.price, f.fee, f.slippage_bps,
                  f.realised_pnl, f.position_after, f.balance_after, f.liquidity, f.reason,
                  ms_to_datetime(f.ts_ms)) for w in writes for f in w.fills]
    if fill_rows:
        sql.append(_PG_FILLS + rows(_PG_FILL_ROW, fill_rows))
    new_positions: list[tuple[Any, ...]] = []
    for w in writes:
        changed = [*w.closed_positions, *([w.position] if w.position is not None and w.write_position else [])]
        for values in changed:
            if values.get("id") is None:
                new_positions.append((w.bot_id, *_position_values(values)))
            else:
                sql.append(cur.mogrify(_PG_POSITION_UPDATE, (*_position_values(values), values["id"])))
    events = [(w.bot_id, now, _ts(e.candle_time_ms), e.level, e.kind, e.message, json.dumps(e.data))
              for w in writes for e in w.events]
    if events:
        sql.append(_PG_EVENTS + rows(_PG_EVENT_ROW, events))
    snapshots = [(w.bot_id, ms_to_datetime(w.candle_time_ms), w.equity, w.balance, w.position_value,
                  w.unrealised_pnl, w.drawdown) for w in writes if w.snapshot]
    if snapshots:
        sql.append(_PG_SNAPSHOTS + rows(_PG_SNAPSHOT_ROW, snapshots))
    signals = [(e.source, e.strategy, e.exchange, e.symbol, e.timeframe.value, ms_to_datetime(e.candle_time_ms),
                e.signal_type.value, e.strength, e.reason, e.price, json.dumps(dict(e.params)), w.bot_id, now)
               for w in writes if (e := w.signal) is not None]
    if signals:
        sql.append(_PG_SIGNALS + rows(_PG_SIGNAL_ROW, signals) + _PG_SIGNALS_CONFLICT)
    ids = cur.mogrify("%s", ([w.bot_id for w in writes],))
    if new_positions:
        sql.append(b"WITH new AS (" + _PG_POSITIONS + rows(_PG_POSITION_ROW, new_positions)
                   + b" RETURNING bot_id, status, id) SELECT bots.id, new.status, new.id FROM bots "
                   b"LEFT JOIN new ON new.bot_id = bots.id WHERE bots.id = ANY(" + ids + b")")
    else:
        sql.append(b"SELECT id, NULL, NULL FROM bots WHERE id = ANY(" + ids + b")")
    return sql


def _update_bots(session: Session, writes: Sequence[BotCandleWrite]) -> set[int]:
    """Each bot's money, state and ``last_candle_time`` (SQLite: ``executemany``); returns the ids of
    the bots that still exist. The status of a bot the manager halted is set too."""
    now = utc_now()
    rows = [(w.bot_id, w.balance, w.equity, w.fees_paid, w.realised_pnl, w.peak_equity, w.state,
             ms_to_datetime(w.candle_time_ms), now) for w in writes]
    alive = set(session.scalars(select(Bot.id).where(Bot.id.in_([w.bot_id for w in writes]))))
    table = cast(Table, Bot.__table__)
    names = ("bot_id", *_STATE_COLUMNS, "updated_at")
    if not alive:
        return alive
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
