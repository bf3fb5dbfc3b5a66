"""``donchian_breakout``: the turtle-style channel breakout."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from strategies import indicators as ta
from strategies.bars import Bars
from strategies.base import IndicatorSpec, Param, VectorisedStrategy


def _previous(values: np.ndarray) -> np.ndarray:
    out = np.empty_like(values)
    out[:1] = np.nan
    out[1:] = values[:-1]
    return out


class DonchianBreakout(VectorisedStrategy):
    name: ClassVar[str] = "donchian_breakout"
    description: ClassVar[str] = (
        "Breakout. The channel is the highest high and lowest low of the `period` candles before the "
        "current one. BUY when the close crosses above the channel top; SELL when it crosses below the "
        "bottom. Strength: the distance past the channel over the channel width."
    )
    params_spec: ClassVar[dict[str, Param]] = {
        "period": Param(int, 20, min=2, max=5000, description="channel length in candles"),
    }

    @property
    def warmup(self) -> int:
        return int(self._params["period"]) + 2

    def _channel(self, window: Bars | pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        period = int(self._params["period"])
        high = np.asarray(window.high, dtype=np.float64)
        low = np.asarray(window.low, dtype=np.float64)
        return _previous(ta.highest(high, period)), _previous(ta.lowest(low, period))

    def signals_for(self, window: Bars) -> np.ndarray:
        top, bottom = self._channel(window)
        out = np.zeros(len(window), dtype=np.int8)
        out[ta.crossings(window.close, top) == 1] = 1
        out[ta.crossings(window.close, bottom) == -1] = -1
        return out

    def explain(self, window: Bars, code: int) -> tuple[float, str]:
        top, bottom = (float(a[-1]) for a in self._channel(window))
        close = float(window.close[-1])
        edge, side = (top, "above the channel top") if code > 0 else (bottom, "below the channel bottom")
        width = top - bottom
        strength = min(1.0, abs(close - edge) / width) if width > 0 else 0.0
        return strength, f"close {close:.6g} broke {side} {edge:.6g} ({self._params['period']} candles)"

    def get_indicators(self) -> list[IndicatorSpec]:
        return [IndicatorSpec("donchian_upper", "price", f"{self._params['period']}-candle high"),
                IndicatorSpec("donchian_lower", "price", f"{self._params['period']}-candle low")]

    def compute_indicators(self, candles: pd.DataFrame) -> dict[str, np.ndarray]:
        top, bottom = self._channel(candles)
        return {"donchian_upper": top, "donchian_lower": bottom}
