"""The numpy fast path: the same trades as the bar-by-bar engine without a per-bar Python loop.

It applies when the account has no rule that looks at prices inside a position (no stop-loss,
take-profit, trailing stop, drawdown or daily-loss limit), fixed slippage, equity-fraction sizing
and one entry per position (:func:`fast_path_blocker` says why not otherwise). Then the position
after each bar is a function of the signal sequence alone, and the money follows in closed form.
The rules are those of :class:`bot_manager.engine.BotEngine` and the ``PaperBroker``:

* a signal on bar ``i`` (inside the traded window, not the last bar) trades at the open of ``i+1``
  plus slippage against the trader, paying the taker fee on the fill's notional;
* long-only: BUY enters long when flat, SELL exits a long; with shorts allowed the position after a
  signal is the signal's side: BUY while short (SELL while long) closes the position and enters the
  other way at the same open (stop and reverse, two fills); a signal in the direction already held
  changes nothing;
* an entry is sized at the signal bar's close: ``size = equity * min(fraction, max_exposure,
  leverage) / close``, where ``equity`` includes the unrealised PnL of a position being reversed,
  clamped at the fill to what the broker allows after the exit:
  ``equity * leverage / (fill_price * (1 + taker_fee))``; with ``size_at: fill`` the same share of
  the equity after the exit is spent at the fill price instead (``close`` replaced by the fill price),
  under the same clamp.

Money is float64 here, while the broker keeps Decimal to 1e-8 and sizes down to the lot: bars,
sides and prices are identical to the bar-by-bar path, sizes, fees and PnL agree to about 1e-6
relative (tests/backtesting/test_paths_agree.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np

from backtesting.data import CandleData
from backtesting.result import TradeTable
from bot_manager.config import BotConfig, EquityFractionSizing, FixedSlippageConfig
from strategies.base import BaseStrategy


@dataclass(frozen=True, slots=True, eq=False)
class FastRun:
    trades: TradeTable
    equity: np.ndarray
    position: np.ndarray


def fast_path_blocker(config: BotConfig, strategy: BaseStrategy) -> str | None:
    """Why the fast path cannot run this configuration (None when it can)."""
    r = config.risk
    checks = [
        (not strategy.supports_vectorised, f"strategy {strategy.name!r} does not compute signals vectorised"),
        (not isinstance(config.sizing, EquityFractionSizing), f"{config.sizing.method} sizing"),
        (not isinstance(config.slippage, FixedSlippageConfig), "volume-dependent slippage"),
        (r.stop_loss_pct is not None or r.take_profit_pct is not None or r.trailing_stop_pct is not None,
         "stop-loss / take-profit / trailing-stop exits"),
        (r.max_drawdown_pct is not None or r.daily_loss_limit_pct is not None,
         "drawdown or daily-loss limits"),
        (r.max_open_positions > 1, "stacked entries (max_open_positions > 1)"),
    ]
    return next((reason for blocked, reason in checks if blocked), None)


def positions_from_signals(codes: np.ndarray, allow_short: bool) -> np.ndarray:
    """Position held during each bar (+1, -1, 0) when each bar's signal fills at the next open.

    ``codes`` must already be zero outside the traded window and on the last bar. Long-only, a
    BUY leaves the account long and a SELL flat; with shorts allowed (stop and reverse) every signal
    leaves it on the signal's side.
    """
    n = codes.shape[0]
    events = np.flatnonzero(codes)
    values = codes[events].astype(np.int8)
    after = values if allow_short else (values > 0).astype(np.int8)
    state = np.zeros(n, dtype=np.int8)  # position wanted after each bar's signal
    if events.size:
        marks = np.zeros(n, dtype=np.int64)
        marks[events] = np.arange(1, events.size + 1)
        state = np.concatenate([[0], after]).astype(np.int8)[np.maximum.accumulate(marks)]
    position = np.zeros(n, dtype=np.int8)
    position[1:] = state[:-1]
    return position


def run_fast(config: BotConfig, data: CandleData, signals: np.ndarray, trade_start: int = 0) -> FastRun | None:
    """Simulate ``signals`` on ``data``.

    When an entry falls below ``min_order_quote`` (equity drained by fees and losses) the broker skips
    it and stays flat, its equity frozen; so the run ends there with every later entry skipped too. If a
    later entry would fit on that frozen equity after all (its signal close against its fill price),
    the sequence is the bar path's to find: None.
    """
    assert isinstance(config.sizing, EquityFractionSizing) and isinstance(config.slippage, FixedSlippageConfig)
    n = len(data)
    codes = np.asarray(signals, dtype=np.int8).copy()
    codes[:trade_start] = 0
    if n:
        codes[-1] = 0
    position = positions_from_signals(codes, config.allow_short)
    previous = np.concatenate([[0], position[:-1]]).astype(np.int8)
    changes = np.flatnonzero(position != previous)
    entries = changes[position[changes] != 0]
    following = np.searchsorted(changes, entries, side="right")
    exits = np.where(following < changes.size, changes[np.minimum(following, max(changes.size - 1, 0))], -1)
    side = position[entries].astype(np.float64)
    closed = exits >= 0

    rate = float(Decimal(repr(config.fees.taker_pct)) / 100)
    slip = config.slippage.bps / 10_000
    tick = config.price_tick
    entry_price = _fill_prices(data.open[entries], side, slip, tick)
    exit_price = np.full(entries.size, np.nan)
    exit_price[closed] = _fill_prices(data.open[exits[closed]], -side[closed], slip, tick)

    fraction = min(config.sizing.fraction_pct / 100, config.risk.max_exposure_pct / 100, config.leverage)
    signal_close = data.close[entries - 1]
    gross = np.where(closed, side * (exit_price - entry_price) - rate * (entry_price + exit_price), 0.0)
    reverses = entries[1:] == exits[:-1]
    at_fill = config.sizing.size_at == "fill"
    units = _units(_Sizing(fraction, config.leverage, rate, signal_close, side, entry_price, gross, at_fill), reverses)
    growth = np.where(closed, 1.0 + units * gross, 1.0)
    before = config_cash(config) * np.concatenate([[1.0], np.cumprod(growth)[:-1]])
    size = units * before
    blocked = _below_minimum(config, fraction, rate, before, units, side, entry_price, signal_close, reverses,
                             at_fill)
    if blocked is not None:  # equity drained (fees, losses): the broker skips this entry and, flat, stays so
        if blocked < 0:
            return None
        k = blocked
        later = codes[entries[k]:n - 1]
        opens = later != 0 if config.allow_short else later > 0
        need = np.maximum(float(config.min_order_quote), float(config.lot_size) * data.close[entries[k]:n - 1][opens])
        if np.any(fraction * float(before[k]) >= need):
            return None  # flat on the equity trade k - 1 left, a later entry would fit: the bar path's to find
        position = position.copy()
        position[entries[k]:] = 0
        entries, exits, side, closed, entry_price, exit_price, units, growth, before, size = (
            x[:k] for x in (entries, exits, side, closed, entry_price, exit_price, units, growth, before, size))
    fees = rate * size * (entry_price + np.where(closed, exit_price, 0.0))
    pnl = np.where(closed, before * (growth - 1.0), -rate * size * entry_price)
    reasons = tuple(("signal SELL" if s > 0 else "signal BUY") if c else "" for c, s in zip(closed, side, strict=True))
    trades = TradeTable.from_columns(
        side, entries, exits, data.open_time[entries], np.where(closed, data.open_time[np.maximum(exits, 0)], -1),
        entry_price, exit_price, size, fees, pnl, reasons)
    equity = _equity_curve(data.close, position, entries, side, size, entry_price, before, growth,
                           config_cash(config), rate)
    return FastRun(trades, equity, position)


def _below_minimum(config: BotConfig, fraction: float, rate: float, before: np.ndarray, units: np.ndarray,
                   side: np.ndarray, entry_price: np.ndarray, signal_close: np.ndarray,
                   reverses: np.ndarray, at_fill: bool) -> int | None:
    """The first trade whose entry the broker skips as below ``min_order_quote`` (or below one lot, which
    floors to nothing); None when none is; -1 when one is too close to that to tell (the broker floors
    sizes to the lot).

    The broker checks the order before its margin clamp: ``fraction`` of the equity at the signal
    close, which for a reversal still holds the previous trade marked at that close. Sized at the
    fill, the order must also come to one lot there.
    """
    if before.size == 0:
        return None
    equity = before.copy()
    k = np.flatnonzero(reverses) + 1
    p = k - 1
    equity[k] = before[p] * (1 + units[p] * (side[p] * (signal_close[k] - entry_price[p]) - rate * entry_price[p]))
    quote = fraction * equity
    lot = float(config.lot_size) * signal_close  # one lot's worth: a smaller order floors to nothing
    need = np.maximum(float(config.min_order_quote), lot)
    small = quote < need
    unsure = ~small & (quote < need + lot)
    if at_fill:
        unsure |= ~small & (fraction * before < 2 * float(config.lot_size) * entry_price)
    first = int(np.argmax(small | unsure))
    if not (small[first] or unsure[first]):
        return None
    return -1 if unsure[first] else first


@dataclass(frozen=True, slots=True, eq=False)
class _Sizing:
    """Per trade: what sizes its entry (all arrays indexed by trade)."""

    fraction: float  # share of equity per entry, after the exposure and leverage caps
    leverage: float
    rate: float  # taker fee
    signal_close: np.ndarray
    side: np.ndarray
    entry_price: np.ndarray
    gross: np.ndarray  # a closed trade's return per unit of size: side * (exit - entry) - fees
    at_fill: bool  # sized at the fill price on the equity there (``size_at: fill``), not at the signal close

    def wanted(self, k: Any, previous_units: Any) -> Any:
        """Units of reversal trades ``k`` before the margin clamp: sized at the signal close on the
        equity that still holds trade ``k - 1`` (``previous_units`` per equity it started with)."""
        p = k - 1
        marked = 1 + previous_units * (self.side[p] * (self.signal_close[k] - self.entry_price[p])
                                       - self.rate * self.entry_price[p])
        return self.fraction * marked / ((1 + previous_units * self.gross[p]) * self.signal_close[k])


def _units(sizing: _Sizing, reverses: np.ndarray) -> np.ndarray:
    """Each trade's size per unit of the equity it starts with (the equity after the previous exit).

    A trade entered from flat is sized on that equity: ``min(fraction / signal_close, clamp)`` with
    the broker's margin clamp ``leverage / (entry_price * (1 + fee))``. A reversal (``reverses[k - 1]``:
    trade ``k`` enters on the bar trade ``k - 1`` exits) is sized on the equity at the signal close,
    which still holds the previous trade, so its size depends on the previous trade's size. All-in
    sizing hits the clamp on every reversal, which keeps it closed form; otherwise the reversals are
    solved in order. Sized at the fill, every trade spends its share of the equity after the previous
    exit at its own fill price: ``min(fraction / entry_price, clamp)``, closed form throughout.
    """
    clamp = sizing.leverage / (sizing.entry_price * (1 + sizing.rate))
    if sizing.at_fill:
        return np.minimum(sizing.fraction / sizing.entry_price, clamp)
    units = np.minimum(sizing.fraction / sizing.signal_close, clamp)
    k = np.flatnonzero(reverses) + 1
    if k.size == 0:
        return units
    units[k] = clamp[k]
    if np.all(sizing.wanted(k, units[k - 1]) >= clamp[k]):
        return units
    for i in k.tolist():
        units[i] = min(sizing.wanted(i, units[i - 1]), clamp[i])
    return units


def config_cash(config: BotConfig) -> float:
    return float(config.starting_balance)


def _fill_prices(opens: np.ndarray, side: np.ndarray, slip: float, tick: Decimal) -> np.ndarray:
    """The broker's fill price: the open moved ``slip`` against the trader, rounded to the tick."""
    raw = opens.astype(np.float64) if slip == 0.0 else np.where(side > 0, opens * (1 + slip), opens * (1 - slip))
    return round_to_tick(raw, tick)


