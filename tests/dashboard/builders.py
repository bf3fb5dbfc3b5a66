"""Small builders for the dashboard tests: real OKX candles from tests/fixtures, seeded into a database."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from config.domain import Candle, Timeframe
from dashboard.candles import OhlcvArrays, resample
from database.engine import session_scope
from database.repositories.market import upsert_candles

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dash_okx_BTC-USDT-SWAP_1m_2026-01-01_07.csv.gz"
EXCHANGE, SYMBOL = "okx", "BTC-USDT-SWAP"


def fixture_candles(count: int | None = None, symbol: str = SYMBOL) -> list[Candle]:
    """The first ``count`` real 1m candles of the fixture (OKX BTC-USDT-SWAP, 2026-01-01 onwards)."""
    out: list[Candle] = []
    with gzip.open(FIXTURE, "rt", newline="") as handle:
        for row in csv.DictReader(handle):
            out.append(Candle(EXCHANGE, symbol, Timeframe.M1, int(row["ts_ms"]), float(row["open"]),
                              float(row["high"]), float(row["low"]), float(row["close"]), float(row["volume"])))
            if count is not None and len(out) >= count:
                break
    return out


def roll_up(candles: Sequence[Candle], timeframe: Timeframe) -> list[Candle]:
    """Aggregate 1m candles into ``timeframe`` candles (what the collector stores as roll-ups)."""
    if not candles:
        return []
    arrays = resample(OhlcvArrays.from_candles(candles), timeframe.ms)
    first = candles[0]
    return [
        Candle(first.exchange, first.symbol, timeframe, int(t), float(o), float(h), float(lo), float(c), float(v))
        for t, o, h, lo, c, v in zip(*arrays.columns(), strict=True)
    ]


def seed_candles(factory: sessionmaker[Session], candles: Sequence[Candle],
                 roll_ups: Iterable[Timeframe] = (Timeframe.M5, Timeframe.M15, Timeframe.H1)) -> None:
    with session_scope(factory) as session:
        upsert_candles(session, candles)
        for timeframe in roll_ups:
            upsert_candles(session, roll_up(candles, timeframe))
