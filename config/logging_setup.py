"""Logging: one structured line per record (logfmt ``key=value``) to the console and, with LOG_DIR,
a rotating file.

A line looks like::

    ts=2026-11-22T10:15:02.123Z level=WARNING logger=data.collector msg="reconnecting" symbol=BTC-USDT attempt=3

``ts`` is UTC with milliseconds; fields passed with ``extra={...}`` follow ``msg``; a traceback is
kept on the same line as ``exc="…\\n…"``. docs/observability.md describes the format.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import time
from pathlib import Path
from typing import Any

from config.redact import redact

LOG_FILE_NAME = "tcp_dashboard.log"
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_NOISY_LOGGERS = ("werkzeug", "websockets", "aiohttp.access", "alembic", "urllib3")
_NEEDS_QUOTES = re.compile(r'[\s="\\\x00-\x1f\x7f]')
_NEEDS_ESCAPES = re.compile(r'["\\\n\r\t]')


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller attached with ``extra={...}``."""
    attributes = record.__dict__
    if not attributes.keys() - _STANDARD_ATTRIBUTES:
        return {}
    return {key: value for key, value in attributes.items()
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")}


def format_value(value: object) -> str:
    """One logfmt value: bare when it is a simple token, otherwise double-quoted with escapes."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if text and not _NEEDS_QUOTES.search(text):
        return text
    if not _NEEDS_ESCAPES.search(text):
        return f'"{text}"'
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


class KeyValueFormatter(logging.Formatter):
    """Formats a record as one logfmt line: ``ts level logger msg``, the extras, then ``exc``."""

    def __init__(self) -> None:
        super().__init__()
        self._second_cache: tuple[int, str] = (-1, "")  # one tuple, swapped atomically across threads

    def _timestamp(self, created: float, msecs: float) -> str:
        second = int(created)
        cached_second, text = self._second_cache
        if second != cached_second:  # strftime once per second, not once per line
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second_cache = (second, text)
        return f"{text}.{int(msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        ts = self._timestamp(record.created, record.msecs)
        fields: list[tuple[str, object]] = [
            ("ts", ts), ("level", record.levelname), ("logger", record.name), ("msg", record.getMessage())]
        fields.extend(record_extras(record).items())
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            fields.append(("exc", record.exc_text))
        if record.stack_info:
            fields.append(("stack", self.formatStack(record.stack_info)))
        line = " ".join(f"{key}={format_value(value)}" for key, value in fields)
        return redact(line) if "://" in line or ":" in line else line


def setup_logging(level: str = "INFO", log_dir: Path | None = None, *,
                  max_bytes: int = 10_000_000, backup_count: int = 5) -> None:
    """Send every record to the console and, with ``log_dir``, to ``log_dir/tcp_dashboard.log``
    (rotated at ``max_bytes``, ``backup_count`` old files kept). Calling it again replaces the
    handlers it added before; handlers added by others (e.g. the system-event handler) stay.
    """
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        if getattr(handler, "_tcp_dashboard", False):
            root.removeHandler(handler)
            handler.close()
    formatter = KeyValueFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(
            log_dir / LOG_FILE_NAME, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._tcp_dashboard = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    for noisy in _NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
