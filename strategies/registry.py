"""Find strategies by name: the built-ins, then user strategies in Python files.

User strategies live in ``strategies/user/`` (shipped with an example) and in the folder named by
``STRATEGIES_DIR``. Every ``*.py`` file there (not starting with ``_``) is imported and each
:class:`BaseStrategy` subclass it defines with a ``name`` is registered under that name. Code never
comes from the UI or JSON: a bot configuration only names a strategy and its parameters.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.errors import ConfigurationError
from strategies.base import BaseStrategy
from strategies.builtin import BUILTIN
from strategies.params import did_you_mean

log = logging.getLogger(__name__)

SHIPPED_USER_DIR = Path(__file__).resolve().parent / "user"


@dataclass(frozen=True, slots=True)
class Discovery:
    """What a scan of the user folders found: classes by name, and files that failed to load."""

    classes: dict[str, type[BaseStrategy]]
    errors: dict[Path, str]


def default_dirs() -> tuple[Path, ...]:
    """``strategies/user/`` plus ``STRATEGIES_DIR`` when set."""
    from config.settings import get_settings

    extra = get_settings().strategies_dir
    return (SHIPPED_USER_DIR,) if extra is None else (SHIPPED_USER_DIR, Path(extra))


def _files(dirs: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for folder in dirs:
        if folder.is_dir():
            found.extend(p for p in sorted(folder.glob("*.py")) if not p.name.startswith("_"))
    return found


def _load_file(path: Path) -> list[type[BaseStrategy]]:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    module_name = f"_tcp_user_strategy_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return [
        obj for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, BaseStrategy) and obj.__module__ == module_name
        and not inspect.isabstract(obj) and isinstance(getattr(obj, "name", None), str)
    ]


_cache: dict[tuple[tuple[str, int], ...], Discovery] = {}


def discover(dirs: Sequence[Path] | None = None) -> Discovery:
    """Import the user strategy files (cached until a file changes)."""
    files = _files(default_dirs() if dirs is None else dirs)
    key = tuple((str(p), p.stat().st_mtime_ns) for p in files)
    if key in _cache:
        return _cache[key]
    builtin_names = {cls.name for cls in BUILTIN}
    classes: dict[str, type[BaseStrategy]] = {}
    origins: dict[str, Path] = {}
    errors: dict[Path, str] = {}
    for path in files:
        try:
            loaded = _load_file(path)
        except Exception as exc:  # noqa: BLE001 - a broken user file must not hide the others
            errors[path] = f"{type(exc).__name__}: {exc}"
            log.warning("strategy file %s failed to load: %s", path, errors[path])
            continue
        for cls in loaded:
            if cls.name in builtin_names:
                errors[path] = f"strategy name {cls.name!r} is taken by a built-in strategy"
            elif cls.name in classes:
                errors[path] = f"strategy name {cls.name!r} is already defined in {origins[cls.name]}"
            else:
                classes[cls.name] = cls
                origins[cls.name] = path
    result = Discovery(classes, errors)
    _cache.clear()
    _cache[key] = result
    return result


def list_strategies(dirs: Sequence[Path] | None = None) -> list[type[BaseStrategy]]:
    """Built-ins (in the documented order), then user strategies sorted by name."""
    users = discover(dirs).classes
    return [*BUILTIN, *(users[n] for n in sorted(users))]


def get_strategy_class(name: str, dirs: Sequence[Path] | None = None) -> type[BaseStrategy]:
    """The strategy class called ``name``; ``ConfigurationError`` with a hint when there is none."""
    for cls in BUILTIN:
        if cls.name == name:
            return cls
    found = discover(dirs)
    if name in found.classes:
        return found.classes[name]
    known = [c.name for c in list_strategies(dirs)]
    reason = f"unknown strategy {name!r};{did_you_mean(name, known)} known strategies: {', '.join(known)}"
    if found.errors:
        broken = "; ".join(f"{path.name}: {err}" for path, err in found.errors.items())
        reason += f" (strategy files that failed to load: {broken})"
    raise ConfigurationError(reason, field="strategy")


def create_strategy(name: str, params: Mapping[str, Any] | None = None,
                    dirs: Sequence[Path] | None = None) -> BaseStrategy:
    """Look ``name`` up and construct it with ``params`` (validated; see :class:`BaseStrategy`)."""
    cls = get_strategy_class(name, dirs)
    return cls(**dict(params or {}))
