"""``ema_cross``: trend following on two exponential moving averages."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from strategies import indicators as ta
from strategies.base import Param
from strategies.builtin.sma_cross import AverageCross


class EmaCross(AverageCross):
    name: ClassVar[str] = "ema_cross"
    description: ClassVar[str] = (
        "Trend following. BUY when the fast EMA of the close crosses above the slow EMA; SELL when it "
        "crosses below. Strength: the gap between the averages as a share of the slow one, 1.0 at 1%."
    )
    params_spec: ClassVar[dict[str, Param]] = {
        "fast": Param(int, 12, min=2, max=1000, description="fast EMA period in candles (< slow)"),
        "slow": Param(int, 26, min=3, max=5000, description="slow EMA period in candles"),
    }
    average_label: ClassVar[str] = "EMA"

    def average(self, close: np.ndarray, period: int) -> np.ndarray:
        return ta.ema(close, period)
