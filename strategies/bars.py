"""Candles as numpy arrays, and the evaluation windows that make live and vectorised signals equal.

TA-Lib's recursive indicators (EMA, MACD, RSI, ATR, ADX, and even SMA's running sum at the
floating-point level) depend on where the input series starts. To make the signal a bar gets
from the live engine *bit-for-bit* equal to the one a backtest computes, every signal is evaluated
on a window whose start is a function of the data alone:

* the **anchor** of a bar is the first bar of its UTC day (:data:`ANCHOR_MS`);
* the **window** of a bar runs from ``history`` bars before its anchor up to the bar itself
  (clamped at the first bar of the data).

A backtest computes indicators once per day-block over ``[anchor - history, end of day]``; the live
engine computes them over ``[anchor - history, bar]``. TA-Lib is causal, so the values at the bar
are the same numbers in both. See docs/strategies.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ANCHOR_MS = 86_400_000
"""Evaluation windows restart at each UTC midnight (every supported timeframe divides a day)."""

COLUMNS = ("open_time", "open", "high", "low", "close", "volume")
EXTRA_COLUMNS = ("funding_rate", "open_interest", "long_liquidations", "short_liquidations")  # strategies.inputs


@dataclass(frozen=True, slots=True)
class Bars:
    """OHLCV columns as numpy arrays (``open_time`` int64 epoch ms, the rest float64), ascending; ``extra``
    holds the market inputs a strategy asked for (:mod:`strategies.inputs`), float64 arrays of the same length."""

    open_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_frame(cls, candles: pd.DataFrame) -> Bars:
        """Columns of a candle DataFrame (see :data:`COLUMNS`); raises ``ValueError`` if one is missing."""
        missing = [c for c in COLUMNS if c not in candles.columns]
        if missing:
            raise ValueError(
                f"candle frame is missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}"
            )
        return cls(
            np.ascontiguousarray(candles["open_time"].to_numpy(), dtype=np.int64),
            *(np.ascontiguousarray(candles[c].to_numpy(), dtype=np.float64) for c in COLUMNS[1:]),
            {c: np.ascontiguousarray(candles[c].to_numpy(), dtype=np.float64)
             for c in EXTRA_COLUMNS if c in candles.columns},
        )

    def __len__(self) -> int:
        return len(self.open_time)

    def slice(self, start: int, stop: int) -> Bars:
        """Rows ``[start, stop)`` as views (no copy)."""
        return Bars(
            self.open_time[start:stop], self.open[start:stop], self.high[start:stop],
            self.low[start:stop], self.close[start:stop], self.volume[start:stop],
            {name: values[start:stop] for name, values in self.extra.items()},
        )

    def input(self, name: str) -> np.ndarray:
        """The market input ``name`` (a strategy lists the ones it reads in ``inputs``); ``KeyError`` naming what
        the bars carry when it is not attached."""
        try:
            return self.extra[name]
        except KeyError:
            raise KeyError(f"input {name!r} is not attached to these candles (they carry "
                           f"{', '.join(self.extra) or 'OHLCV only'}); list it in the strategy's inputs") from None

    def with_extra(self, extra: Mapping[str, np.ndarray]) -> Bars:
        return Bars(self.open_time, self.open, self.high, self.low, self.close, self.volume, dict(extra))

    def to_frame(self) -> pd.DataFrame:
        """A new DataFrame with copies of the columns (safe to hand to user code), market inputs included."""
        return pd.DataFrame({**{c: getattr(self, c).copy() for c in COLUMNS},
                             **{c: v.copy() for c, v in self.extra.items()}})


def check_ascending(open_time: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``open_time`` is strictly increasing."""
    if len(open_time) > 1:
        steps = np.diff(open_time)
        if not (steps > 0).all():
            bad = int(np.flatnonzero(steps <= 0)[0]) + 1
            raise ValueError(
                f"candles must be strictly ascending by open_time; row {bad} has open_time "
                f"{int(open_time[bad])} after {int(open_time[bad - 1])}"
            )


def anchor_rows(open_time: np.ndarray) -> np.ndarray:
    """For each row, the index of the first row of its UTC day."""
    n = len(open_time)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    day = open_time // ANCHOR_MS
    first = np.empty(n, dtype=bool)
    first[0] = True
    np.not_equal(day[1:], day[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    return starts[np.cumsum(first) - 1]


def evaluation_starts(open_time: np.ndarray, history: int) -> np.ndarray:
    """For each row, the first row of the window its signal is evaluated on."""
    return np.maximum(anchor_rows(open_time) - history, 0)


def last_evaluation_start(open_time: np.ndarray, history: int) -> int:
    """:func:`evaluation_starts` for the last row only, in O(log n)."""
    last = int(open_time[-1])
    anchor = int(np.searchsorted(open_time, last - last % ANCHOR_MS, side="left"))
    return max(anchor - history, 0)


def day_blocks(open_time: np.ndarray, history: int) -> Iterator[tuple[int, int, int]]:
    """``(window_start, block_start, block_end)`` per UTC day: rows ``[block_start, block_end)`` share
    the window starting at ``window_start``."""
    n = len(open_time)
    if n == 0:
        return
    day = open_time // ANCHOR_MS
    bounds = [*np.flatnonzero(np.diff(day) != 0) + 1, n]
    start = 0
    for end in bounds:
        yield max(start - history, 0), start, int(end)
        start = int(end)
