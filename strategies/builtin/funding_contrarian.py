"""``funding_contrarian``: fade the crowded side of a perpetual swap, read from its funding rate."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from strategies.bars import Bars
from strategies.base import IndicatorSpec, Param, VectorisedStrategy


class FundingContrarian(VectorisedStrategy):
    name: ClassVar[str] = "funding_contrarian"
    description: ClassVar[str] = (
        "Perpetual swaps only (reads the funding rate). SELL when the latest settled funding rate rises to `high` "
        "or above (longs pay: a crowded long side); BUY when it falls to `low` or below (shorts pay). Strength: "
        "the rate over twice the threshold."
    )
    params_spec: ClassVar[dict[str, Param]] = {
        "high": Param(float, 0.0001, min=-0.01, max=0.01, description="funding rate per settlement (0.0001 = "
                                                                      "0.01%) at or above which to sell"),
        "low": Param(float, -0.00003, min=-0.01, max=0.01, description="funding rate at or below which to buy "
                                                                       "(< high)"),
    }
    inputs: ClassVar[tuple[str, ...]] = ("funding_rate",)

    def check_params(self) -> None:
        if self._params["low"] >= self._params["high"]:  # type: ignore[operator]
            raise self.param_error("low", f"low ({self._params['low']}) must be smaller than high "
                                          f"({self._params['high']})")

    @property
    def warmup(self) -> int:
        return 2

    def signals_for(self, window: Bars) -> np.ndarray:
        rate = window.input("funding_rate")
        before = np.concatenate(([np.nan], rate[:-1]))
        high, low = float(self._params["high"]), float(self._params["low"])
        out = np.zeros(len(rate), dtype=np.int8)
        out[(rate >= high) & (before < high)] = -1  # NaN compares False: no signal without a known rate
        out[(rate <= low) & (before > low)] = 1
        return out

    def explain(self, window: Bars, code: int) -> tuple[float, str]:
        rate = float(window.input("funding_rate")[-1])
        level = float(self._params["low"] if code > 0 else self._params["high"])
        strength = min(1.0, abs(rate) / (2 * abs(level))) if level else 1.0
        side = "shorts pay: fading the crowded short side" if code > 0 else "longs pay: fading the crowded long side"
        return strength, f"funding rate {rate:.6%} {'<=' if code > 0 else '>='} {level:.6%} ({side})"

    def get_indicators(self) -> list[IndicatorSpec]:
        return [IndicatorSpec("funding_rate", "funding", "funding rate",
                              (float(self._params["low"]), float(self._params["high"])))]

    def compute_indicators(self, candles: pd.DataFrame) -> dict[str, np.ndarray]:
        if "funding_rate" in candles.columns:
            return {"funding_rate": candles["funding_rate"].to_numpy(dtype=np.float64)}
        return {"funding_rate": np.full(len(candles), np.nan)}  # candles without the input (a chart's)
