from __future__ import annotations

import numpy as np
import pytest

from config.domain import Timeframe
from dashboard.candles import (
    OhlcvArrays,
    bucket_ms_for,
    last_in_bucket,
    point_budget,
    resample,
    source_timeframe,
)
from tests.dashboard.builders import fixture_candles

MINUTE = 60_000


def arrays(n: int = 600) -> OhlcvArrays:
    return OhlcvArrays.from_candles(fixture_candles(n))


def test_resampling_keeps_first_open_extreme_high_low_last_close_and_total_volume() -> None:
    data = arrays(600)
    five = resample(data, 5 * MINUTE)
    assert len(five) == 120
    for k in (0, 57, 119):
        rows = slice(5 * k, 5 * k + 5)
        assert five.time_ms[k] == data.time_ms[rows][0]
        assert five.open[k] == data.open[rows][0]
        assert five.high[k] == data.high[rows].max()
        assert five.low[k] == data.low[rows].min()
        assert five.close[k] == data.close[rows][-1]
        assert five.volume[k] == pytest.approx(data.volume[rows].sum())


def test_resampling_handles_gaps_and_partial_buckets() -> None:
    data = arrays(30)
    keep = np.r_[0:3, 7:30]  # minutes 3..6 missing
    gappy = OhlcvArrays(*(c[keep] for c in data.columns()))
    out = resample(gappy, 5 * MINUTE)
    assert list((out.time_ms - out.time_ms[0]) // MINUTE) == [0, 5, 10, 15, 20, 25]
    assert out.close[0] == data.close[2] and out.open[1] == data.open[7]


def test_the_bucket_is_the_native_timeframe_while_the_window_fits_the_budget() -> None:
    assert bucket_ms_for(500 * MINUTE, MINUTE, 500) == MINUTE
    assert bucket_ms_for(501 * MINUTE, MINUTE, 500) == 2 * MINUTE
    assert bucket_ms_for(100_000 * MINUTE, MINUTE, 1000) == 2 * 60 * MINUTE
    assert bucket_ms_for(10**12, MINUTE, 100) % MINUTE == 0


def test_buckets_are_multiples_of_the_source_timeframe() -> None:
    for span in (10**6, 10**8, 10**10, 10**11):
        for base in (Timeframe.M1, Timeframe.M5, Timeframe.M15, Timeframe.H4):
            assert bucket_ms_for(span, base.ms, 300) % base.ms == 0


def test_wide_windows_read_from_a_coarser_stored_timeframe() -> None:
    stored = (Timeframe.M1, Timeframe.M5, Timeframe.H1, Timeframe.D1)
    assert source_timeframe(Timeframe.M1, 1000 * MINUTE, 4000, stored) == Timeframe.M1
    assert source_timeframe(Timeframe.M1, 100_000 * MINUTE, 4000, stored) == Timeframe.H1
    assert source_timeframe(Timeframe.M1, 10**13, 4000, stored) == Timeframe.D1
    # never finer than the chart's own timeframe, never a timeframe that does not divide into it
    assert source_timeframe(Timeframe.M15, 1000 * MINUTE, 4000, (Timeframe.M5, Timeframe.M30)) == Timeframe.M15


def test_indicator_values_follow_the_bucket_close() -> None:
    data = arrays(20)
    values = np.arange(20, dtype=float)
    assert list(last_in_bucket(data.time_ms, values, 5 * MINUTE)) == [4.0, 9.0, 14.0, 19.0]


def test_the_point_budget_shrinks_as_arrays_are_added() -> None:
    assert point_budget(7) > point_budget(11) > point_budget(21) >= 50
    assert point_budget(7) * 7 * 8 * 4 / 3 <= 90_000


def test_between_selects_a_half_open_time_range() -> None:
    data = arrays(10)
    window = data.between(int(data.time_ms[2]), int(data.time_ms[5]))
    assert list(window.time_ms) == list(data.time_ms[2:5])
