"""``macd_cross``: MACD line against its signal line."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from strategies import indicators as ta
from strategies.bars import Bars
from strategies.base import IndicatorSpec, Param, VectorisedStrategy


class MacdCross(VectorisedStrategy):
    name: ClassVar[str] = "macd_cross"
    description: ClassVar[str] = (
        "Momentum. BUY when the MACD line (fast EMA - slow EMA) crosses above its signal line (an EMA "
        "of the MACD line); SELL when it crosses below. Strength: |MACD - signal| as a share of price, "
        "1.0 at 0.1%."
    )
    params_spec: ClassVar[dict[str, Param]] = {
        "fast": Param(int, 12, min=2, max=1000, description="fast EMA period in candles (< slow)"),
        "slow": Param(int, 26, min=3, max=5000, description="slow EMA period in candles"),
        "signal": Param(int, 9, min=1, max=1000, description="signal-line EMA period in candles"),
    }

    def check_params(self) -> None:
        if self._params["fast"] >= self._params["slow"]:  # type: ignore[operator]
            raise self.param_error("fast", f"fast ({self._params['fast']}) must be smaller than slow "
                                           f"({self._params['slow']})")

    @property
    def warmup(self) -> int:
        return int(self._params["slow"]) + int(self._params["signal"])

    def _macd(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = self._params
        return ta.macd(close, int(p["fast"]), int(p["slow"]), int(p["signal"]))

    def signals_for(self, window: Bars) -> np.ndarray:
        line, signal, _ = self._macd(window.close)
        return ta.crossings(line, signal)

    def explain(self, window: Bars, code: int) -> tuple[float, str]:
        line, signal, _ = (float(a[-1]) for a in self._macd(window.close))
        strength = min(1.0, abs(line - signal) / float(window.close[-1]) * 1000.0)
        direction = "above" if code > 0 else "below"
        return strength, f"MACD={line:.6g} crossed {direction} signal={signal:.6g}"

    def get_indicators(self) -> list[IndicatorSpec]:
        return [IndicatorSpec("macd", "macd", "MACD", (0.0,)),
                IndicatorSpec("macd_signal", "macd", f"signal {self._params['signal']}"),
                IndicatorSpec("macd_hist", "macd", "histogram")]

    def compute_indicators(self, candles: pd.DataFrame) -> dict[str, np.ndarray]:
        line, signal, hist = self._macd(candles["close"].to_numpy(dtype=np.float64))
        return {"macd": line, "macd_signal": signal, "macd_hist": hist}
