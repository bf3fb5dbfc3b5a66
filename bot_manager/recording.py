"""Turn a bot's :class:`CandleOutcome` into database records and bus messages (pure)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot_manager.broker import Fill, Order, OrderType, money
from bot_manager.engine import BotEngine, BotStatus, CandleOutcome
from config.domain import Side, SignalEvent, SignalType, datetime_to_ms
from database.repositories.bots import BotCandleWrite, EventRecord, FillRecord, OrderRecord

PROTECTIVE = (OrderType.STOP, OrderType.TAKE_PROFIT, OrderType.LIQUIDATION)  # orders the broker creates


def order_record(order: Order, symbol: str, status: str) -> OrderRecord:
    stop = order.limit_price if order.order_type is OrderType.STOP else None
    limit = None if order.order_type is OrderType.STOP else order.limit_price
    return OrderRecord(order.order_id, symbol, order.side.value, order.order_type.value, order.quantity, status,
                       order.reason, limit, stop, order.created_ms)


def fill_record(fill: Fill, symbol: str) -> FillRecord:
    return FillRecord(fill.order_id, symbol, fill.side.value, fill.quantity, fill.price, fill.fee,
                      fill.slippage_bps, fill.realised_pnl, fill.position_after, fill.balance_after,
                      fill.liquidity.value, fill.reason, fill.ts_ms)


def _open_row(fill: Fill, symbol: str) -> dict[str, Any]:
    return {"id": None, "symbol": symbol, "side": "long" if fill.position_after > 0 else "short",
            "quantity": abs(fill.position_after), "entry_price": fill.price, "status": "open",
            "stop_loss": None, "take_profit": None, "trailing_peak": None, "fees": fill.fee,
            "realised_pnl": Decimal(0), "exit_price": None, "exit_reason": None, "opened_at": fill.ts_ms,
            "closed_at": None}


def position_values(row: Any) -> dict[str, Any] | None:
    """A stored ``positions`` row as the values :func:`track_positions` and the bot tables' writes use."""
    if row is None:
        return None
    return {"id": row.id, "symbol": row.symbol, "side": row.side, "quantity": row.quantity,
            "entry_price": row.entry_price, "status": row.status, "stop_loss": row.stop_loss,
            "take_profit": row.take_profit, "trailing_peak": row.trailing_peak, "fees": row.fees,
            "realised_pnl": row.realised_pnl, "exit_price": row.exit_price, "exit_reason": row.exit_reason,
            "opened_at": datetime_to_ms(row.opened_at), "closed_at": None}


