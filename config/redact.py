"""Secrets never shown: the password of a URL, query strings and known secret values become ``***``.

:func:`mask_url` masks one URL; :func:`redact` masks every credential-bearing URL inside any text
(an error message, a log line, a traceback). Both never raise.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# scheme://user:password@  (the password runs to the last @ before a space or quote)
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*):[^\s'\"]*@")
_SECRET_QUERY = re.compile(r"(?i)(?P<key>\b(?:password|passwd|pwd|token|secret|api_?key|key)=)[^&\s'\"]+")
_TELEGRAM_TOKEN = re.compile(r"(?<![0-9])\d{5,}:[A-Za-z0-9_-]{30,}")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with URL passwords, secret query values, Telegram tokens and ``secrets`` masked."""
    text = _CREDENTIALS.sub(lambda m: f"{m['head']}:{MASK}@", text)
    text = _SECRET_QUERY.sub(lambda m: f"{m['key']}{MASK}", text)
    text = _TELEGRAM_TOKEN.sub(MASK, text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def mask_url(url: str, *, hide_path: bool = False) -> str:
    """``url`` with its password and query (and, with ``hide_path``, its path) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not parseable (e.g. "[bad" as a host): mask by pattern
        return redact(url)
    netloc = parts.netloc
    if password is not None:
        netloc = f"{parts.username or ''}:{MASK}@{netloc.rsplit('@', 1)[1]}"
    path = f"/{MASK}" if hide_path and parts.path not in ("", "/") else parts.path
    return redact(urlunsplit((parts.scheme, netloc, path, MASK if parts.query else "", "")))
