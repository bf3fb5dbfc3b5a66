"""Small builders for backtest tests: candles, bot configurations, the real-data fixture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from backtesting.data import CandleData, read_csv_candles
from backtesting.spec import build_bot_config
from bot_manager.config import BotConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OKX_5M = FIXTURES / "bt_okx_BTC-USDT-SWAP_5m_2022-05-01_2022-12-31.csv.gz"
COINBASE_1D = FIXTURES / "bt_coinbase_BTC-USD_1d_2014-12-01_2018-08-13.csv.gz"
DAY_MS = 86_400_000


def okx_5m(rows: int | None = None) -> CandleData:
    """Real OKX BTC-USDT-SWAP 5m candles (2022-05-01 onwards), the first ``rows`` of them."""
    data = read_csv_candles(OKX_5M)
    return data if rows is None else data.slice(0, rows)


def coinbase_1d() -> CandleData:
    """Real Coinbase BTC-USD daily candles, 2014-12-01 → 2018-08-13: most opens gap from the last close."""
    return read_csv_candles(COINBASE_1D)


def make_candles(n: int, seed: int = 1, start_ms: int = 1_650_000_000_000 - 1_650_000_000_000 % DAY_MS,
                 step_ms: int = 60_000, volatility: float = 0.002) -> CandleData:
    """A random walk of ``n`` consistent OHLCV bars (open = previous close)."""
    rng = np.random.default_rng(seed)
    close = 20_000.0 * np.exp(np.cumsum(rng.normal(0.0, volatility, n)))
    open_ = np.concatenate([[20_000.0], close[:-1]])
    spread = np.abs(rng.normal(0.0, volatility / 2, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.uniform(1.0, 10.0, n)
    times = start_ms + np.arange(n, dtype=np.int64) * step_ms
    return CandleData(times, open_, high, low, close, volume, f"random walk seed {seed}")


def make_bot(strategy: str = "sma_cross", params: dict[str, Any] | None = None, **options: Any) -> BotConfig:
    """A backtest bot configuration (see ``build_bot_config`` for the options)."""
    options.setdefault("symbol", "BTC-USDT-SWAP")
    options.setdefault("timeframe", "5m")
    return build_bot_config(strategy, {"fast": 10, "slow": 30} if params is None else params, **options)


def write_csv(data: CandleData, path: Path, time_column: str = "open_time") -> Path:
    """Write candles as CSV with the given time column name (ISO text for ``datetime``)."""
    import pandas as pd

    frame = data.frame()
    if time_column == "datetime":
        frame["open_time"] = pd.to_datetime(frame["open_time"], unit="ms", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    elif time_column == "timestamp":
        frame["open_time"] = frame["open_time"] // 1000
    frame = frame.rename(columns={"open_time": time_column})
    frame.to_csv(path, index=False)
    return path
