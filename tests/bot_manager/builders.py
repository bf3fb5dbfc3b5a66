"""Small builders for the bot tests: real OKX candles, bot configs, a migrated database."""

from __future__ import annotations

import csv
import gzip
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from config.domain import Candle, Timeframe
from database.engine import make_engine, make_session_factory, session_scope
from database.repositories.market import upsert_candles

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BTC_1M = FIXTURES / "candles_okx_BTC-USDT-SWAP_1m_2026-01-01_4000.csv.gz"


def load_candles(n: int | None = None, symbol: str = "BTC-USDT", exchange: str = "okx") -> list[Candle]:
    """The first ``n`` real OKX BTC-USDT-SWAP 1m candles of the fixture, relabelled as ``symbol``."""
    with gzip.open(BTC_1M, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))[:n]
    return [Candle(exchange, symbol, Timeframe.M1, int(r["ts_ms"]), float(r["open"]), float(r["high"]),
                   float(r["low"]), float(r["close"]), float(r["volume"])) for r in rows]


def bot_config(**overrides: Any) -> dict[str, Any]:
    """A valid bot file as a dict (SMA 5/20 on BTC-USDT 1m, 1000 USDT per trade, no kill switch)."""
    config: dict[str, Any] = {
        "name": "test_bot", "exchange": "okx", "symbol": "BTC-USDT", "timeframe": "1m",
        "strategy": "sma_cross", "params": {"fast": 5, "slow": 20}, "starting_balance": 10000,
        "sizing": {"method": "fixed_quote", "amount": 1000}, "slippage": {"model": "fixed", "bps": 2},
        "lot_size": "0.00001", "price_tick": "0.1", "risk": {"max_drawdown_pct": None},
    }
    for key, value in overrides.items():
        if key in ("risk", "fees") and isinstance(value, dict):  # merged; other keys are replaced
            config[key] = {**config.get(key, {}), **value}
        else:
            config[key] = value
    return config


def sessions_for(url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(url))


def store_candles(sessions: sessionmaker[Session], candles: list[Candle]) -> None:
    with session_scope(sessions) as session:
        upsert_candles(session, candles)


def hand_computed_fills(candles: list[Candle], codes: list[int], start: int) -> list[tuple[str, Decimal, Decimal,
                                                                                          Decimal, Decimal]]:
    """Long-only, 1000 USDT per entry, market orders at the next open +/- 2 bps, price tick 0.1,
    lot 0.00001, notional and taker fee 0.10% rounded half-even to 1e-8 USDT:
    (side, quantity, price, fee, realised)."""
    fills = []
    position, cost, pending = Decimal(0), Decimal(0), None
    for i in range(start, len(candles)):
        c = candles[i]
        if pending is not None:
            side, qty = pending
            raw = Decimal(repr(c.open * (1 + 2 / 10_000) if side == "buy" else c.open * (1 - 2 / 10_000)))
            price = (raw / Decimal("0.1")).to_integral_value(ROUND_HALF_EVEN) * Decimal("0.1")
            notional = (qty * price).quantize(Decimal("0.00000001"), ROUND_HALF_EVEN)
            fee = (notional * Decimal("0.001")).quantize(Decimal("0.00000001"), ROUND_HALF_EVEN)
            realised = Decimal(0)
            if side == "buy":
                position, cost = qty, notional
            else:
                realised, position, cost = notional - cost, Decimal(0), Decimal(0)
            fills.append((side, qty, price, fee, realised))
            pending = None
        if codes[i] == 1 and position == 0:
            lots = (Decimal(repr(1000 / c.close)) / Decimal("0.00001")).to_integral_value(ROUND_DOWN)
            qty = lots * Decimal("0.00001")
            pending = ("buy", qty)
        elif codes[i] == -1 and position > 0:
            pending = ("sell", position)
    return fills
