"""Candles for a backtest: from a CSV file or the database, validated, as numpy arrays.

The strategy sees them as a DataFrame with ``open_time`` (int64 epoch ms), ``open``, ``high``,
``low``, ``close`` and ``volume``; the engines read the arrays directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from config.domain import Timeframe
from config.errors import ConfigurationError

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
TIME_COLUMNS = ("open_time", "ts_ms", "timestamp", "datetime")
# Epoch values below this are seconds (1e11 ms is March 1973; 1e11 s is the year 5138).
_SECONDS_LIMIT = 100_000_000_000


@dataclass(frozen=True, slots=True, eq=False)
class CandleData:
    """Read-only OHLCV arrays, oldest first, open times strictly increasing."""

    open_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    source: str = ""
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)  # market inputs (strategies.inputs)

    def __post_init__(self) -> None:
        for name in ("open_time", *PRICE_COLUMNS):
            getattr(self, name).flags.writeable = False

    def __len__(self) -> int:
        return int(self.open_time.shape[0])

    def frame(self) -> pd.DataFrame:
        """The candles as the DataFrame strategies take (no copy of the arrays), market inputs included."""
        return pd.DataFrame(
            {"open_time": self.open_time, "open": self.open, "high": self.high, "low": self.low,
             "close": self.close, "volume": self.volume, **self.extra},
            copy=False,
        )

    def with_extra(self, extra: Mapping[str, np.ndarray]) -> CandleData:
        return CandleData(self.open_time, self.open, self.high, self.low, self.close, self.volume, self.source,
                          dict(extra))

    def slice(self, start: int, stop: int | None = None) -> CandleData:
        part = slice(start, stop)
        return CandleData(self.open_time[part], self.open[part], self.high[part], self.low[part],
                          self.close[part], self.volume[part], self.source,
                          {name: values[part] for name, values in self.extra.items()})

    def index_at(self, time_ms: int) -> int:
        """Index of the first bar opening at or after ``time_ms``."""
        return int(np.searchsorted(self.open_time, time_ms, side="left"))

    @property
    def bar_ms(self) -> int:
        """The usual bar length (median spacing of open times); 0 for fewer than two bars."""
        if len(self) < 2:
            return 0
        return int(np.median(np.diff(self.open_time)))

    def fingerprint(self) -> str:
        """SHA-256 of the arrays: stored with a run so a re-run can prove it saw the same data."""
        digest = hashlib.sha256()
        for name in ("open_time", *PRICE_COLUMNS):
            digest.update(np.ascontiguousarray(getattr(self, name)).tobytes())
        return digest.hexdigest()


def candles_from_frame(frame: pd.DataFrame, source: str = "") -> CandleData:
    """Validate a DataFrame with ``open_time`` (ms) and OHLCV columns and wrap it as arrays."""
    missing = [c for c in ("open_time", *PRICE_COLUMNS) if c not in frame.columns]
    if missing:
        raise ConfigurationError(f"missing columns {missing}; expected open_time, open, high, low, close, "
                                 f"volume, got {list(frame.columns)}", source=source or None)
    try:
        arrays = {c: np.ascontiguousarray(frame[c].to_numpy(dtype=np.float64)) for c in PRICE_COLUMNS}
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"prices and volume must be numbers ({exc})", source=source or None) from None
    times = np.ascontiguousarray(frame["open_time"].to_numpy(dtype=np.int64))
    data = CandleData(times, arrays["open"], arrays["high"], arrays["low"], arrays["close"],
                      arrays["volume"], source)
    validate_candles(data)
    return data


def validate_candles(data: CandleData) -> None:
    """Raise ``ConfigurationError`` naming the first bad row (times, finiteness, OHLC consistency)."""
    source = data.source or None
    prices = np.vstack([data.open, data.high, data.low, data.close])
    bad = ~np.isfinite(prices).all(axis=0) | (prices <= 0).any(axis=0)
    bad |= ~np.isfinite(data.volume) | (data.volume < 0)
    _raise_first(bad, data, "prices must be positive finite numbers and volume >= 0", source)
    _raise_first(data.high < np.maximum(data.open, data.close), data, "high is below max(open, close)", source)
    _raise_first(data.low > np.minimum(data.open, data.close), data, "low is above min(open, close)", source)
    if len(data) > 1:
        steps = np.diff(data.open_time)
        not_increasing = np.concatenate([[False], steps <= 0])
        _raise_first(not_increasing, data, "open_time is not after the previous row's (sort and de-duplicate)",
                     source)


def _raise_first(mask: np.ndarray, data: CandleData, reason: str, source: str | None) -> None:
    if mask.any():
        row = int(np.argmax(mask))
        values = (f"open_time={data.open_time[row]} o={data.open[row]} h={data.high[row]} "
                  f"l={data.low[row]} c={data.close[row]} v={data.volume[row]}")
        raise ConfigurationError(f"row {row}: {reason} ({values})", source=source)


def read_csv_candles(path: str | Path) -> CandleData:
    """Read candles from a CSV (optionally ``.gz``) file.

    The header must hold a time column (``open_time``, ``ts_ms``, ``timestamp`` or ``datetime``;
    the first present wins) and ``open, high, low, close, volume``. Numeric times are epoch
    milliseconds, or seconds when below 1e11; text times are ISO 8601, naive meaning UTC.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigurationError(f"no such file {str(file)!r}; expected a CSV of candles", source="--data-file")
    try:
        frame = pd.read_csv(file)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read as CSV ({exc})", source=str(file)) from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    time_column = next((c for c in TIME_COLUMNS if c in frame.columns), None)
    if time_column is None:
        raise ConfigurationError(f"no time column; expected one of {', '.join(TIME_COLUMNS)}, "
                                 f"got {list(frame.columns)}", source=str(file))
    frame = frame.assign(open_time=parse_times(frame[time_column], str(file), time_column))
    return candles_from_frame(frame, source=str(file))


def parse_times(column: pd.Series, source: str, name: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise ConfigurationError("empty or non-finite time values", source=source, field=name)
        times = values.astype(np.int64)
        return np.where(np.abs(times) < _SECONDS_LIMIT, times * 1000, times)
    try:
        parsed = pd.to_datetime(column, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"times are neither epoch numbers nor ISO 8601 ({exc})", source=source,
                                 field=name) from None
    return (parsed.astype("datetime64[ms, UTC]").astype(np.int64)).to_numpy()


def load_db_candles(session: Session, exchange: str, symbol: str, timeframe: Timeframe,
                    start_ms: int | None, end_ms: int | None, warmup_bars: int = 0) -> tuple[CandleData, int]:
    """Stored candles in ``[start_ms, end_ms)`` plus up to ``warmup_bars`` bars before ``start_ms``.

    Returns the data and the index of the first bar at or after ``start_ms`` (where trading may
    begin; the earlier bars only feed indicators).
    """
    from database.repositories.market import load_candles_frame

    load_from = None if start_ms is None else start_ms - warmup_bars * timeframe.ms
    frame = load_candles_frame(session, exchange, symbol, timeframe, load_from, end_ms)
    source = f"db:{exchange}/{symbol}/{timeframe.value}"
    if frame.empty:
        raise ConfigurationError(f"no stored candles for {exchange} {symbol} {timeframe.value} in the period; "
                                 "backfill them first", source=source)
    data = candles_from_frame(frame, source=source)
    return data, 0 if start_ms is None else data.index_at(start_ms)
