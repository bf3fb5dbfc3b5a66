"""Funding settlements of a perpetual swap, for backtests (issue 14.3): when they happened and at what rate.

A file is CSV (optionally ``.gz``) with a time column (``ts_ms``, ``funding_time``, ``timestamp`` or ``datetime``;
the first present wins; epoch ms or ISO 8601) and ``funding_rate`` (a fraction: 0.0001 = 0.01% of the position's
notional per settlement). OKX and Binance settle every 8 hours; the bundled history is
``data/samples/okx_BTC-USDT-SWAP_funding_rate_2026-01-01_2026-01-15.csv`` (real, data/samples/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backtesting.data import parse_times
from config.errors import ConfigurationError

TIME_COLUMNS = ("ts_ms", "funding_time", "timestamp", "datetime", "datetime_utc")


@dataclass(frozen=True, slots=True, eq=False)
class FundingSeries:
    """Settlement times (epoch ms, strictly increasing) and rates."""

    time_ms: np.ndarray
    rate: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return int(self.time_ms.shape[0])


def read_funding_csv(path: str | Path) -> FundingSeries:
    file = Path(path)
    source = str(file)
    if not file.is_file():
        raise ConfigurationError(f"no such file {source!r}; expected a CSV of funding settlements",
                                 source="--funding-file")
    try:
        frame = pd.read_csv(file)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read as CSV ({exc})", source=source) from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    time_column = next((c for c in TIME_COLUMNS if c in frame.columns), None)
    if time_column is None or "funding_rate" not in frame.columns:
        raise ConfigurationError(f"expected a time column ({', '.join(TIME_COLUMNS)}) and funding_rate, got "
                                 f"{list(frame.columns)}", source=source)
    times = parse_times(frame[time_column], source, time_column)
    rates = pd.to_numeric(frame["funding_rate"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(rates) | (np.abs(rates) >= 0.1))
    if bad.size:
        raise ConfigurationError(f"row {int(bad[0]) + 2}: funding_rate {frame['funding_rate'].iloc[bad[0]]!r} "
                                 "is not a number below 0.1 in size", source=source, field="funding_rate")
    if times.size > 1 and not (np.diff(times) > 0).all():
        row = int(np.flatnonzero(np.diff(times) <= 0)[0]) + 3
        raise ConfigurationError(f"row {row}: settlement times must increase", source=source, field=time_column)
    return FundingSeries(times.astype(np.int64), rates, source)
