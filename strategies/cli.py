"""``python main.py strategies [--json]``: every strategy with its parameters.

The strategy modules (pandas, TA-Lib) are imported when the command runs, not when ``main.py``
builds its parser: ``python main.py collect`` never loads them.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strategies.base import BaseStrategy


def describe(cls: type[BaseStrategy]) -> dict[str, Any]:
    """A JSON-ready description of one strategy class."""
    from strategies.builtin import BUILTIN

    return {
        "name": cls.name,
        "builtin": cls in BUILTIN,
        "description": cls.description,
        "vectorised": cls.supports_vectorised,
        "params": {
            key: {
                "type": p.type_name, "default": p.default, "min": p.min, "max": p.max,
                "choices": list(p.choices) if p.choices is not None else None, "description": p.description,
            }
            for key, p in cls.params_spec.items()
        },
    }


def _print_text(classes: list[type[BaseStrategy]]) -> None:
    from strategies.builtin import BUILTIN

    for cls in classes:
        origin = "built-in" if cls in BUILTIN else "user"
        print(f"{cls.name}  ({origin})")
        if cls.description:
            print(f"  {cls.description}")
        for key, p in cls.params_spec.items():
            bounds = p.describe_range()
            rng = f"  range {bounds}" if bounds else ""
            print(f"    {key:<12} {p.type_name:<5} default {p.default!r}{rng}  {p.description}")
        print()


def _handle(args: argparse.Namespace) -> int:
    from strategies.registry import SHIPPED_USER_DIR, discover, list_strategies

    classes = list_strategies()
    errors = discover().errors
    if args.json:
        print(json.dumps({"strategies": [describe(c) for c in classes],
                          "errors": {str(k): v for k, v in errors.items()}}, indent=2))
    else:
        _print_text(classes)
        print(f"User strategies: {SHIPPED_USER_DIR} and STRATEGIES_DIR.")
        for path, reason in errors.items():
            print(f"warning: {path} not loaded: {reason}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("strategies", help="list strategies with their parameters")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=_handle)
