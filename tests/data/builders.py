"""Small builders for the market-data tests: fixture paths, tapes, and an independent aggregation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from config.domain import Candle, Side, Timeframe, Trade
from data.replay.tape import Tape, read_tape, tape_frame

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SHORT_TAPE = FIXTURES / "tape_binance_spot_BTCUSDT_2023-04-05T0000.csv.gz"  # 3 144 real trades
DAY_TAPE = ROOT / "data" / "samples" / "tape_BTC-USDT_binance_spot_2024-08-08T2354.csv.gz"  # 19 904, spans 00:00
SYMBOL = "BTC-USDT"


def load(path: Path = SHORT_TAPE) -> Tape:
    return read_tape(path)


def tape_trades(tape: Tape, symbol: str = SYMBOL) -> list[Trade]:
    return [Trade("okx", symbol, int(i), int(ts), float(p), float(s), Side.BUY if b else Side.SELL, int(ts))
            for i, ts, p, s, b in zip(tape.trade_id, tape.ts_ms, tape.price, tape.size, tape.is_buy, strict=True)]


def expected_candles(tape: Tape, timeframe: Timeframe) -> pd.DataFrame:
    """Independent aggregation (pandas groupby on the tape), indexed by bucket open time (ms)."""
    frame = tape_frame(tape)
    frame = frame.assign(bucket=frame["ts_ms"] // timeframe.ms * timeframe.ms,
                         quote=frame["price"] * frame["size"],
                         buy=np.where(frame["side"] == "buy", frame["size"], 0.0))
    return frame.groupby("bucket").agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"), close=("price", "last"),
        volume=("size", "sum"), quote_volume=("quote", "sum"), buy_volume=("buy", "sum"),
        trade_count=("price", "size"))


def assert_candles_match(candles: list[Candle], expected: pd.DataFrame, *, counts: bool = True) -> None:
    """Same buckets; OHLC exact; volumes to 1e-9 relative (summation order differs); counts exact."""
    assert [c.open_time_ms for c in candles] == [int(t) for t in expected.index]
    for c, row in zip(candles, expected.itertuples(), strict=True):
        assert (c.open, c.high, c.low, c.close) == (row.open, row.high, row.low, row.close), (c, row)
        assert c.volume == pytest_approx(row.volume) and c.quote_volume == pytest_approx(row.quote_volume), (c, row)
        if counts:
            assert c.trade_count == row.trade_count, (c, row)
            assert c.buy_volume == pytest_approx(row.buy_volume, abs_=1e-12), (c, row)


def pytest_approx(value: float, abs_: float = 0.0) -> object:
    import pytest

    return pytest.approx(value, rel=1e-9, abs=abs_)