def track_positions(position: dict[str, Any] | None, fills: list[Fill], symbol: str,
                    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Apply fills to the open position row; returns (open row or None, rows closed by these fills)."""
    row = None if position is None else dict(position)
    closed: list[dict[str, Any]] = []
    for fill in fills:
        signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
        before = fill.position_after - signed
        after = fill.position_after
        if row is None or before == 0:
            row = _open_row(fill, symbol)
            continue
        row["realised_pnl"] += fill.realised_pnl
        row["fees"] += fill.fee
        if after == 0 or (after > 0) != (before > 0):
            row.update(status="closed", exit_price=fill.price, exit_reason=fill.reason, closed_at=fill.ts_ms)
            closed.append(row)
            row = None if after == 0 else {**_open_row(fill, symbol), "fees": Decimal(0)}
        else:
            row["quantity"] = abs(after)
    return row, closed


def build_write(bot_id: int, engine: BotEngine, outcome: CandleOutcome,
                position: dict[str, Any] | None) -> BotCandleWrite:
    """The :class:`BotCandleWrite` of one outcome; ``position`` is the open position row as last written."""
    broker = engine.broker
    symbol = engine.config.symbol
    new_orders = [order_record(o, symbol, "open") for o in outcome.submitted]
    status: dict[str, str] = {o.order_id: "cancelled" for o in outcome.cancelled}
    still_open = {o.order_id for o in broker.open_orders} if outcome.fills else set()
    for fill in outcome.fills:
        if fill.order_type in PROTECTIVE:
            new_orders.append(OrderRecord(fill.order_id, symbol, fill.side.value, fill.order_type.value,
                                          fill.quantity, "filled", fill.reason,
                                          float(fill.price) if fill.order_type is OrderType.TAKE_PROFIT else None,
                                          None, fill.ts_ms))
        else:
            status[fill.order_id] = "filled" if fill.order_id not in still_open else "partially_filled"
    events = [EventRecord(e.kind, e.message, e.level, e.data, outcome.candle_time_ms) for e in outcome.events]
    for order, why in outcome.rejected:
        status[order.order_id] = "rejected"
        events.append(EventRecord("order_rejected", f"order {order.order_id} rejected: {why}", "WARNING",
                                  {"order_id": order.order_id}, outcome.candle_time_ms))
    row, closed = track_positions(position, outcome.fills, symbol)
    if row is not None:
        entry = broker.entry_price
        row.update(entry_price=(entry.quantize(Decimal("0.0000000001")) if entry is not None else row["entry_price"]),
                   stop_loss=broker.stop_price, take_profit=broker.take_profit_price,
                   trailing_peak=broker.trailing_extreme)
    equity = broker.equity_decimal()
    peak = max(money(Decimal(repr(engine.risk.state.peak_equity))), equity)
    write = BotCandleWrite(
        bot_id=bot_id, candle_time_ms=outcome.candle_time_ms, balance=broker.balance, equity=equity,
        fees_paid=broker.fees_paid, realised_pnl=broker.realised_pnl, peak_equity=peak,
        state=engine.snapshot(), unrealised_pnl=broker.unrealised_pnl_decimal(),
        position_value=money(abs(broker.quantity) * Decimal(repr(broker.last_close))),
        drawdown=float(1 - equity / peak) if peak > 0 else 0.0,
        new_orders=new_orders, order_status=status, fills=[fill_record(f, symbol) for f in outcome.fills],
        events=events, closed_positions=closed, position=row,
        # the row follows the position on fills; the live trailing level is in ``state``
        write_position=row is not None and (row.get("id") is None or bool(outcome.fills)),
    )
    if outcome.halted_reason is not None:
        write.status, write.status_reason = BotStatus.HALTED.value, outcome.halted_reason
    return write


def signal_event(engine: BotEngine, outcome: CandleOutcome) -> SignalEvent | None:
    """The bot's BUY/SELL signal of this candle as stored and published (HOLD is neither)."""
    signal = outcome.signal
    if signal is None or signal.signal_type is SignalType.HOLD:
        return None
    c = engine.config
    return SignalEvent(source=f"bot:{c.name}", strategy=c.strategy, exchange=c.exchange, symbol=c.symbol,
                       timeframe=c.timeframe, candle_time_ms=outcome.candle_time_ms,
                       signal_type=signal.signal_type, strength=signal.strength, reason=signal.reason,
                       price=signal.price, params=dict(engine.strategy.params))


def fill_message(bot: str, fill: Fill, symbol: str) -> dict[str, Any]:
    """A fill as published on ``fills.<bot>``."""
    return {"bot": bot, "symbol": symbol, "order_id": fill.order_id, "order_type": fill.order_type.value,
            "ts_ms": fill.ts_ms, "side": fill.side.value, "quantity": str(fill.quantity),
            "price": str(fill.price), "fee": str(fill.fee), "liquidity": fill.liquidity.value,
            "slippage_bps": fill.slippage_bps, "realised_pnl": str(fill.realised_pnl), "reason": fill.reason,
            "position_after": str(fill.position_after), "balance_after": str(fill.balance_after)}


def event_message(bot: str, kind: str, message: str, level: str = "INFO", candle_time_ms: int | None = None,
                  data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A lifecycle or risk event as published on ``bot_events.<bot>``."""
    return {"bot": bot, "kind": kind, "message": message, "level": level, "candle_time_ms": candle_time_ms,
            "data": data or {}}
