"""The strategy contract: validated parameters, one required method, indicators to draw.

Candle frames have the columns ``open_time`` (int64 epoch ms, bar open), ``open``, ``high``,
``low``, ``close``, ``volume`` (float64), ascending, closed candles only.

Signals are *events* on the bar where the condition happens (the crossover bar), not states:
``BUY`` = enter long (or exit a short), ``SELL`` = exit long (or enter short when the bot allows it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from config.domain import Signal, SignalType
from config.errors import ConfigurationError
from strategies.bars import EXTRA_COLUMNS, Bars, check_ascending, day_blocks, evaluation_starts, last_evaluation_start
from strategies.params import Param, ParamValue, validate_params

__all__ = ["BaseStrategy", "IndicatorSpec", "Param", "VectorisedStrategy", "SIGNAL_CODES", "code_of"]

BUY, HOLD, SELL = 1, 0, -1
SIGNAL_CODES: dict[SignalType, int] = {SignalType.BUY: BUY, SignalType.SELL: SELL, SignalType.HOLD: HOLD}
_TYPES_BY_CODE = {code: kind for kind, code in SIGNAL_CODES.items()}
MIN_HISTORY = 500
HISTORY_PER_WARMUP = 10


def code_of(signal: Signal) -> int:
    """+1 BUY, -1 SELL, 0 HOLD."""
    return SIGNAL_CODES[signal.signal_type]


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """An overlay the dashboard draws: ``name`` is its key in :meth:`BaseStrategy.compute_indicators`,
    ``panel`` is ``"price"`` (drawn over the candles) or the name of an oscillator panel below them;
    ``levels`` are horizontal reference lines in that panel (e.g. RSI 30 / 70)."""

    name: str
    panel: str = "price"
    label: str = ""
    levels: tuple[float, ...] = ()


class BaseStrategy(ABC):
    """Base class of every strategy, built-in or user-written.

    A subclass declares ``name``, ``description`` and ``params_spec`` and implements
    :meth:`generate_signal`. Construct it with keyword parameters: unknown, mistyped or out-of-range
    values raise :class:`~config.errors.ConfigurationError` (with a "did you mean" hint);
    missing ones take their defaults. Cross-parameter rules go in :meth:`check_params`.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    params_spec: ClassVar[dict[str, Param]] = {}
    supports_vectorised: ClassVar[bool] = False
    inputs: ClassVar[tuple[str, ...]] = ()
    """Market inputs beyond OHLCV the strategy reads (``funding_rate``, ``open_interest``, ``long_liquidations``,
    ``short_liquidations``; :mod:`strategies.inputs`): attached to its candles as extra columns (``Bars.input``),
    by backtests and the live engines alike. Only perpetual (``-SWAP``) markets have them."""

    def __init__(self, **params: Any) -> None:
        self._params = validate_params(self.name, self.params_spec, params)
        self.check_params()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for key, param in cls.params_spec.items():
            if not isinstance(param, Param):
                raise TypeError(f"{cls.__name__}.params_spec[{key!r}] must be a Param, got {param!r}")
        unknown = [n for n in cls.inputs if n not in EXTRA_COLUMNS]
        if unknown:
            raise TypeError(f"{cls.__name__}.inputs: unknown input {unknown[0]!r} (known: {', '.join(EXTRA_COLUMNS)})")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"

    # -- parameters ------------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, ParamValue]:
        """The validated parameter values (a copy)."""
        return dict(self._params)

    def check_params(self) -> None:  # noqa: B027 - an optional hook, empty on purpose
        """Hook for rules between parameters; raise :meth:`param_error` when one is broken."""

    def param_error(self, field: str, reason: str) -> ConfigurationError:
        return ConfigurationError(reason, source=f"strategy {self.name!r}", field=field)

    # -- warm-up ---------------------------------------------------------------------------------
    @property
    def warmup(self) -> int:
        """Candles the strategy needs before it can say anything; earlier bars are HOLD."""
        return 1

    @property
    def history(self) -> int:
        """Bars of history each evaluation window holds before the first bar of the current UTC day
        (see :mod:`strategies.bars`). Long enough for recursive indicators to settle."""
        return max(MIN_HISTORY, HISTORY_PER_WARMUP * self.warmup)

    # -- signals ---------------------------------------------------------------------------------
    @abstractmethod
    def generate_signal(self, candles: pd.DataFrame) -> Signal:
        """The signal for the last row of ``candles`` (the last closed candle)."""

    def generate_signals(self, candles: pd.DataFrame) -> np.ndarray:
        """Signals for every bar as int8 (+1 BUY, -1 SELL, 0 HOLD), what backtests use.

        Bar ``i`` is evaluated on exactly the window the live engine uses for it, so the live and
        vectorised paths agree bar for bar. This default calls :meth:`generate_signal` once per bar;
        :class:`VectorisedStrategy` computes whole days at once.
        """
        bars = Bars.from_frame(candles)
        check_ascending(bars.open_time)
        out = np.zeros(len(bars), dtype=np.int8)
        starts = evaluation_starts(bars.open_time, self.history)
        for i in range(len(bars)):
            if i - int(starts[i]) + 1 >= self.warmup:
                out[i] = code_of(self._require_signal(self.evaluate(bars.slice(int(starts[i]), i + 1))))
        return out

    def signal_at_end(self, bars: Bars) -> Signal:
        """The live path: the signal for the last row of ``bars``, evaluated on the same window
        :meth:`generate_signals` uses for that row. ``bars`` must reach back far enough
        (``history`` bars before the last bar's UTC day) for the two to agree."""
        start = last_evaluation_start(bars.open_time, self.history)
        window = bars.slice(start, len(bars))
        last_time = int(bars.open_time[-1])
        if len(window) < self.warmup:
            return Signal.hold(f"warming up ({len(window)}/{self.warmup} candles)", last_time)
        signal = self._require_signal(self.evaluate(window))
        if signal.candle_time_ms is None or signal.price is None:
            signal = replace(
                signal,
                candle_time_ms=last_time if signal.candle_time_ms is None else signal.candle_time_ms,
                price=float(bars.close[-1]) if signal.price is None else signal.price,
            )
        return signal

    def _require_signal(self, result: object) -> Signal:
        if not isinstance(result, Signal):
            raise TypeError(f"{self.name} returned {type(result).__name__}; expected a config.domain.Signal")
        return result

    def evaluate(self, window: Bars) -> Signal:
        """Signal for the last row of an evaluation window; by default :meth:`generate_signal` on a
        fresh DataFrame (user code gets a copy it may modify)."""
        return self.generate_signal(window.to_frame())

    # -- indicators for the dashboard --------------------------------------------------------------
    def get_indicators(self) -> list[IndicatorSpec]:
        """The overlays the dashboard draws for this strategy (none by default)."""
        return []

    def compute_indicators(self, candles: pd.DataFrame) -> dict[str, np.ndarray]:
        """One array per :class:`IndicatorSpec` name, aligned with ``candles`` (NaN while warming up)."""
        return {}