def round_to_tick(prices: np.ndarray, tick: Decimal) -> np.ndarray:
    """What ``PaperBroker`` does to a fill price (decimal of the float's repr, half-even to the tick).

    Prices already on a power-of-ten tick (exchange prices usually are) pass a vectorised check;
    the others are rounded one by one with ``Decimal``.
    """
    out = prices.astype(np.float64, copy=True)
    exponent = int(tick.as_tuple().exponent)
    if tick == Decimal(1).scaleb(exponent) and exponent <= 0:
        off_grid = np.flatnonzero(np.round(out, -exponent) != out)
    else:
        off_grid = np.arange(out.size)
    for i in off_grid:
        out[i] = float((Decimal(repr(float(out[i]))) / tick).to_integral_value(ROUND_HALF_EVEN) * tick)
    return out


def _equity_curve(close: np.ndarray, position: np.ndarray, entries: np.ndarray, side: np.ndarray,
                  size: np.ndarray, entry_price: np.ndarray, before: np.ndarray, growth: np.ndarray,
                  cash: float, rate: float) -> np.ndarray:
    """Equity at each close: in a trade ``balance + side * (close * size - cost)``, i.e.
    ``base + slope * close`` per trade; flat, the equity the last trade ended with."""
    n = close.shape[0]
    if entries.size == 0:
        return np.full(n, cash, dtype=np.float64)
    cost = size * entry_price
    base = np.append(before - rate * cost - side * cost, cash)  # index -1: before the first trade
    slope = np.append(side * size, 0.0)
    flat = np.append(before * growth, cash)
    marks = np.zeros(n, dtype=np.int64)
    marks[entries] = np.arange(1, entries.size + 1)
    latest = np.maximum.accumulate(marks) - 1  # the latest trade entered at or before each bar
    return np.where(position != 0, base[latest] + slope[latest] * close, flat[latest])
