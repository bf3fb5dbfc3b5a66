"""Declared strategy parameters and their validation (types, defaults, ranges, "did you mean")."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.errors import ConfigurationError

ParamValue = int | float | str | bool
_TYPE_NAMES = {int: "int", float: "float", str: "str", bool: "bool"}


@dataclass(frozen=True, slots=True)
class Param:
    """One strategy parameter: its type, default, optional inclusive range or choices, and meaning."""

    type: type
    default: ParamValue
    min: float | None = None
    max: float | None = None
    choices: tuple[ParamValue, ...] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.type not in _TYPE_NAMES:
            raise TypeError(f"Param type must be int, float, str or bool, got {self.type!r}")
        if (self.min is not None or self.max is not None) and self.type not in (int, float):
            raise TypeError(f"min/max only apply to int and float parameters, not {_TYPE_NAMES[self.type]}")
        reason = self.check(self.default)
        if reason:
            raise TypeError(f"Param default {self.default!r} is invalid: {reason}")

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES[self.type]

    def coerce(self, value: Any) -> ParamValue:
        """``value`` as this parameter's type; ``ValueError`` saying what was expected otherwise."""
        kind = self.type
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"expected a bool, got {type(value).__name__} {value!r}")
            return value
        if kind is int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"expected an int, got {type(value).__name__} {value!r}")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
            value = float(value)
        elif not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__} {value!r}")
        reason = self.check(value)
        if reason:
            raise ValueError(reason)
        return value

    def check(self, value: ParamValue) -> str | None:
        """Why ``value`` (already of the right type) is out of range, or ``None``."""
        if self.choices is not None and value not in self.choices:
            return f"expected one of {', '.join(map(repr, self.choices))}, got {value!r}"
        if self.min is not None and value < self.min:  # type: ignore[operator]
            return f"expected >= {self.min:g}, got {value!r}"
        if self.max is not None and value > self.max:  # type: ignore[operator]
            return f"expected <= {self.max:g}, got {value!r}"
        return None

    def describe_range(self) -> str:
        if self.choices is not None:
            return " | ".join(map(str, self.choices))
        if self.min is None and self.max is None:
            return ""
        low = "" if self.min is None else f"{self.min:g}"
        high = "" if self.max is None else f"{self.max:g}"
        return f"{low}..{high}"


def did_you_mean(word: str, candidates: list[str]) -> str:
    """`` did you mean 'x'?`` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.5)
    return f" did you mean {close[0]!r}?" if close else ""


def validate_params(strategy: str, spec: Mapping[str, Param], given: Mapping[str, Any]) -> dict[str, ParamValue]:
    """Defaults overlaid by ``given``, each checked against ``spec``; ``ConfigurationError`` otherwise."""
    source = f"strategy {strategy!r}"
    values: dict[str, ParamValue] = {}
    for key in given:
        if key not in spec:
            known = ", ".join(spec) or "none"
            raise ConfigurationError(
                f"unknown parameter {key!r};{did_you_mean(key, list(spec))} known parameters: {known}",
                source=source, field=key,
            )
    for key, param in spec.items():
        if key not in given:
            values[key] = param.default
            continue
        try:
            values[key] = param.coerce(given[key])
        except ValueError as exc:
            raise ConfigurationError(str(exc), source=source, field=key) from None
    return values
