from __future__ import annotations

import json

import pytest

from config.json_text import DuplicateKeyError, loads_strict


@pytest.mark.parametrize(("text", "path"), [
    ('{"a": 1, "a": 2}', "a"),
    ('{"a": {"b": 1, "c": 2, "b": 3}}', "a.b"),
    ('{"w": [{"x": 1}, {"x": 1, "x": 2}]}', "w.1.x"),
    ('{"z": 1, "z": 1, "y": {"q": 1, "q": 2}}', "z"),  # the first in document order
    ('[{"k": 1}, {"k": 2, "k": 3}]', "1.k"),
])
def test_the_first_repeated_key_is_named_by_its_dotted_path(text: str, path: str) -> None:
    with pytest.raises(DuplicateKeyError) as caught:
        loads_strict(text)
    assert caught.value.path == path and repr(path) in str(caught.value)


@pytest.mark.parametrize("text", ['{"a": 1, "b": {"a": 2}}', '[{"a": 1}, {"a": 2}]', '"a"', "3", "{}"])
def test_without_a_repeated_key_it_decodes_like_json_loads(text: str) -> None:
    value = loads_strict(text)
    assert value == json.loads(text) and type(value) is type(json.loads(text))


def test_invalid_json_stays_a_json_decode_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads_strict('{"a": ')
