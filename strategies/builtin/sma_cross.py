"""``sma_cross``: trend following on two simple moving averages (and the shared moving-average
crossover rule that ``ema_cross`` reuses)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from strategies import indicators as ta
from strategies.bars import Bars
from strategies.base import IndicatorSpec, Param, VectorisedStrategy


class AverageCross(VectorisedStrategy):
    """BUY when the fast average crosses above the slow one, SELL when it crosses below."""

    average_label: ClassVar[str] = ""

    def average(self, close: np.ndarray, period: int) -> np.ndarray:
        raise NotImplementedError

    def check_params(self) -> None:
        if self._params["fast"] >= self._params["slow"]:  # type: ignore[operator]
            raise self.param_error("fast", f"fast ({self._params['fast']}) must be smaller than slow "
                                           f"({self._params['slow']})")

    @property
    def warmup(self) -> int:
        return int(self._params["slow"]) + 1

    def _lines(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (self.average(close, int(self._params["fast"])),
                self.average(close, int(self._params["slow"])))

    def signals_for(self, window: Bars) -> np.ndarray:
        return ta.crossings(*self._lines(window.close))

    def explain(self, window: Bars, code: int) -> tuple[float, str]:
        fast, slow = (float(line[-1]) for line in self._lines(window.close))
        label = self.average_label
        direction = "above" if code > 0 else "below"
        strength = min(1.0, abs(fast - slow) / abs(slow) * 100.0)
        return strength, (f"{label}({self._params['fast']})={fast:.6g} crossed {direction} "
                          f"{label}({self._params['slow']})={slow:.6g}")

    def get_indicators(self) -> list[IndicatorSpec]:
        key = self.average_label.lower()
        return [IndicatorSpec(f"{key}_fast", "price", f"{self.average_label} {self._params['fast']}"),
                IndicatorSpec(f"{key}_slow", "price", f"{self.average_label} {self._params['slow']}")]

    def compute_indicators(self, candles: pd.DataFrame) -> dict[str, np.ndarray]:
        fast, slow = self._lines(candles["close"].to_numpy(dtype=np.float64))
        key = self.average_label.lower()
        return {f"{key}_fast": fast, f"{key}_slow": slow}


class SmaCross(AverageCross):
    name: ClassVar[str] = "sma_cross"
    description: ClassVar[str] = (
        "Trend following. BUY when the fast SMA of the close crosses above the slow SMA; SELL when it "
        "crosses below. Strength: the gap between the averages as a share of the slow one, 1.0 at 1%."
    )
    params_spec: ClassVar[dict[str, Param]] = {
        "fast": Param(int, 10, min=2, max=1000, description="fast SMA period in candles (< slow)"),
        "slow": Param(int, 30, min=3, max=5000, description="slow SMA period in candles"),
    }
    average_label: ClassVar[str] = "SMA"

    def average(self, close: np.ndarray, period: int) -> np.ndarray:
        return ta.sma(close, period)
