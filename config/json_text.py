"""JSON text read strictly: a key repeated inside one object is an error, not "the last one wins".

``json.loads`` silently keeps the last of two equal keys, so a bot file with two ``"symbol"`` keys
would trade whichever came last. :func:`loads_strict` reports the first repeated key with its dotted
path (list items by index, like the validation errors: ``risk.stop_loss_pct``, ``watchers.0.name``).
"""

from __future__ import annotations

import json
from typing import Any


class DuplicateKeyError(ValueError):
    """A key given twice in one JSON object; ``path`` is its dotted path."""

    def __init__(self, path: str) -> None:
        super().__init__(f"duplicate key {path!r}: the key is given more than once in the same object; "
                         "expected each key once")
        self.path = path


class _Object(dict[str, Any]):
    """A decoded object remembering the keys that were repeated in its text."""

    repeated: tuple[str, ...] = ()


def _pairs(pairs: list[tuple[str, Any]]) -> _Object:
    result = _Object(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        repeated = [key for key, _ in pairs if key in seen or seen.add(key)]  # type: ignore[func-returns-value]
        result.repeated = tuple(dict.fromkeys(repeated))
    return result


def _first_repeated(value: Any, path: tuple[str, ...]) -> tuple[str, ...] | None:
    """The path of the first repeated key, in document order (an outer object before its children)."""
    if isinstance(value, _Object):
        if value.repeated:
            return (*path, value.repeated[0])
        children: Any = value.items()
    elif isinstance(value, list):
        children = ((str(index), item) for index, item in enumerate(value))
    else:
        return None
    for key, child in children:
        found = _first_repeated(child, (*path, key))
        if found is not None:
            return found
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def loads_strict(text: str) -> Any:
    """``json.loads(text)``, refusing repeated keys.

    Raises :class:`json.JSONDecodeError` for invalid JSON and :class:`DuplicateKeyError` naming the
    dotted path of the first repeated key.
    """
    value = json.loads(text, object_pairs_hook=_pairs)
    found = _first_repeated(value, ())
    if found is not None:
        raise DuplicateKeyError(".".join(found))
    return _plain(value)
