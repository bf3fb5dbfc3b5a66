"""Strategies are built from validated parameters; mistakes are ConfigurationErrors that say what was
received, what was expected and, for a misspelt name, what was meant."""

from __future__ import annotations

from typing import ClassVar

import pandas as pd
import pytest

from config.domain import Signal
from config.errors import ConfigurationError
from strategies.base import BaseStrategy, Param
from strategies.registry import create_strategy


def test_missing_parameters_take_their_defaults_and_given_ones_are_kept() -> None:
    assert create_strategy("sma_cross", None).params == {"fast": 10, "slow": 30}
    assert create_strategy("bollinger", {"std": 3, "mode": "breakout"}).params == {
        "period": 20, "std": 3.0, "mode": "breakout"}


def test_an_unknown_parameter_names_the_closest_known_one() -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_strategy("sma_cross", {"fsat": 5})
    assert caught.value.field == "fsat"
    assert "did you mean 'fast'?" in str(caught.value) and "sma_cross" in str(caught.value)


@pytest.mark.parametrize(("name", "params", "expected"), [
    ("sma_cross", {"fast": "5"}, "expected an int, got str '5'"),
    ("sma_cross", {"fast": True}, "expected an int, got bool"),
    ("sma_cross", {"fast": 5.5}, "expected an int, got float 5.5"),
    ("sma_cross", {"fast": 1}, "expected >= 2, got 1"),
    ("rsi_reversion", {"upper": 101}, "expected <= 100, got 101.0"),
    ("bollinger", {"mode": "sideways"}, "expected one of 'breakout', 'reversion', got 'sideways'"),
    ("sma_cross", {"fast": 30, "slow": 30}, "fast (30) must be smaller than slow (30)"),
    ("rsi_reversion", {"lower": 80}, "lower (80.0) must be smaller than upper (70.0)"),
])
def test_wrong_types_and_out_of_range_values_are_rejected_with_what_was_expected(
    name: str, params: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigurationError, match=None) as caught:
        create_strategy(name, params)
    assert expected in str(caught.value)


def test_an_integral_float_is_accepted_for_an_int_parameter() -> None:
    assert create_strategy("sma_cross", {"fast": 5.0}).params["fast"] == 5


def test_a_param_whose_default_breaks_its_own_range_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="default 0 is invalid"):
        Param(int, 0, min=1)
    with pytest.raises(TypeError, match="min/max only apply"):
        Param(str, "a", min=1)


def test_a_strategy_with_a_non_param_spec_is_refused_at_class_definition() -> None:
    with pytest.raises(TypeError, match="must be a Param"):
        class _Bad(BaseStrategy):  # noqa: F841
            name: ClassVar[str] = "bad"
            params_spec: ClassVar[dict[str, Param]] = {"x": 3}  # type: ignore[dict-item]

            def generate_signal(self, candles: pd.DataFrame) -> Signal:
                return Signal.hold()


def test_every_builtin_documents_each_parameter_and_has_a_description() -> None:
    from strategies.builtin import BUILTIN

    assert [c.name for c in BUILTIN] == [
        "sma_cross", "ema_cross", "rsi_reversion", "macd_cross", "bollinger", "donchian_breakout",
        "funding_contrarian"]
    for cls in BUILTIN:
        assert cls.description and cls.supports_vectorised
        assert all(p.description for p in cls.params_spec.values()), cls.name
    assert set(create_strategy("macd_cross").params) == {"fast", "slow", "signal"}
    assert set(create_strategy("bollinger").params) == {"period", "std", "mode"}
    assert set(create_strategy("donchian_breakout").params) == {"period"}
