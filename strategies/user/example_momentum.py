"""An example user strategy: copy this file into your STRATEGIES_DIR and change it.

Every ``*.py`` file in ``strategies/user/`` and in the folder named by ``STRATEGIES_DIR`` is imported
when a strategy is looked up by name; each ``BaseStrategy`` subclass with a ``name`` becomes
available to bots, backtests and ``python main.py strategies``.

Only ``generate_signal`` is required. It receives the candles of one evaluation window (a fresh
DataFrame: ``open_time`` in epoch ms, ``open``, ``high``, ``low``, ``close``, ``volume``; the last row
is the candle that just closed) and returns a ``Signal`` for that last row. Signals are events: say
BUY/SELL on the bar where your condition starts to hold, HOLD otherwise.
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd
import talib

from config.domain import Signal, SignalType
from strategies.base import BaseStrategy, Param


class ExampleMomentum(BaseStrategy):
    name: ClassVar[str] = "example_momentum"
    description: ClassVar[str] = (
        "Example user strategy. BUY when the rate of change over `period` candles rises through "
        "+threshold %, SELL when it falls through -threshold %."
    )
    params_spec: ClassVar[dict[str, Param]] = {
        "period": Param(int, 10, min=1, max=1000, description="look-back in candles"),
        "threshold": Param(float, 0.5, min=0.0, max=100.0, description="rate of change, percent"),
    }

    @property
    def warmup(self) -> int:
        return int(self.params["period"]) + 2

    def generate_signal(self, candles: pd.DataFrame) -> Signal:
        roc = talib.ROC(candles["close"].to_numpy(dtype=float), timeperiod=int(self.params["period"]))
        now, before = float(roc[-1]), float(roc[-2])
        level = float(self.params["threshold"])
        strength = min(1.0, abs(now) / (2 * level or 1.0))
        if now > level >= before:
            return Signal(SignalType.BUY, strength, f"ROC {now:.2f}% rose through {level}%")
        if now < -level <= before:
            return Signal(SignalType.SELL, strength, f"ROC {now:.2f}% fell through -{level}%")
        return Signal.hold()
