"""Secrets stay out of reprs and logs, and no SQL is built from strings outside database/."""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.logging_setup import KeyValueFormatter
from config.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "DASHBOARD_PASSWORD": "hunter2-dashboard-pw",
    "TELEGRAM_BOT_TOKEN": "123456:AAE-telegram-token",
    "TCP_SECRET_KEY": "mbGlYQ9pX0Zl7Ck8VYiF2v3xQy8VqUeH2l1TqkX6O3c=",
    "DATABASE_URL": "postgresql://trader:pg-password-123@db.internal:5432/tcp",
    "REDIS_URL": "redis://:redis-password-456@cache.internal:6379/0",
    "ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T000/B000/webhook-secret-789",
}
SECRET_VALUES = ("hunter2-dashboard-pw", "AAE-telegram-token", SECRETS["TCP_SECRET_KEY"], "pg-password-123",
                 "redis-password-456", "webhook-secret-789")


def test_settings_never_show_a_secret_in_repr_str_json_or_a_log_line() -> None:
    settings = load_settings(SECRETS)
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "settings %s", (settings,), None)
    record.settings = settings
    shown = {"repr": repr(settings), "str": str(settings), "json": settings.model_dump_json(),
             "log": KeyValueFormatter().format(record)}
    for how, text in shown.items():
        for secret in SECRET_VALUES:
            assert secret not in text, f"{how} shows {secret!r}"
    assert "db.internal" in shown["repr"] and "hooks.example.com" in shown["repr"]  # the useful part stays
    # …while the program itself still gets the real values
    assert settings.dashboard_password.get_secret_value() == SECRETS["DASHBOARD_PASSWORD"]  # type: ignore[union-attr]
    assert settings.effective_database_url == SECRETS["DATABASE_URL"]


# ---------------------------------------------------------------- no SQL strings outside database/

SCANNED = ("main.py", "platform_runner.py", "config", "data", "strategies", "bot_manager", "backtesting", "dashboard")
SQL_STATEMENT = re.compile(
    r"\b(SELECT\s+(DISTINCT\s+)?[\w*(\"]+.*\bFROM\b|INSERT\s+INTO|UPDATE\s+\"?\w+\"?\s+SET|DELETE\s+FROM|"
    r"CREATE\s+(TABLE|INDEX|VIEW)|DROP\s+(TABLE|INDEX|VIEW)|ALTER\s+TABLE|TRUNCATE\s+\w)", re.DOTALL)
EXECUTE_METHODS = {"execute", "executemany", "executescript", "exec_driver_sql"}


def _string_parts(node: ast.AST) -> str | None:
    """The literal text of a string-ish expression (constant, f-string, +, %, .format), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)  # type: ignore[misc]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        left, right = _string_parts(node.left), _string_parts(node.right)
        return None if left is None and right is None else (left or "") + (right or "")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _string_parts(node.func.value)
    return None


def sql_violations(source: str, filename: str = "<snippet>") -> list[str]:
    """Raw SQL in ``source``: ``text(...)``, ``execute("...")`` and SQL-looking string literals."""
    tree = ast.parse(source, filename)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)  # type: ignore[attr-defined]
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)}
    found = []
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name == "text" and node.args and _string_parts(node.args[0]) is not None:
                found.append(f"{where}: text() with a SQL string")
            elif name in EXECUTE_METHODS and node.args and _string_parts(node.args[0]) is not None:
                found.append(f"{where}: {name}() with a string")
        elif isinstance(node, ast.Constant | ast.JoinedStr) and id(node) not in docstrings:
            text = _string_parts(node)
            if text and SQL_STATEMENT.search(text):
                found.append(f"{where}: SQL in a string literal: {text[:60]!r}")
    return found


def project_files() -> Iterator[Path]:
    for entry in SCANNED:
        path = ROOT / entry
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_outside_database_and_alembic_writes_sql() -> None:
    files = list(project_files())
    assert any(f.parts[-2:] == ("ops", "metrics.py") for f in files)  # the scan does reach the packages
    violations = [v for f in files for v in sql_violations(f.read_text(encoding="utf-8"), str(f.relative_to(ROOT)))]
    assert violations == []


@pytest.mark.parametrize("snippet", [
    'from sqlalchemy import text\nsession.execute(text("SELECT * FROM bots WHERE name = :n"), {"n": n})',
    'conn.execute(f"DELETE FROM bots WHERE id = {bot_id}")',
    'cursor.execute("UPDATE bots SET status = %s" % status)',
    'engine.exec_driver_sql("VACUUM")',
    'query = "SELECT id FROM candles WHERE symbol = \'" + symbol + "\'"',
    'q = "INSERT INTO trades VALUES ({})".format(values)',
])
def test_the_scanner_catches_raw_sql(snippet: str) -> None:
    assert sql_violations(snippet)


@pytest.mark.parametrize("snippet", [
    'def f():\n    """Select the candles from the database (docs may say SELECT … FROM)."""',
    'session.execute(select(Bot).where(Bot.name == name))',
    'label = "Select a strategy from the list"',
    'df.query("close > open")',
])
def test_the_scanner_leaves_orm_code_and_prose_alone(snippet: str) -> None:
    assert sql_violations(snippet) == []
