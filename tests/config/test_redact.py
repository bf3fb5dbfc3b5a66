"""Passwords of bad URLs never reach the terminal: the real CLI in a subprocess, several schemes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.logging_setup import KeyValueFormatter
from config.redact import mask_url, redact

ROOT = Path(__file__).resolve().parents[2]
SECRET = "pw-Zq81-never-shown"


@pytest.mark.parametrize("env", [
    {"DATABASE_URL": f"mysql://user:{SECRET}@localhost/db"},
    {"DATABASE_URL": f"postgresql://user:{SECRET}@[bad/db"},
    {"DATABASE_URL": f"postgresql://user:{SECRET}@host:notaport/db"},
    {"DATABASE_URL": f"postgresqlx://user:{SECRET}@127.0.0.1:1/db"},
    {"DATABASE_URL": f"postgresql://user:{SECRET}@127.0.0.1:1/db"},
    {"REDIS_URL": f"http://:{SECRET}@127.0.0.1:1/0"},
    {"OKX_REST_URL": f"ftp://user:{SECRET}@example.com"},
    {"OKX_WS_URL": f"https://user:{SECRET}@example.com/ws"},
])
def test_a_bad_url_is_reported_without_its_password(env: dict[str, str], tmp_path: Path) -> None:
    run_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    run_env.update(env, TCP_DATA_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "main.py", "db", "current"], cwd=ROOT, env=run_env,
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert SECRET not in output
    variable = next(iter(env))
    assert f"error: {variable}: " in result.stderr and ":***@" in result.stderr
    assert "Traceback" not in output


def test_redact_and_mask_url() -> None:
    assert mask_url(f"mysql://user:{SECRET}@host/db") == "mysql://user:***@host/db"
    assert mask_url(f"postgresql://u:{SECRET}@[bad/db") == "postgresql://u:***@[bad/db"
    assert mask_url("https://hooks.example/services/T1/B2/xyz", hide_path=True) == "https://hooks.example/***"
    text = f"failed: redis://:{SECRET}@h:6379/0 and https://x/y?token={SECRET}&a=1 bot123456:{'A' * 35}"
    assert SECRET not in redact(text) and "A" * 35 not in redact(text)
    assert redact("plain text: no url, key value 3") == "plain text: no url, key value 3"


def test_every_log_line_is_redacted() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "cannot reach %s", (f"redis://:{SECRET}@h:1/0",), None)
    assert SECRET not in KeyValueFormatter().format(record)
