"""The bar-by-bar engine: a live bot's decision core, fed historical candles.

Each bar goes through the same objects as a live paper bot (:class:`bot_manager.engine.BotEngine`:
its ``PaperBroker``, ``RiskManager`` and order logic), in the same order as
``BotEngine.process``: the broker fills pending orders and checks protective exits inside the bar,
the risk rules see the close, then the bar's signal turns into orders that fill at the next open.
The signals come from ``strategy.generate_signals`` on the whole history, which by the strategy
contract equals what the live engine computes bar by bar; no bar can see a later one because
orders placed on bar ``i`` only fill on ``i+1``.

For speed, a bar on which the bot is flat, has no pending order and gets no signal is skipped: on it
``process`` could only move the broker's clock (no fill, no risk alert is possible), which the next
call sets anyway. The equity curve is rebuilt afterwards from the account state after each fill.
tests/backtesting/test_live_parity.py checks the fills equal those of ``BotEngine.process``.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from backtesting.data import CandleData
from backtesting.funding import FundingSeries
from backtesting.result import TradeTable
from bot_manager.broker import Fill, PaperBroker
from bot_manager.config import AtrSizing, BotConfig
from bot_manager.engine import BotEngine, CandleOutcome
from config.domain import Signal, SignalType
from strategies.bars import Bars
from strategies.base import BaseStrategy

PROGRESS_EVERY = 65_536
_NEVER = 2**62  # the next funding settlement when there is none
_SIGNALS = {1: Signal(SignalType.BUY, 1.0, "backtest"), -1: Signal(SignalType.SELL, 1.0, "backtest")}


class RunCancelled(Exception):
    """The progress callback asked the run to stop."""


@dataclass(frozen=True, slots=True, eq=False)
class BarRun:
    trades: TradeTable
    equity: np.ndarray
    position: np.ndarray
    events: dict[str, int]
    halted_reason: str | None
    fills: tuple[Fill, ...]
    funding_paid: float = 0.0  # funding paid (> 0) or received (< 0) over the run, already in the equity


def run_bars(config: BotConfig, strategy: BaseStrategy, data: CandleData, signals: np.ndarray, *,
             trade_start: int = 0, close_at_end: bool = False,
             progress: Callable[[float], bool] | None = None, funding: FundingSeries | None = None) -> BarRun:
    """Drive a fresh bot through ``data`` acting on ``signals`` (int8 per bar) from ``trade_start``.

    With ``funding``, an open position settles each funding payment (``PaperBroker.apply_funding``) on the
    first bar opening at or after the settlement time, before that bar's fills, at the bar's open as the mark.

    ``progress(fraction)`` is called every 65,536 bars; returning True raises :class:`RunCancelled`.
    With ``close_at_end`` an open position is closed at the last close (slippage and fee apply).
    """
    n = len(data)
    codes = np.asarray(signals, dtype=np.int8).copy()
    codes[:trade_start] = 0
    if n:
        codes[-1] = 0  # no later bar to fill an order of the last bar
    run = _Run(config, strategy, data, funding)
    # Plain Python lists, made a chunk at a time: element access and float arithmetic are several times
    # faster than on numpy, and one chunk of lists (not the whole run's) is alive at once.
    columns = (data.open_time, data.open, data.high, data.low, data.close, data.volume, codes)
    with _collector_paused():
        for begin in range(0, n, PROGRESS_EVERY):
            if begin and progress is not None and progress(begin / n):
                raise RunCancelled(f"cancelled at bar {begin} of {n}")
            end = min(n, begin + PROGRESS_EVERY)
            chunk = zip(range(begin, end), *(c[begin:end].tolist() for c in columns), strict=True)
            if run.rules:
                run.checked_loop(chunk)
            else:
                run.plain_loop(chunk)
    if close_at_end and n:
        run.close_at_end(int(data.open_time[-1]) + (data.bar_ms or 1), float(data.close[-1]))
    equity = run.log.equity_curve(data.close, float(config.starting_balance))
    if close_at_end and n:
        equity[-1] = run.broker.equity()
    return BarRun(run.log.trades(), equity, run.log.positions(n), dict(run.events), run.halted,
                  tuple(run.log.fills), float(run.broker.funding_paid))


Row = tuple[int, int, float, float, float, float, float, int]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause automatic garbage collection for the loop: it makes no reference cycles, but its fills
    and orders would trigger full collections that walk the million-item candle lists (~10%)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Run:
    """The loop state of one bar-by-bar run (see :func:`run_bars`)."""

    def __init__(self, config: BotConfig, strategy: BaseStrategy, data: CandleData,
                 funding: FundingSeries | None = None) -> None:
        self.bot = BotEngine(config, strategy)
        self.broker = self.bot.broker
        self.risk = self.bot.risk
        self.rules = config.risk.max_drawdown_pct is not None or config.risk.daily_loss_limit_pct is not None
        self.atr_sizing = isinstance(config.sizing, AtrSizing)
        self.bars = Bars(data.open_time, data.open, data.high, data.low, data.close, data.volume)
        self.log = _FillLog()
        self.events: Counter[str] = Counter()
        self.halted: str | None = None
        self.active = False
        self.funding_times: list[int] = [] if funding is None else funding.time_ms.tolist()
        self.funding_rates: list[float] = [] if funding is None else funding.rate.tolist()
        self.funding_at = 0  # the next settlement's index
        self.next_funding = self.funding_times[0] if self.funding_times else _NEVER

    def plain_loop(self, rows: Iterable[Row]) -> None:
        """No per-candle risk rule: each bar is the broker's bar, then the signal if any. While the
        broker is idle (no order; flat, or in a position without protective exits) and the bar has
        no signal nothing can happen, so the broker is not called at all (``on_bar`` would only mark
        the bar, and the next call marks its own)."""
        broker, bot = self.broker, self.bot
        on_bar = broker.on_bar
        active = self.active
        for k, t, o, h, l, c, v, code in rows:  # noqa: E741
            if t >= self.next_funding:
                self.settle_funding(k, t, o)
            if active:
                fills = on_bar(t, o, h, l, c, v)
                if fills:
                    self.on_fills(k, t, fills)
                    active = not broker.idle
            elif not code:
                continue
            else:
                on_bar(t, o, h, l, c, v)
            if code and bot.trading:
                self.on_signal(k, t, c, code)
                active = not broker.idle
        self.active = active

    def busy(self) -> bool:
        return bool(self.broker.position_side or self.broker.open_orders)

    def checked_loop(self, rows: Iterable[Row]) -> None:
        """With drawdown / daily-loss rules: ``BotEngine.process`` step by step. A flat bar without
        orders or signal cannot fill or alert (its equity is the previous bar's), so it is skipped."""
        broker, risk, bot = self.broker, self.risk, self.bot
        on_bar = broker.on_bar
        for k, t, o, h, l, c, v, code in rows:  # noqa: E741
            if t >= self.next_funding:
                self.settle_funding(k, t, o)
            if not self.active and not code:
                continue
            equity_before = broker.equity()
            fills = on_bar(t, o, h, l, c, v)
            if fills:
                self.on_fills(k, t, fills)
            closing = False
            if self.halted is None:
                outcome = CandleOutcome(t)
                for alert in risk.on_candle(t, equity_before, broker.equity()):
                    self.events[alert.rule] += 1
                    if alert.halt:
                        bot.halt_all(t, alert.message, outcome)
                        self.halted = alert.message
                        break
                    broker.cancel_all()
                    closing = broker.close_position(f"{bot.name}-{t}-daily", alert.rule) is not None
            if code and bot.trading and not closing:
                self.on_signal(k, t, c, code)
            self.active = self.busy()

    def settle_funding(self, k: int, t: int, mark: float) -> None:
        """Settle every funding payment due by bar ``k`` (opening at ``t``) on the open position."""
        times, rates, broker = self.funding_times, self.funding_rates, self.broker
        i, paid = self.funding_at, False
        while i < len(times) and times[i] <= t:
            if broker.position_side:
                broker.apply_funding(times[i], rates[i], mark)
                self.events["funding_payments"] += 1
                paid = True
            i += 1
        self.funding_at = i
        self.next_funding = times[i] if i < len(times) else _NEVER
        if paid:
            self.log.add(k, (), broker)

    def on_fills(self, k: int, t: int, fills: Sequence[Fill]) -> None:
        self.log.add(k, fills, self.broker)
        for alert in self.risk.on_fills(t, tuple(fills)):
            self.events[alert.rule] += 1
        if self.broker.rejected:
            self.events["rejected"] += len(self.broker.rejected)
            self.broker.rejected.clear()

    def on_signal(self, k: int, t: int, close: float, code: int) -> None:
        outcome = CandleOutcome(t)
        bars = self.bars.slice(0, k + 1) if self.atr_sizing else self.bars
        self.bot.act_on_signal(_SIGNALS[code], t, close, bars, outcome)
        for event in outcome.events:
            self.events[event.kind] += 1

    def close_at_end(self, end_ms: int, last_close: float) -> None:
        """Close an open position at the last close: a market order filled on a flat bar at that price."""
        broker = self.broker
        if not broker.position_side:
            return
        broker.cancel_all()
        broker.close_position(f"{self.bot.name}-{end_ms}-end", "end_of_data")
        fills = broker.on_bar(end_ms, last_close, last_close, last_close, last_close, 0.0)
        last_bar = self.log.state_bars[-1] if self.log.state_bars else 0
        self.log.add(max(last_bar, len(self.bars) - 1), fills, broker)


class _FillLog:
    """Fills with their bar, and the account after each bar that had fills."""

    def __init__(self) -> None:
        self.fills: list[Fill] = []
        self.fill_bars: list[int] = []
        self.state_bars: list[int] = []
        self.balance: list[float] = []
        self.direction: list[int] = []
        self.quantity: list[float] = []
        self.cost: list[float] = []

    def add(self, bar: int, fills: Sequence[Fill], broker: PaperBroker) -> None:
        self.fills.extend(fills)
        self.fill_bars.extend([bar] * len(fills))
        if self.state_bars and self.state_bars[-1] == bar:
            for column in (self.state_bars, self.balance, self.direction, self.quantity, self.cost):
                column.pop()
        self.state_bars.append(bar)
        self.balance.append(float(broker.balance))
        self.direction.append(broker.position_side)
        self.quantity.append(float(abs(broker.quantity)))
        self.cost.append(float(broker.cost))

    def _latest(self, n: int) -> np.ndarray:
        marks = np.zeros(n, dtype=np.int64)
        marks[np.asarray(self.state_bars, dtype=np.int64)] = np.arange(1, len(self.state_bars) + 1)
        return np.maximum.accumulate(marks) - 1

    def positions(self, n: int) -> np.ndarray:
        if not self.state_bars:
            return np.zeros(n, dtype=np.int8)
        latest = self._latest(n)
        direction = np.asarray(self.direction, dtype=np.int8)
        return np.where(latest >= 0, direction[np.maximum(latest, 0)], 0).astype(np.int8)

    def equity_curve(self, close: np.ndarray, cash: float) -> np.ndarray:
        """``balance + side * (close * size - cost)`` with the account after the latest fill."""
        n = close.shape[0]
        if not self.state_bars:
            return np.full(n, cash, dtype=np.float64)
        latest = self._latest(n)
        i = np.maximum(latest, 0)
        balance = np.asarray(self.balance)[i]
        side = np.asarray(self.direction, dtype=np.float64)[i]
        value = side * (close * np.asarray(self.quantity)[i] - np.asarray(self.cost)[i])
        return np.where(latest >= 0, balance + value, cash)

    def trades(self) -> TradeTable:
        """Round trips: from the fill that opens a position to the one that makes it flat. The entry
        price is the fill price (the size-weighted average when entries were stacked)."""
        if not self.fills:
            return TradeTable.empty()
        f = self.fills
        after = np.array([float(x.position_after) for x in f])
        quantity = np.array([float(x.quantity) for x in f])
        price = np.array([float(x.price) for x in f])
        fee = np.array([float(x.fee) for x in f])
        realised = np.array([float(x.realised_pnl) for x in f])
        bars = np.asarray(self.fill_bars, dtype=np.int64)
        times = np.array([x.ts_ms for x in f], dtype=np.int64)
        before = np.concatenate([[0.0], after[:-1]])
        starts = np.flatnonzero(before == 0)
        ends = np.concatenate([starts[1:], [len(f)]]) - 1
        growing = np.abs(after) > np.abs(before)
        size = np.maximum.reduceat(np.abs(after), starts)
        entries = np.add.reduceat(growing.astype(np.int64), starts)
        value = np.add.reduceat(np.where(growing, quantity * price, 0.0), starts)
        closed = after[ends] == 0
        return TradeTable.from_columns(
            np.sign(after[starts]), bars[starts], np.where(closed, bars[ends], -1), times[starts],
            np.where(closed, times[ends], -1), np.where(entries == 1, price[starts], value / size),
            np.where(closed, price[ends], np.nan), size, np.add.reduceat(fee, starts),
            np.add.reduceat(realised - fee, starts),
            [f[e].reason if c else "" for e, c in zip(ends, closed, strict=True)])


