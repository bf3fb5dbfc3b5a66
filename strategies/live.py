"""The live path's candle window: a bounded numpy buffer per market.

It keeps exactly the rows live evaluation needs (``history`` bars before the first bar of the
current UTC day, plus the day so far), so :meth:`BaseStrategy.signal_at_end` on
:meth:`LiveWindow.bars` gives the same signal the vectorised path computes on the full series.
Appending is amortised O(1); the buffer is compacted at most about once per ``capacity - keep`` rows.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from strategies.bars import ANCHOR_MS, COLUMNS, Bars


class Added(StrEnum):
    """What :meth:`LiveWindow.add` did with a candle."""

    APPENDED = "appended"  # a new last bar
    REPLACED_LAST = "replaced_last"  # the last bar again (a revised candle): replaced, not appended
    REVISED_OLDER = "revised_older"  # an earlier bar still in the window: replaced in place
    IGNORED = "ignored"  # older than the window, or a time the window never had


class LiveWindow:
    """The last candles of one market as numpy arrays, trimmed to what evaluations need.

    ``keep`` is the longest ``history`` among the strategies evaluated on it; ``bars_per_day``
    bounds the size of the current day.
    """

    def __init__(self, keep: int, bars_per_day: int) -> None:
        self.keep = keep
        self.bars_per_day = bars_per_day
        self._size = 0
        self._alloc(keep + bars_per_day + max(64, (keep + bars_per_day) // 2))

    def _alloc(self, capacity: int) -> None:
        self._time = np.zeros(capacity, dtype=np.int64)
        self._values = np.zeros((5, capacity), dtype=np.float64)  # open, high, low, close, volume

    def __len__(self) -> int:
        return self._size

    @property
    def last_time(self) -> int | None:
        return int(self._time[self._size - 1]) if self._size else None

    def bars(self) -> Bars:
        """Views of the current rows (valid until the next :meth:`add`)."""
        n = self._size
        v = self._values
        return Bars(self._time[:n], v[0, :n], v[1, :n], v[2, :n], v[3, :n], v[4, :n])

    def seed(self, bars: Bars) -> None:
        """Replace the content with ``bars`` (ascending), e.g. the warm-up read from the database."""
        needed = len(bars) + self.bars_per_day + 64
        if needed > len(self._time):
            self._alloc(needed)
        n = len(bars)
        self._time[:n] = bars.open_time
        for row, column in enumerate(COLUMNS[1:]):
            self._values[row, :n] = getattr(bars, column)
        self._size = n
        self._trim()

    def add(self, open_time: int, ohlcv: tuple[float, float, float, float, float]) -> Added:
        """Append a closed candle; a repeated time replaces that row instead (never appended twice)."""
        last = self.last_time
        if last is not None and open_time <= last:
            if open_time == last:
                self._values[:, self._size - 1] = ohlcv
                return Added.REPLACED_LAST
            row = int(np.searchsorted(self._time[: self._size], open_time))
            if row < self._size and self._time[row] == open_time:
                self._values[:, row] = ohlcv
                return Added.REVISED_OLDER
            return Added.IGNORED
        if self._size == len(self._time):
            self._trim(new_time=open_time)
            if self._size == len(self._time):
                self._grow()
        self._time[self._size] = open_time
        self._values[:, self._size] = ohlcv
        self._size += 1
        return Added.APPENDED

    def set_keep(self, keep: int) -> None:
        self.keep = keep
        if len(self._time) < keep + self.bars_per_day + 64:
            self._grow(keep + self.bars_per_day + max(64, (keep + self.bars_per_day) // 2))

    def _trim(self, new_time: int | None = None) -> None:
        """Drop rows no evaluation of the last (or the about-to-come ``new_time``) bar will read."""
        if not self._size:
            return
        reference = self.last_time if new_time is None else new_time
        assert reference is not None
        day_start = reference - reference % ANCHOR_MS
        anchor = int(np.searchsorted(self._time[: self._size], day_start))
        start = max(anchor - self.keep, 0)
        if start:
            n = self._size - start
            self._time[:n] = self._time[start: self._size]
            self._values[:, :n] = self._values[:, start: self._size]
            self._size = n

    def _grow(self, capacity: int | None = None) -> None:
        capacity = capacity or 2 * len(self._time)
        time, values = self._time, self._values
        self._alloc(capacity)
        self._time[: self._size] = time[: self._size]
        self._values[:, : self._size] = values[:, : self._size]
