"""Strategies are found by name: built-ins, the shipped example and Python files in a folder."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from config.errors import ConfigurationError
from strategies.registry import SHIPPED_USER_DIR, create_strategy, discover, get_strategy_class, list_strategies

USER_STRATEGY = '''
from typing import ClassVar
from config.domain import Signal
from strategies.base import BaseStrategy, Param

class AlwaysHold(BaseStrategy):
    name: ClassVar[str] = "{name}"
    params_spec: ClassVar[dict[str, Param]] = {{"period": Param(int, 3, min=1)}}

    def generate_signal(self, candles):
        return Signal.hold("nothing to do")
'''


def _write(folder: Path, filename: str, name: str) -> Path:
    path = folder / filename
    path.write_text(textwrap.dedent(USER_STRATEGY.format(name=name)))
    return path


def test_an_unknown_strategy_name_suggests_the_closest_one() -> None:
    with pytest.raises(ConfigurationError) as caught:
        get_strategy_class("ema_crss")
    assert "did you mean 'ema_cross'?" in str(caught.value)


def test_a_python_file_in_the_strategies_folder_is_found_by_its_name(tmp_path: Path) -> None:
    _write(tmp_path, "hold.py", "always_hold")
    dirs = [SHIPPED_USER_DIR, tmp_path]
    strategy = create_strategy("always_hold", {"period": 5}, dirs=dirs)
    assert strategy.params == {"period": 5} and not strategy.supports_vectorised
    names = [c.name for c in list_strategies(dirs)]
    assert names[:7] == ["sma_cross", "ema_cross", "rsi_reversion", "macd_cross", "bollinger", "donchian_breakout",
                         "funding_contrarian"]
    assert names[7:] == ["always_hold", "example_momentum"]


def test_the_shipped_example_is_available_without_configuration() -> None:
    assert get_strategy_class("example_momentum", [SHIPPED_USER_DIR]).name == "example_momentum"


def test_a_broken_file_does_not_hide_the_others_and_is_named_when_a_lookup_fails(tmp_path: Path) -> None:
    _write(tmp_path, "good.py", "good_one")
    (tmp_path / "broken.py").write_text("import does_not_exist_anywhere\n")
    found = discover([tmp_path])
    assert "good_one" in found.classes
    assert "broken.py" in str(next(iter(found.errors)))
    with pytest.raises(ConfigurationError, match="broken.py: ModuleNotFoundError"):
        get_strategy_class("missing", [tmp_path])


def test_a_user_strategy_cannot_take_a_builtin_name_or_one_already_taken(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", "twin")
    _write(tmp_path, "b.py", "twin")
    _write(tmp_path, "c.py", "sma_cross")
    found = discover([tmp_path])
    reasons = {path.name: reason for path, reason in found.errors.items()}
    assert "already defined in" in reasons["b.py"]
    assert "taken by a built-in" in reasons["c.py"]
    assert get_strategy_class("sma_cross", [tmp_path]).__module__ == "strategies.builtin.sma_cross"


def test_files_starting_with_an_underscore_are_not_loaded(tmp_path: Path) -> None:
    _write(tmp_path, "_private.py", "hidden")
    assert "hidden" not in discover([tmp_path]).classes


def test_the_strategies_command_lists_every_strategy_with_its_parameters_as_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import main

    assert main.main(["strategies", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    by_name = {s["name"]: s for s in listing["strategies"]}
    assert by_name["sma_cross"]["params"]["fast"] == {
        "type": "int", "default": 10, "min": 2, "max": 1000, "choices": None,
        "description": "fast SMA period in candles (< slow)"}
    assert by_name["bollinger"]["params"]["mode"]["choices"] == ["breakout", "reversion"]
    assert by_name["example_momentum"]["builtin"] is False


def test_the_strategies_command_prints_a_readable_table(capsys: pytest.CaptureFixture[str]) -> None:
    import main

    assert main.main(["strategies"]) == 0
    out = capsys.readouterr().out
    assert "rsi_reversion  (built-in)" in out
    assert "lower" in out and "float" in out and "default 30.0" in out and "range 0..100" in out
