"""User strategy code runs behind one guard: it gets copies, and its failures become StrategyError."""

from __future__ import annotations

from typing import ClassVar

import pandas as pd
import pytest

from config.domain import Signal, SignalType
from config.errors import StrategyError
from strategies.bars import Bars
from strategies.base import BaseStrategy, Param
from strategies.guard import safe_generate_signal, safe_signal_at_end
from tests.strategies.candles import make_frame


class _Vandal(BaseStrategy):
    """Overwrites its input, then answers BUY."""

    name: ClassVar[str] = "vandal"
    params_spec: ClassVar[dict[str, Param]] = {}

    def generate_signal(self, candles: pd.DataFrame) -> Signal:
        candles["close"] = -1.0
        return Signal(SignalType.BUY, 1.0, "vandalised")


class _Crashes(BaseStrategy):
    name: ClassVar[str] = "crashes"
    params_spec: ClassVar[dict[str, Param]] = {}

    def generate_signal(self, candles: pd.DataFrame) -> Signal:
        return candles["no_such_column"]  # type: ignore[no-any-return]


class _ReturnsAString(BaseStrategy):
    name: ClassVar[str] = "returns_a_string"
    params_spec: ClassVar[dict[str, Param]] = {}

    def generate_signal(self, candles: pd.DataFrame) -> Signal:
        return "BUY"  # type: ignore[return-value]


def test_a_strategy_that_raises_becomes_a_strategy_error_naming_it_and_the_candle() -> None:
    frame = make_frame([1.0, 2.0, 3.0])
    with pytest.raises(StrategyError) as caught:
        safe_generate_signal(_Crashes(), frame)
    message = str(caught.value)
    assert "'crashes'" in message and "2026-01-01T00:02:00+00:00" in message and "KeyError" in message
    with pytest.raises(StrategyError, match="'crashes' failed on candle 2026-01-01T00:02:00"):
        safe_signal_at_end(_Crashes(), Bars.from_frame(frame))


def test_user_code_gets_a_copy_and_cannot_change_the_callers_candles() -> None:
    frame = make_frame([1.0, 2.0, 3.0])
    bars = Bars.from_frame(frame)
    assert safe_generate_signal(_Vandal(), frame).signal_type is SignalType.BUY
    assert safe_signal_at_end(_Vandal(), bars).signal_type is SignalType.BUY
    assert frame["close"].tolist() == [1.0, 2.0, 3.0]
    assert bars.close.tolist() == [1.0, 2.0, 3.0]


def test_a_strategy_returning_something_else_than_a_signal_is_an_error() -> None:
    expected = "TypeError: returns_a_string returned str; expected a config.domain.Signal"
    with pytest.raises(StrategyError, match=expected):
        safe_signal_at_end(_ReturnsAString(), Bars.from_frame(make_frame([1.0, 2.0])))


def test_the_live_path_fills_in_the_candle_time_and_price_a_user_signal_leaves_out() -> None:
    frame = make_frame([1.0, 2.0, 3.0])
    signal = safe_signal_at_end(_Vandal(), Bars.from_frame(frame))
    assert signal.candle_time_ms == int(frame["open_time"].iloc[-1]) and signal.price == 3.0


def test_the_guarded_call_evaluates_the_same_window_as_the_vectorised_path() -> None:
    from strategies.registry import create_strategy
    from tests.strategies.candles import ONE_MINUTE, load_candles

    frame = load_candles(ONE_MINUTE)
    strategy = create_strategy("example_momentum", {"threshold": 0.2})
    codes = strategy.generate_signals(frame.iloc[:1700])
    ends = [1, 20, 1441, 1700, *(int(i) + 1 for i in codes.nonzero()[0][-5:])]
    assert sum(codes[e - 1] != 0 for e in ends) == 5
    for end in ends:
        signal = safe_generate_signal(strategy, frame.iloc[:end])
        assert {"BUY": 1, "SELL": -1, "HOLD": 0}[signal.signal_type.value] == codes[end - 1]


def test_no_candles_is_the_callers_error_not_the_strategys() -> None:
    with pytest.raises(ValueError, match="no candles to evaluate strategy 'vandal' on"):
        safe_generate_signal(_Vandal(), make_frame([]))
