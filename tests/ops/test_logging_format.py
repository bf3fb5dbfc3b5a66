"""Log lines are one structured logfmt line each, on the console and in a rotating file."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.logging_setup import LOG_FILE_NAME, KeyValueFormatter, format_value, setup_logging

LINE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def parse_logfmt(line: str) -> dict[str, str]:
    """A minimal logfmt reader for the assertions (quoted values unescaped)."""
    fields = {}
    for key, raw in LINE.findall(line):
        if raw.startswith('"'):
            raw = raw[1:-1].encode().decode("unicode_escape")
        fields[key] = raw
    return fields


def make_record(msg: str, *args: object, level: int = logging.INFO, exc: bool = False,
                **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("data.collector", level, __file__, 10, msg, args, exc_info)
    record.__dict__.update(extra)
    return record


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_a_record_becomes_one_line_of_key_value_pairs_with_extras() -> None:
    line = KeyValueFormatter().format(make_record("connected to %s", "OKX", symbol="BTC-USDT", attempt=3,
                                                  latency=0.25, ok=True))
    assert re.fullmatch(r"ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=INFO logger=data.collector "
                        r'msg="connected to OKX" symbol=BTC-USDT attempt=3 latency=0.25 ok=true', line)


def test_quotes_newlines_and_tracebacks_stay_on_one_line_and_read_back() -> None:
    message = 'said "hi"\nthen left\\'
    line = KeyValueFormatter().format(make_record(message, level=logging.ERROR, exc=True, path="a b"))
    assert "\n" not in line
    fields = parse_logfmt(line)
    assert fields["msg"] == message
    assert fields["path"] == "a b"
    assert fields["exc"].startswith("Traceback") and fields["exc"].endswith("ValueError: boom")


@pytest.mark.parametrize(("value", "expected"), [
    ("plain", "plain"), ("", '""'), ("a=b", '"a=b"'), (None, "null"), (False, "false"), (7, "7"),
    ("tab\there", '"tab\\there"'),
])
def test_values_are_bare_only_when_they_are_simple_tokens(value: object, expected: str) -> None:
    assert format_value(value) == expected


def test_setup_logging_writes_a_rotating_file_and_can_be_called_again(
        tmp_path: Path, restore_root_logger: None) -> None:
    setup_logging("INFO", tmp_path, max_bytes=2_000, backup_count=2)
    setup_logging("INFO", tmp_path, max_bytes=2_000, backup_count=2)
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_tcp_dashboard", False)]
    assert len(ours) == 2  # console + file, not doubled by the second call
    log = logging.getLogger("tests.ops.rotation")
    for i in range(60):
        log.info("line %d", i, extra={"symbol": "ETH-USDT"})
    log.debug("not at INFO")
    for handler in ours:
        handler.flush()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [LOG_FILE_NAME, f"{LOG_FILE_NAME}.1", f"{LOG_FILE_NAME}.2"]
    last = (tmp_path / LOG_FILE_NAME).read_text().splitlines()[-1]
    assert parse_logfmt(last) | {"ts": ""} == {"ts": "", "level": "INFO", "logger": "tests.ops.rotation",
                                             "msg": "line 59", "symbol": "ETH-USDT"}
    assert "not at INFO" not in (tmp_path / LOG_FILE_NAME).read_text()
