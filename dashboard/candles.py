"""Candle arrays for charts: windowing and OHLC-aware downsampling (pure numpy, no I/O).

A chart never receives more than a fixed number of candles: a wide window is first read from a
coarser stored timeframe (the collector stores 1m … 1d roll-ups) and then aggregated into
"nice" buckets (1m, 5m, 15m, 1h …) so that bucket edges stay put while the user pans.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from config.domain import Candle, Timeframe

_MINUTE = 60_000
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
NICE_BUCKETS_MS: tuple[int, ...] = (
    _MINUTE, 2 * _MINUTE, 5 * _MINUTE, 10 * _MINUTE, 15 * _MINUTE, 30 * _MINUTE,
    _HOUR, 2 * _HOUR, 4 * _HOUR, 6 * _HOUR, 12 * _HOUR,
    _DAY, 2 * _DAY, 7 * _DAY, 14 * _DAY, 28 * _DAY,
)


@dataclass(frozen=True, slots=True)
class OhlcvArrays:
    """Candles as column arrays: ``time_ms`` int64 bucket open times, the rest float64, ascending."""

    time_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @classmethod
    def empty(cls) -> OhlcvArrays:
        return cls(np.empty(0, np.int64), *(np.empty(0, np.float64) for _ in range(5)))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> OhlcvArrays:
        """From a candle frame (``open_time`` epoch ms, ``open`` … ``volume``)."""
        if frame.empty:
            return cls.empty()
        return cls(
            frame["open_time"].to_numpy(dtype=np.int64),
            *(frame[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")),
        )

    @classmethod
    def from_records(cls, records: np.ndarray) -> OhlcvArrays:
        """From a structured array with ``open_time_ms`` and ``open`` … ``volume`` fields (what
        ``database.repositories.market.candle_arrays`` returns), as contiguous columns."""
        return cls(
            np.ascontiguousarray(records["open_time_ms"], dtype=np.int64),
            *(np.ascontiguousarray(records[c], dtype=np.float64) for c in ("open", "high", "low", "close", "volume")),
        )

    @classmethod
    def from_candles(cls, candles: Sequence[Candle]) -> OhlcvArrays:
        if not candles:
            return cls.empty()
        return cls(
            np.fromiter((c.open_time_ms for c in candles), np.int64, len(candles)),
            np.fromiter((c.open for c in candles), np.float64, len(candles)),
            np.fromiter((c.high for c in candles), np.float64, len(candles)),
            np.fromiter((c.low for c in candles), np.float64, len(candles)),
            np.fromiter((c.close for c in candles), np.float64, len(candles)),
            np.fromiter((c.volume for c in candles), np.float64, len(candles)),
        )

    def __len__(self) -> int:
        return len(self.time_ms)

    def slice(self, start: int, stop: int) -> OhlcvArrays:
        return OhlcvArrays(*(a[start:stop] for a in self.columns()))

    def between(self, start_ms: int, end_ms: int) -> OhlcvArrays:
        """Rows with ``start_ms <= time_ms < end_ms``."""
        lo = int(np.searchsorted(self.time_ms, start_ms, "left"))
        hi = int(np.searchsorted(self.time_ms, end_ms, "left"))
        return self.slice(lo, hi)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"open_time": self.time_ms, "open": self.open, "high": self.high,
                             "low": self.low, "close": self.close, "volume": self.volume})

    def columns(self) -> tuple[np.ndarray, ...]:
        return (self.time_ms, self.open, self.high, self.low, self.close, self.volume)


def bucket_ms_for(span_ms: int, base_ms: int, max_points: int) -> int:
    """The smallest bucket (a nice duration that is a multiple of ``base_ms``) giving at most
    ``max_points`` buckets over ``span_ms``."""
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    if span_ms <= base_ms * max_points:
        return base_ms
    for bucket in NICE_BUCKETS_MS:
        if bucket % base_ms == 0 and span_ms <= bucket * max_points:
            return bucket
    return base_ms * math.ceil(span_ms / (base_ms * max_points))


def bucket_starts(time_ms: np.ndarray, bucket_ms: int) -> np.ndarray:
    """Index of the first row of each bucket."""
    if len(time_ms) == 0:
        return np.empty(0, np.int64)
    keys = time_ms // bucket_ms
    return np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))


def resample(arrays: OhlcvArrays, bucket_ms: int) -> OhlcvArrays:
    """Aggregate into ``bucket_ms`` buckets: first open, max high, min low, last close, summed volume."""
    if len(arrays) == 0:
        return arrays
    starts = bucket_starts(arrays.time_ms, bucket_ms)
    if len(starts) == len(arrays):
        return OhlcvArrays(arrays.time_ms - arrays.time_ms % bucket_ms, arrays.open, arrays.high,
                           arrays.low, arrays.close, arrays.volume)
    ends = np.append(starts[1:], len(arrays)) - 1
    return OhlcvArrays(
        arrays.time_ms[starts] - arrays.time_ms[starts] % bucket_ms,
        arrays.open[starts],
        np.maximum.reduceat(arrays.high, starts),
        np.minimum.reduceat(arrays.low, starts),
        arrays.close[ends],
        np.add.reduceat(arrays.volume, starts),
    )


def last_in_bucket(time_ms: np.ndarray, values: np.ndarray, bucket_ms: int) -> np.ndarray:
    """The value at the end of each bucket (how an indicator series follows a resampled close)."""
    if len(values) == 0:
        return values
    starts = bucket_starts(time_ms, bucket_ms)
    return values[np.append(starts[1:], len(values)) - 1]


def source_timeframe(native: Timeframe, span_ms: int, max_rows: int,
                     stored: Sequence[Timeframe]) -> Timeframe:
    """The finest stored timeframe (a multiple of ``native``) that covers ``span_ms`` in at most
    ``max_rows`` candles; the coarsest such one when none is that coarse."""
    candidates = sorted((tf for tf in {native, *stored} if tf.ms % native.ms == 0), key=lambda t: t.ms)
    for tf in candidates:
        if span_ms <= tf.ms * max_rows:
            return tf
    return candidates[-1]


def point_budget(array_count: int, max_bytes: int = 90_000) -> int:
    """Candles per figure so that ``array_count`` float64 arrays, base64-encoded, fit ``max_bytes``."""
    per_candle = array_count * 8 * 4 / 3
    return max(50, min(1_000, int(max_bytes / per_candle)))
