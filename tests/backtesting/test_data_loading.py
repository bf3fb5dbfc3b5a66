"""Candles from CSV files and from the database arrive validated, oldest first, in epoch ms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtesting.data import load_db_candles, read_csv_candles
from config.domain import Candle, Timeframe
from config.errors import ConfigurationError
from database.engine import make_engine, make_session_factory, session_scope
from database.repositories import market
from tests.backtesting.builders import OKX_5M, make_candles, okx_5m, write_csv


def test_the_okx_fixture_reads_with_its_ts_ms_column() -> None:
    data = okx_5m()
    assert len(data) == 70_499
    assert data.open_time[0] == 1_651_363_200_000  # 2022-05-01 00:00 UTC
    assert (data.open[0], data.high[0], data.low[0], data.close[0]) == (37630.5, 37736.4, 37616.7, 37715.9)
    assert data.bar_ms == 300_000
    assert str(OKX_5M) == data.source


@pytest.mark.parametrize("column", ["open_time", "ts_ms", "timestamp", "datetime"])
def test_each_accepted_time_column_gives_the_same_candles(tmp_path: Path, column: str) -> None:
    original = make_candles(50)
    loaded = read_csv_candles(write_csv(original, tmp_path / f"{column}.csv", column))
    assert np.array_equal(loaded.open_time, original.open_time)
    assert np.array_equal(loaded.close, original.close)


def test_a_file_without_a_time_column_is_refused_with_the_columns_it_has(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("when,open,high,low,close,volume\n1,1,1,1,1,1\n")
    with pytest.raises(ConfigurationError, match="no time column; expected one of open_time, ts_ms"):
        read_csv_candles(path)


def test_unsorted_rows_are_refused_naming_the_row(tmp_path: Path) -> None:
    path = tmp_path / "unsorted.csv"
    path.write_text("open_time,open,high,low,close,volume\n2000,1,2,1,1,1\n1000,1,2,1,1,1\n")
    with pytest.raises(ConfigurationError, match="row 1: open_time is not after"):
        read_csv_candles(path)


def test_a_high_below_the_close_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "inconsistent.csv"
    path.write_text("open_time,open,high,low,close,volume\n1000,10,11,9,10,1\n2000,10,10.5,9,11,1\n")
    with pytest.raises(ConfigurationError, match=r"row 1: high is below max\(open, close\)"):
        read_csv_candles(path)


def _store(url: str, count: int) -> list[Candle]:
    data = make_candles(count, step_ms=60_000)
    candles = [Candle("okx", "BTC-USDT", Timeframe.M1, int(t), float(o), float(h), float(lo), float(c), float(v))
               for t, o, h, lo, c, v in zip(data.open_time, data.open, data.high, data.low, data.close,
                                            data.volume, strict=True)]
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as session:
        market.upsert_candles(session, candles)
    engine.dispose()
    return candles


def test_stored_candles_load_exactly_with_warm_up_before_the_start(db_url: str) -> None:
    candles = _store(db_url, 300)
    start, end = candles[100].open_time_ms, candles[250].open_time_ms
    engine = make_engine(db_url)
    with session_scope(make_session_factory(engine)) as session:
        data, first = load_db_candles(session, "okx", "BTC-USDT", Timeframe.M1, start, end, warmup_bars=40)
        frame = market.load_candles_frame(session, "okx", "BTC-USDT", Timeframe.M1)
    engine.dispose()
    assert data.open_time[first] == start and first == 40
    assert data.open_time[-1] == candles[249].open_time_ms
    assert [float(x) for x in data.close] == [c.close for c in candles[60:250]]
    assert frame["open_time"].dtype == np.int64
    assert frame["open_time"].tolist() == [c.open_time_ms for c in candles]
    assert frame["volume"].tolist() == [c.volume for c in candles]


def test_a_period_without_stored_candles_says_to_backfill(db_url: str) -> None:
    engine = make_engine(db_url)
    with session_scope(make_session_factory(engine)) as session, pytest.raises(ConfigurationError,
                                                                                match="backfill"):
        load_db_candles(session, "okx", "ETH-USDT", Timeframe.M1, 0, 10_000_000)
    engine.dispose()
