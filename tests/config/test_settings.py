"""Settings: defaults, and a bad value stops start-up with one line naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.domain import Timeframe
from config.errors import SettingsError
from config.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_give_the_embedded_setup() -> None:
    s = load_settings({})
    assert s.effective_database_url.startswith("sqlite:///")
    assert s.redis_url is None and not s.uses_redis
    assert (s.dashboard_host, s.dashboard_port) == ("127.0.0.1", 8050)
    assert s.timeframes == (Timeframe.M1, Timeframe.M5, Timeframe.M15, Timeframe.H1, Timeframe.H4, Timeframe.D1)


def test_values_are_read_and_typed() -> None:
    s = load_settings({"DATABASE_URL": "postgresql://u@h/db", "REDIS_URL": "redis://h:6379/1",
                       "DASHBOARD_PORT": "9000", "SYMBOLS": "BTC-USDT, SOL-USDT", "TIMEFRAMES": "1m,1h",
                       "LOG_LEVEL": "debug", "TRADE_RETENTION_DAYS": "3", "DURABLE_COMMITS": "yes"})
    assert s.effective_database_url == "postgresql://u@h/db"
    assert s.dashboard_port == 9000 and s.symbols == ("BTC-USDT", "SOL-USDT")
    assert s.timeframes == (Timeframe.M1, Timeframe.H1) and s.log_level == "DEBUG"
    assert s.trade_retention_days == 3 and s.durable_commits is True
    assert load_settings({}).durable_commits is False


def test_env_file_is_read_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DASHBOARD_PORT=8111\nLOG_LEVEL=WARNING\n")
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    s = load_settings(env_file=env_file)
    assert s.dashboard_port == 8111 and s.log_level == "ERROR"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DASHBOARD_PORT", "eighty"), ("DASHBOARD_PORT", "70000"), ("REDIS_URL", "localhost:6379"),
     ("DATABASE_URL", "mysql://x"), ("TIMEFRAMES", "1m,7m"), ("OKX_WS_URL", "http://x"),
     ("TRADE_RETENTION_DAYS", "0"), ("LOG_LEVEL", "LOUD"), ("DURABLE_COMMITS", "sometimes")],
)
def test_a_bad_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({variable: value})
    message = str(info.value)
    assert message.startswith(f"{variable}: ")
    assert repr(value) in message
    assert "\n" not in message


def test_bad_setting_stops_the_cli_with_one_line() -> None:
    result = subprocess.run([sys.executable, "main.py", "db", "current"], cwd=ROOT,
                            env={"DASHBOARD_PORT": "eighty"}, capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: DASHBOARD_PORT: ")
