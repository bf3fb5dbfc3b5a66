"""``rsi_reversion``: mean reversion on the Relative Strength Index."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from strategies import indicators as ta
from strategies.bars import Bars
from strategies.base import IndicatorSpec, Param, VectorisedStrategy


class RsiReversion(VectorisedStrategy):
    name: ClassVar[str] = "rsi_reversion"
    description: ClassVar[str] = (
        "Mean reversion. BUY when RSI crosses back above `lower` (leaves oversold); SELL when it crosses "
        "back below `upper` (leaves overbought). Strength: how far RSI is from 50, over 50."
    )
    params_spec: ClassVar[dict[str, Param]] = {
        "period": Param(int, 14, min=2, max=500, description="RSI period in candles"),
        "lower": Param(float, 30.0, min=0, max=100, description="oversold level (< upper)"),
        "upper": Param(float, 70.0, min=0, max=100, description="overbought level"),
    }

    def check_params(self) -> None:
        if self._params["lower"] >= self._params["upper"]:  # type: ignore[operator]
            raise self.param_error("lower", f"lower ({self._params['lower']}) must be smaller than upper "
                                            f"({self._params['upper']})")

    @property
    def warmup(self) -> int:
        return int(self._params["period"]) + 2

    def _rsi(self, close: np.ndarray) -> np.ndarray:
        return ta.rsi(close, int(self._params["period"]))

    def signals_for(self, window: Bars) -> np.ndarray:
        rsi = self._rsi(window.close)
        lower = np.full(len(rsi), float(self._params["lower"]))
        upper = np.full(len(rsi), float(self._params["upper"]))
        out = np.zeros(len(rsi), dtype=np.int8)
        out[ta.crossings(rsi, lower) == 1] = 1
        out[ta.crossings(rsi, upper) == -1] = -1
        return out

    def explain(self, window: Bars, code: int) -> tuple[float, str]:
        rsi = float(self._rsi(window.close)[-1])
        level, direction = (self._params["lower"], "above") if code > 0 else (self._params["upper"], "below")
        return min(1.0, abs(rsi - 50.0) / 50.0), (
            f"RSI({self._params['period']})={rsi:.2f} crossed back {direction} {level:g}")

    def get_indicators(self) -> list[IndicatorSpec]:
        levels = (float(self._params["lower"]), float(self._params["upper"]))
        return [IndicatorSpec("rsi", "rsi", f"RSI {self._params['period']}", levels)]

    def compute_indicators(self, candles: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"rsi": self._rsi(candles["close"].to_numpy(dtype=np.float64))}
