"""Evaluation windows (anchored at each UTC day) and the bounded live window."""

from __future__ import annotations

import numpy as np
import pytest

from strategies.bars import (
    ANCHOR_MS,
    Bars,
    anchor_rows,
    check_ascending,
    day_blocks,
    evaluation_starts,
    last_evaluation_start,
)
from strategies.live import Added, LiveWindow
from tests.strategies.candles import ONE_MINUTE, load_candles

HOUR = 3_600_000


def test_each_row_is_anchored_at_the_first_row_of_its_utc_day_even_with_gaps() -> None:
    # 4h bars with the 08:00 bar of day 1 missing; day 2 starts at row 5.
    times = np.array([0, 4, 12, 16, 20, 24, 28, 32], dtype=np.int64) * HOUR
    assert anchor_rows(times).tolist() == [0, 0, 0, 0, 0, 5, 5, 5]
    assert evaluation_starts(times, history=2).tolist() == [0, 0, 0, 0, 0, 3, 3, 3]
    assert list(day_blocks(times, history=2)) == [(0, 0, 5), (3, 5, 8)]
    assert [last_evaluation_start(times[: i + 1], 2) for i in range(8)] == [0, 0, 0, 0, 0, 3, 3, 3]


def test_candles_out_of_order_are_refused_by_the_vectorised_path() -> None:
    with pytest.raises(ValueError, match="row 2 has open_time 60000 after 120000"):
        check_ascending(np.array([0, 120_000, 60_000]))


def test_the_live_window_replaces_a_repeated_candle_instead_of_appending_it() -> None:
    window = LiveWindow(keep=10, bars_per_day=1440)
    assert window.add(0, (1, 1, 1, 1, 1)) is Added.APPENDED
    assert window.add(60_000, (2, 2, 2, 2, 1)) is Added.APPENDED
    assert window.add(60_000, (2, 3, 2, 3, 1)) is Added.REPLACED_LAST
    assert window.add(0, (1, 1, 0.5, 0.5, 1)) is Added.REVISED_OLDER
    assert window.add(30_000, (9, 9, 9, 9, 9)) is Added.IGNORED
    bars = window.bars()
    assert bars.open_time.tolist() == [0, 60_000]
    assert bars.close.tolist() == [0.5, 3.0]


def test_the_live_window_stays_bounded_and_keeps_every_row_an_evaluation_reads() -> None:
    frame = load_candles(ONE_MINUTE)
    keep = 100
    window = LiveWindow(keep=keep, bars_per_day=ANCHOR_MS // 60_000)
    full = Bars.from_frame(frame)
    largest = 0
    for i, row in enumerate(frame.itertuples(index=False)):
        window.add(int(row.open_time), (row.open, row.high, row.low, row.close, row.volume))
        largest = max(largest, len(window))
        start = last_evaluation_start(full.open_time[: i + 1], keep)
        bars = window.bars()
        assert bars.open_time[0] <= full.open_time[start], f"row {i}: needed rows were trimmed"
        np.testing.assert_array_equal(bars.close[-(i + 1 - start):], full.close[start: i + 1])
    assert largest <= keep + 1440 + 64 + (keep + 1440) // 2


def test_seeding_replaces_the_window_and_trims_it_to_what_is_needed() -> None:
    frame = load_candles(ONE_MINUTE)
    window = LiveWindow(keep=50, bars_per_day=1440)
    window.seed(Bars.from_frame(frame))
    # the last bar is on day 3 (first row 2880): rows from 2880 - 50 are kept
    assert len(window) == len(frame) - 2830
    assert window.bars().open_time[0] == frame["open_time"].iloc[2830]
