"""Calls into strategy code through one guard: copies in, ``StrategyError`` out."""

from __future__ import annotations

import pandas as pd

from config.domain import Signal, ms_to_datetime
from config.errors import StrategyError
from strategies.bars import Bars
from strategies.base import BaseStrategy


def _fail(strategy: BaseStrategy, time_ms: int, exc: BaseException) -> StrategyError:
    when = f"candle {ms_to_datetime(time_ms).isoformat()} ({time_ms})"
    return StrategyError(f"strategy {strategy.name!r} failed on {when}: {type(exc).__name__}: {exc}")


def safe_generate_signal(strategy: BaseStrategy, candles: pd.DataFrame) -> Signal:
    """The signal for the last row of ``candles``, evaluated on the same window the vectorised path
    uses for that row (so it equals ``strategy.generate_signals(candles)[-1]``). User code receives a
    copy; any failure becomes ``StrategyError`` naming the strategy and the last candle's time."""
    return safe_signal_at_end(strategy, Bars.from_frame(candles))


def safe_signal_at_end(strategy: BaseStrategy, bars: Bars) -> Signal:
    """The live path (:meth:`BaseStrategy.signal_at_end`) under the same guard. User code receives
    a fresh DataFrame, never the caller's arrays. ``ValueError`` when ``bars`` is empty (a caller bug)."""
    if not len(bars):
        raise ValueError(f"no candles to evaluate strategy {strategy.name!r} on")
    try:
        return strategy.signal_at_end(bars)
    except Exception as exc:  # noqa: BLE001 - user code may raise anything
        raise _fail(strategy, int(bars.open_time[-1]), exc) from exc
