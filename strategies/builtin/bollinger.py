"""``bollinger``: Bollinger Bands, as breakout or as mean reversion."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from strategies import indicators as ta
from strategies.bars import Bars
from strategies.base import IndicatorSpec, Param, VectorisedStrategy


class Bollinger(VectorisedStrategy):
    name: ClassVar[str] = "bollinger"
    description: ClassVar[str] = (
        "Bands = SMA(period) ± std population standard deviations of the close. mode=breakout: BUY when "
        "the close crosses above the upper band, SELL when it crosses below the lower band. "
        "mode=reversion (the opposite bet): BUY when the close crosses below the lower band, SELL when it "
        "crosses above the upper band. Strength: the close's distance past the band over the band width."
    )
    params_spec: ClassVar[dict[str, Param]] = {
        "period": Param(int, 20, min=2, max=1000, description="SMA / standard-deviation period in candles"),
        "std": Param(float, 2.0, min=0.1, max=10.0, description="band width in standard deviations"),
        "mode": Param(str, "reversion", choices=("breakout", "reversion"), description="which bet to make"),
    }

    @property
    def warmup(self) -> int:
        return int(self._params["period"]) + 1

    def _bands(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return ta.bollinger(close, int(self._params["period"]), float(self._params["std"]))

    def signals_for(self, window: Bars) -> np.ndarray:
        upper, _, lower = self._bands(window.close)
        out = np.zeros(len(window), dtype=np.int8)
        out[ta.crossings(window.close, upper) == 1] = 1
        out[ta.crossings(window.close, lower) == -1] = -1
        return out if self._params["mode"] == "breakout" else -out

    def explain(self, window: Bars, code: int) -> tuple[float, str]:
        upper, _, lower = (float(a[-1]) for a in self._bands(window.close))
        close = float(window.close[-1])
        above = close > upper
        band, side = (upper, "above the upper") if above else (lower, "below the lower")
        width = upper - lower
        strength = min(1.0, abs(close - band) / width) if width > 0 else 0.0
        return strength, f"close {close:.6g} crossed {side} band {band:.6g} ({self._params['mode']})"

    def get_indicators(self) -> list[IndicatorSpec]:
        return [IndicatorSpec("bb_upper", "price", "upper band"),
                IndicatorSpec("bb_middle", "price", f"SMA {self._params['period']}"),
                IndicatorSpec("bb_lower", "price", "lower band")]

    def compute_indicators(self, candles: pd.DataFrame) -> dict[str, np.ndarray]:
        upper, middle, lower = self._bands(candles["close"].to_numpy(dtype=np.float64))
        return {"bb_upper": upper, "bb_middle": middle, "bb_lower": lower}
