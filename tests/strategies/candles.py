"""Small builders for strategy tests: real fixture candles and hand-written series."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from config.domain import Candle, Timeframe
from strategies.bars import ANCHOR_MS, Bars
from strategies.base import BaseStrategy, code_of
from strategies.live import LiveWindow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ONE_MINUTE = "candles_okx_BTC-USDT-SWAP_1m_2026-01-01_4000.csv.gz"
FIVE_MINUTES = "candles_okx_BTC-USDT-SWAP_5m_2022-05-01_3000.csv.gz"
START_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def load_candles(name: str) -> pd.DataFrame:
    """A fixture file as a candle frame (``open_time`` epoch ms + OHLCV)."""
    frame = pd.read_csv(FIXTURES / name).rename(columns={"ts_ms": "open_time"})
    return frame[["open_time", "open", "high", "low", "close", "volume"]].astype(
        {"open_time": "int64", "open": "float64", "high": "float64", "low": "float64",
         "close": "float64", "volume": "float64"})


def make_frame(closes: Sequence[float], highs: Sequence[float] | None = None,
               lows: Sequence[float] | None = None, step_ms: int = 60_000) -> pd.DataFrame:
    """Hand-written candles: open = close, high/low = close unless given, volume 1, one minute apart."""
    close = np.asarray(closes, dtype=np.float64)
    return pd.DataFrame({
        "open_time": START_MS + step_ms * np.arange(len(close), dtype=np.int64),
        "open": close,
        "high": close if highs is None else np.asarray(highs, dtype=np.float64),
        "low": close if lows is None else np.asarray(lows, dtype=np.float64),
        "close": close,
        "volume": np.ones(len(close)),
    })


def frame_to_candles(frame: pd.DataFrame, timeframe: Timeframe, symbol: str = "BTC-USDT-SWAP",
                     exchange: str = "okx") -> list[Candle]:
    return [
        Candle(exchange, symbol, timeframe, int(t), float(o), float(h), float(lo), float(c), float(v))
        for t, o, h, lo, c, v in frame[["open_time", "open", "high", "low", "close", "volume"]].itertuples(
            index=False)
    ]


def live_codes(strategy: BaseStrategy, frame: pd.DataFrame, timeframe_ms: int,
               attach: Callable[[Bars], Bars] | None = None) -> np.ndarray:
    """Feed ``frame`` one candle at a time through a bounded live window, as the engine does (``attach``: what
    the engine does to the window before asking the strategy, e.g. attach its market inputs)."""
    window = LiveWindow(strategy.history, ANCHOR_MS // timeframe_ms)
    out = np.zeros(len(frame), dtype=np.int8)
    rows = frame[["open_time", "open", "high", "low", "close", "volume"]].to_numpy()
    for i, (t, o, h, lo, c, v) in enumerate(rows):
        window.add(int(t), (o, h, lo, c, v))
        bars = window.bars()
        out[i] = code_of(strategy.signal_at_end(bars if attach is None else attach(bars)))
    return out


def bars_at(codes: np.ndarray, code: int) -> list[int]:
    return [int(i) for i in np.flatnonzero(codes == code)]
