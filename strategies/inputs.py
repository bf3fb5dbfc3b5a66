"""Market inputs beyond OHLCV, per bar: the funding rate, open interest and liquidations of a perpetual.

A strategy names the inputs it reads in ``inputs`` (:data:`INPUTS`); the backtest and the live engine then
attach them to its candles as extra columns, built by the one function here, :func:`input_columns`, from the
same stored history. Each value is what was known when the bar **closed** (``close = open_time + bar_ms``):

* ``funding_rate``: the rate of the latest funding settlement at or before the close (NaN before the first);
* ``open_interest``: the latest open-interest report made before the close (NaN before the first), in the
  venue's unit (contracts on OKX, base currency on Binance and Bybit);
* ``long_liquidations`` / ``short_liquidations``: the size of long / short positions liquidated during the
  bar (forced sells / forced buys, ``open_time <= ts < close``), 0 when none.

Values depend only on the bar and the history, not on where a series starts, so a live window and a
backtest's whole series get the same numbers for the same bar (liquidation sums are added per bar from the
bar's own first trade, never as differences of a running sum).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from strategies.bars import EXTRA_COLUMNS

INPUTS = EXTRA_COLUMNS
FUNDING_LOOKBACK_MS = 86_400_000  # a live read reaches back a day for the settlement in force at a window's start


def _empty(dtype: type) -> np.ndarray:
    return np.empty(0, dtype=dtype)


@dataclass(frozen=True, slots=True)
class MarketHistory:
    """The stored history inputs are made from, each series oldest first: funding settlements ``(time,
    rate)``, open-interest reports ``(time, value)``, liquidations ``(time, size)`` of longs and of shorts."""

    funding_times: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    funding_rates: np.ndarray = field(default_factory=lambda: _empty(np.float64))
    oi_times: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    oi_values: np.ndarray = field(default_factory=lambda: _empty(np.float64))
    long_liq_times: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    long_liq_sizes: np.ndarray = field(default_factory=lambda: _empty(np.float64))
    short_liq_times: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    short_liq_sizes: np.ndarray = field(default_factory=lambda: _empty(np.float64))
    source: str = ""


def input_columns(open_time: np.ndarray, bar_ms: int, history: MarketHistory,
                  names: Sequence[str] = INPUTS) -> dict[str, np.ndarray]:
    """The columns ``names`` for bars opening at ``open_time`` (ascending), from ``history``."""
    close = open_time + bar_ms
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name == "funding_rate":
            out[name] = _as_of(history.funding_times, history.funding_rates, close, side="right")
        elif name == "open_interest":
            out[name] = _as_of(history.oi_times, history.oi_values, close, side="left")
        elif name == "long_liquidations":
            out[name] = _bar_sums(history.long_liq_times, history.long_liq_sizes, open_time, close)
        elif name == "short_liquidations":
            out[name] = _bar_sums(history.short_liq_times, history.short_liq_sizes, open_time, close)
        else:
            raise ValueError(f"unknown input {name!r} (known: {', '.join(INPUTS)})")
    return out


def _as_of(times: np.ndarray, values: np.ndarray, at: np.ndarray, side: str) -> np.ndarray:
    """The last value whose time is ``<= at`` (``side="right"``) or ``< at`` (``"left"``); NaN before the first."""
    index = np.searchsorted(times, at, side=side) - 1  # type: ignore[call-overload]
    out = np.full(len(at), np.nan)
    known = index >= 0
    out[known] = values[index[known]]
    return out


def _bar_sums(times: np.ndarray, sizes: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """For each bar, the sum of ``sizes`` with ``start <= time < stop``, each bar summed on its own."""
    lo = np.searchsorted(times, start, side="left")
    hi = np.searchsorted(times, stop, side="left")
    out = np.zeros(len(start))
    busy = hi > lo
    if busy.any():
        padded = np.append(sizes, 0.0)  # reduceat may be pointed at the end
        bounds = np.column_stack((lo[busy], hi[busy])).ravel()
        out[busy] = np.add.reduceat(padded, bounds)[::2]
    return out