class VectorisedStrategy(BaseStrategy):
    """A strategy whose rule is computed for whole arrays at once (all built-ins).

    Implement :meth:`signals_for` (an int8 code for every row of a window, each row using only that
    row and earlier ones) and :meth:`explain` (strength and reason for the window's last row).
    """

    supports_vectorised: ClassVar[bool] = True

    @abstractmethod
    def signals_for(self, window: Bars) -> np.ndarray:
        """int8 codes for every row of ``window``, computed causally from the window alone."""

    @abstractmethod
    def explain(self, window: Bars, code: int) -> tuple[float, str]:
        """Strength in [0, 1] and a one-line reason for the last row's signal ``code``."""

    def generate_signal(self, candles: pd.DataFrame) -> Signal:
        bars = Bars.from_frame(candles)
        return self.signal_at_end(bars)

    def evaluate(self, window: Bars) -> Signal:
        code = int(self.signals_for(window)[-1])
        time_ms = int(window.open_time[-1])
        if code == HOLD:
            return Signal(SignalType.HOLD, 0.0, "", float(window.close[-1]), time_ms)
        strength, reason = self.explain(window, code)
        return Signal(_TYPES_BY_CODE[code], strength, reason, float(window.close[-1]), time_ms)

    def generate_signals(self, candles: pd.DataFrame) -> np.ndarray:
        bars = Bars.from_frame(candles)
        check_ascending(bars.open_time)
        out = np.zeros(len(bars), dtype=np.int8)
        for window_start, block_start, block_end in day_blocks(bars.open_time, self.history):
            codes = self.signals_for(bars.slice(window_start, block_end))
            out[block_start:block_end] = codes[block_start - window_start:]
        out[: max(self.warmup - 1, 0)] = HOLD
        return out
