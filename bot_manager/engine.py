"""One bot's pure decision core: candle in -> broker, risk, strategy signal, orders out.

No I/O: the manager (:mod:`bot_manager.manager`) feeds candles, stores the outcome and publishes
it. Order ids are deterministic (``<bot>-<candle open ms>-<kind>``) so a replayed candle can never
create a second order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from bot_manager.broker import Fill, Order, PaperBroker
from bot_manager.config import AtrSizing, BotConfig, EquityFractionSizing
from bot_manager.risk import (
    Intent,
    PortfolioGuard,
    RiskManager,
    RiskState,
    average_true_range,
    exposure_room,
    intent_for,
    order_quantity,
    quantize_down,
)
from config.domain import Side, Signal, SignalType
from config.errors import StrategyError
from strategies.bars import Bars, last_evaluation_start
from strategies.base import BaseStrategy
from strategies.guard import safe_signal_at_end


class BotStatus(StrEnum):
    CREATED = "created"  # stored, never started
    RUNNING = "running"  # trades on signals
    PAUSED = "paused"  # no new signals acted on; open positions still managed (exits, risk)
    STOPPED = "stopped"  # not processed at all; state frozen
    HALTED = "halted"  # stopped by a rule (kill switch, strategy error); ``status_reason`` says why


@dataclass(frozen=True, slots=True)
class BotEventRecord:
    kind: str
    message: str
    level: str = "INFO"
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CandleOutcome:
    """Everything one candle did to one bot (what the manager stores in one transaction)."""

    candle_time_ms: int
    signal: Signal | None = None
    submitted: list[Order] = field(default_factory=list)
    cancelled: list[Order] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    rejected: list[tuple[Order, str]] = field(default_factory=list)
    events: list[BotEventRecord] = field(default_factory=list)
    halted_reason: str | None = None


class BotEngine:
    """A bot's strategy, broker and risk manager, advanced one closed candle at a time."""

    def __init__(self, config: BotConfig, strategy: BaseStrategy, state: dict[str, Any] | None = None) -> None:
        self.config = config
        self.name = config.name
        self.strategy = strategy
        self.broker: PaperBroker = config.make_broker(order_id_prefix=f"{config.name}-")
        self.risk = RiskManager(config, RiskState.from_dict(state["risk"]) if state else None)
        if state:
            self.broker.restore(state["broker"])
        self.trading = True  # act on signals (RUNNING); False when paused or halted
        self.halted = False  # stopped by a rule: only the broker runs (to finish a liquidation)

    @property
    def history(self) -> int:
        """Bars of history needed before the current UTC day (strategy and ATR windows)."""
        return self.strategy.history

    @property
    def busy(self) -> bool:
        """Has a position or open orders (a halted bot keeps being fed until it is flat)."""
        return bool(self.broker.position_side or self.broker.open_orders)

    def snapshot(self) -> dict[str, Any]:
        return {"broker": self.broker.snapshot(), "risk": self.risk.state.to_dict()}

    def resume(self) -> None:
        """Operator resumed the bot: drawdown is measured from the current equity again."""
        self.risk.reset_peak(self.broker.equity())
        self.trading = True
        self.halted = False

    def halt_all(self, candle_time_ms: int, reason: str, outcome: CandleOutcome) -> None:
        """Kill switch: cancel orders, close the position at the next open, stop trading."""
        outcome.cancelled.extend(self.broker.cancel_all())
        order = self.broker.close_position(self._order_id(candle_time_ms, "kill"), "kill_switch")
        if order is not None:
            outcome.submitted.append(order)
        self.trading = False
        self.halted = True
        outcome.halted_reason = reason
        outcome.events.append(BotEventRecord("halted", reason, "ERROR"))

    def process(self, open_time_ms: int, o: float, h: float, l: float, c: float, v: float,  # noqa: E741
                bars: Bars | None, portfolio: PortfolioGuard | None = None) -> CandleOutcome:
        """Advance one closed candle. ``bars`` ends with this candle (None: do not ask the strategy)."""
        outcome = CandleOutcome(open_time_ms)
        broker = self.broker
        equity_before = broker.equity() if broker.last_time_ms is not None else float(broker.balance)
        fills = broker.on_bar(open_time_ms, o, h, l, c, v)
        if fills:
            outcome.fills.extend(fills)
            for alert in self.risk.on_fills(open_time_ms, fills):
                outcome.events.append(BotEventRecord(alert.rule, alert.message))
        if broker.rejected:
            outcome.rejected.extend(broker.rejected)
            broker.rejected.clear()
        if self.halted:
            return outcome
        closing = False
        for alert in self.risk.on_candle(open_time_ms, equity_before, broker.equity()):
            if alert.halt:
                self.halt_all(open_time_ms, alert.message, outcome)
                return outcome
            outcome.events.append(BotEventRecord(alert.rule, alert.message, "WARNING"))
            outcome.cancelled.extend(broker.cancel_all())
            order = broker.close_position(self._order_id(open_time_ms, "daily"), alert.rule)
            if order is not None:
                outcome.submitted.append(order)
                closing = True
        if not self.trading or bars is None:
            return outcome
        try:
            signal = safe_signal_at_end(self.strategy, bars)
        except StrategyError as exc:
            outcome.events.append(BotEventRecord("strategy_error", str(exc), "ERROR"))
            self.trading = False
            self.halted = True
            outcome.halted_reason = str(exc)
            return outcome
        outcome.signal = signal
        if not closing and signal.signal_type is not SignalType.HOLD:
            self.act_on_signal(signal, open_time_ms, c, bars, outcome, portfolio)
        return outcome

    def act_on_signal(self, signal: Signal, open_time_ms: int, close: float, bars: Bars, outcome: CandleOutcome,
                      portfolio: PortfolioGuard | None = None) -> None:
        """Turn the BUY/SELL ``signal`` of the closed candle ``open_time_ms`` into market orders.

        This is what :meth:`process` does with a non-HOLD signal (the backtester calls it directly):
        enter, add, exit, or, when shorts are allowed, stop and reverse: an exit order for the whole
        position followed by an entry order the other way, both filling at the next open (two fills,
        a fee on each). Entries are sized at ``close`` (or, with ``size_at: fill``, spend the same share of
        equity at the fill) and gated by the risk rules (cooldown, daily
        loss, max open positions, exposure caps, minimum order); a blocked reversal still exits.
        ``bars`` ends with this candle (ATR sizing reads it). Orders and events go into ``outcome``.
        """
        broker = self.broker
        intent = intent_for(signal.signal_type, broker.position_side, self.config.allow_short)
        if intent is Intent.NONE:
            return
        action = signal.signal_type.value
        reversing = intent in (Intent.REVERSE_TO_LONG, Intent.REVERSE_TO_SHORT)
        if intent is Intent.EXIT or reversing:
            order = broker.close_position(self._order_id(open_time_ms, "exit"), f"signal {action}")
            if order is not None:
                outcome.submitted.append(order)
            if intent is Intent.EXIT:
                return
            action = f"{action} (position closed, reversal entry)"
        # The position a reversal closes counts neither as an entry nor as exposure of the new one.
        block = self.risk.entry_block(open_time_ms, 0 if reversing else broker.entries)
        if block is not None:
            outcome.events.append(BotEventRecord("entry_blocked", f"{action} ignored: {block}"))
            return
        equity = broker.equity()
        quantity = order_quantity(self.config, equity, close, self._atr(bars))
        room = exposure_room(self.config, equity, 0.0 if reversing else broker.exposure())
        if portfolio is not None:
            room = min(room, portfolio.room(closing=self.name if reversing else None))
        reduced = quantity * close > room
        if reduced:
            outcome.events.append(BotEventRecord(
                "entry_reduced", f"entry of {quantity * close:.2f} reduced to the {room:.2f} exposure room",
                data={"requested_quote": round(quantity * close, 2), "room_quote": round(room, 2)}))
            quantity = room / close
        size = quantize_down(quantity, self.config.lot_size)
        if size <= 0 or size * Decimal(repr(close)) < self.config.min_order_quote:
            outcome.events.append(BotEventRecord(
                "entry_blocked", f"{action} ignored: order of {float(size) * close:.2f} is below "
                f"the minimum {self.config.min_order_quote}"))
            return
        side = Side.BUY if intent in (Intent.ENTER_LONG, Intent.REVERSE_TO_LONG) else Side.SELL
        kind = "entry" if broker.position_side == 0 or reversing else f"add{broker.entries}"
        sizing = self.config.sizing
        spend = None  # sized at the fill: the same share of equity (after the caps), spent at the fill price
        if isinstance(sizing, EquityFractionSizing) and sizing.size_at == "fill":
            spend = Decimal(repr(room / equity if reduced else sizing.fraction_pct / 100))
        outcome.submitted.append(broker.submit_market(self._order_id(open_time_ms, kind), side, size,
                                                      reason=f"signal {signal.signal_type.value}", spend=spend))

    def _atr(self, bars: Bars) -> float | None:
        sizing = self.config.sizing
        if not isinstance(sizing, AtrSizing):
            return None
        start = last_evaluation_start(bars.open_time, self.history)
        return average_true_range(bars.high[start:], bars.low[start:], bars.close[start:], sizing.atr_period)

    def _order_id(self, candle_time_ms: int, kind: str) -> str:
        return f"{self.name}-{candle_time_ms}-{kind}"
