"""Bot files: valid ones load, bad ones give one clear error naming file, field and reason, and start nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot_manager.arbitrage_config import arbitrage_json_schema
from bot_manager.config import (
    MAX_LEVERAGE,
    bot_json_schema,
    load_bot_file,
    load_bot_folder,
    load_portfolio,
)
from bot_manager.runtime import run_bots
from config.errors import ConfigurationError
from config.settings import load_settings
from data.bus import InProcessBus
from database.engine import session_scope
from database.models import Bot
from tests.bot_manager.builders import bot_config, sessions_for

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, data: Any, name: str = "bot.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def error_of(path: Path) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        load_bot_file(path)
    return info.value


def test_every_shipped_example_bot_is_valid_and_trades_one_minute_candles() -> None:
    loaded = load_bot_folder(ROOT / "config" / "bots")
    assert len(loaded) >= 3
    assert {c.symbol for _, c in loaded} == {"BTC-USDT", "ETH-USDT"}
    assert all(c.exchange == "okx" and c.timeframe.value == "1m" for _, c in loaded)


def test_defaults_are_okx_spot_fees_and_half_of_equity_exposure(tmp_path: Path) -> None:
    config = load_bot_file(write(tmp_path, bot_config()))
    assert (config.fees.taker_pct, config.fees.maker_pct, config.risk.max_exposure_pct) == (0.10, 0.08, 50.0)
    broker = config.make_broker()
    assert (broker.fees.taker_rate, broker.fees.maker_rate) == (Decimal("0.001"), Decimal("0.0008"))


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"colour": "red"}, "colour", "unknown key"),
    ({"risk": {"stop_los_pct": 2}}, "risk.stop_los_pct", "did you mean 'stop_loss_pct'?"),
    ({"starting_balance": "lots"}, "starting_balance", "valid decimal (received 'lots')"),
    ({"leverage": [2]}, "leverage", "valid number"),
    ({"starting_balance": -100}, "starting_balance", "greater than 0 (received -100)"),
    ({"strategy": "sma_crosss"}, "strategy", "did you mean 'sma_cross'?"),
    ({"params": {"fast": 30, "slow": 20}}, "params.fast", "must be smaller than slow"),
    ({"params": {"fats": 3}}, "params.fats", "unknown parameter"),
    ({"sizing": {"method": "kelly"}}, "sizing.method", "unknown kind 'kelly'"),
    ({"timeframe": "2m"}, "timeframe", "'1m', '5m'"),
    ({"exchange": "kraken"}, "exchange", "'okx', 'binance' or 'bybit' (received 'kraken')"),
    ({"strategy": "funding_contrarian", "params": {}}, "symbol", "only perpetual (-SWAP) markets have"),
    ({"leverage": MAX_LEVERAGE + 1}, "leverage", "less than or equal to 10"),
    ({"risk": {"max_exposure_pct": 150}}, "risk.max_exposure_pct", "exceeds 100% x leverage 1.0"),
    ({"name": "has space"}, "name", "should match pattern"),
])
def test_a_bad_bot_file_names_the_file_the_field_and_the_reason(
        tmp_path: Path, change: dict[str, Any], field: str, reason: str) -> None:
    data = bot_config()
    data.update(change)
    path = write(tmp_path, data)
    error = error_of(path)
    assert (error.source, error.field) == (str(path), field)
    assert reason in error.reason
    assert str(error).startswith(f"{path}: {field}: ")


def test_a_missing_file_and_broken_json_are_reported_with_the_file(tmp_path: Path) -> None:
    missing = error_of(tmp_path / "nope.json")
    assert (missing.source, missing.reason) == (str(tmp_path / "nope.json"), "file not found")
    broken = error_of(write(tmp_path, '{"name": "x",'))
    assert broken.reason.startswith("invalid JSON") and "line 1" in broken.reason


def test_a_missing_required_key_is_named(tmp_path: Path) -> None:
    data = bot_config()
    del data["sizing"]
    assert (error_of(write(tmp_path, data)).field, error_of(write(tmp_path, data)).reason) == (
        "sizing", "required key is missing")


def test_two_files_with_one_bot_name_are_refused(tmp_path: Path) -> None:
    write(tmp_path, bot_config(name="twin"), "a.json")
    write(tmp_path, bot_config(name="twin"), "b.json")
    with pytest.raises(ConfigurationError, match="already used by"):
        load_bot_folder(tmp_path)


def test_the_portfolio_file_is_optional_and_validated(tmp_path: Path) -> None:
    assert load_portfolio(tmp_path).max_drawdown_pct is None
    write(tmp_path, {"max_drawdown_pct": 20, "max_exposure_pct": 150}, "_portfolio.json")
    assert load_portfolio(tmp_path).max_exposure_pct == 150
    write(tmp_path, {"max_drawdown": 20}, "_portfolio.json")
    with pytest.raises(ConfigurationError, match="max_drawdown: unknown key"):
        load_portfolio(tmp_path)


def test_a_bad_file_in_the_bot_folder_starts_nothing(sqlite_url: str, tmp_path: Path) -> None:
    write(tmp_path, bot_config(name="good"), "good.json")
    write(tmp_path, bot_config(name="bad", starting_balance=0), "bad.json")
    settings = load_settings({"DATABASE_URL": sqlite_url, "BOTS_DIR": str(tmp_path)})

    async def run() -> None:
        await asyncio.wait_for(run_bots(settings, InProcessBus(), asyncio.Event()), 10)

    with pytest.raises(ConfigurationError, match="bad.json: starting_balance"):
        asyncio.run(run())
    with session_scope(sessions_for(sqlite_url)) as session:
        assert session.query(Bot).count() == 0


def test_the_validate_command_exits_0_with_a_summary_or_2_with_the_error(tmp_path: Path) -> None:
    good = write(tmp_path, bot_config(name="cli_bot"), "good.json")
    ok = subprocess.run([sys.executable, "main.py", "bot", "validate", "--config", str(good)], cwd=ROOT,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("\n") == 1 and "valid" in ok.stdout and "'cli_bot'" in ok.stdout
    bad = write(tmp_path, bot_config(sizing={"method": "fixed_quote", "amount": -5}), "bad.json")
    failed = subprocess.run([sys.executable, "main.py", "bot", "validate", "--config", str(bad)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2
    assert f"{bad}: sizing.amount: Input should be greater than 0" in failed.stderr


def test_the_published_schema_is_the_one_the_model_generates() -> None:
    published = json.loads((ROOT / "config" / "bot_schema.json").read_text())
    assert published == bot_json_schema()
    assert published["additionalProperties"] is False
    arbitrage = json.loads((ROOT / "config" / "arbitrage_bot_schema.json").read_text())
    assert arbitrage == arbitrage_json_schema() and arbitrage["additionalProperties"] is False


def with_repeated_key(data: dict[str, Any], path: tuple[str, ...], value: Any) -> str:
    """``data`` as JSON text with the key at ``path`` written a second time (last one ``value``)."""
    *parents, key = path
    holder = data
    for parent in parents:
        holder = holder[parent]
    holder["__marker__"] = 0
    return json.dumps(data).replace('"__marker__": 0', f"{json.dumps(key)}: {json.dumps(value)}", 1)


@pytest.mark.parametrize(("path", "value"), [
    (("symbol",), "ETH-USDT"),
    (("risk", "stop_loss_pct"), 50.0),
    (("sizing", "method"), "fixed_quote"),
])
def test_a_key_given_twice_is_refused_naming_the_file_and_the_dotted_key(
        tmp_path: Path, path: tuple[str, ...], value: Any) -> None:
    text = with_repeated_key(bot_config(risk={"stop_loss_pct": 2.0}), path, value)
    assert text.count(json.dumps(path[-1]) + ":") >= 2  # the key really is in the text twice
    error = error_of(write(tmp_path, text))
    dotted = ".".join(path)
    assert (error.source, error.field) == (str(tmp_path / "bot.json"), dotted)
    assert "duplicate key" in error.reason and "more than once" in error.reason
    assert str(error).startswith(f"{tmp_path / 'bot.json'}: {dotted}: duplicate key")


def test_a_key_given_twice_in_the_portfolio_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path, '{"max_drawdown_pct": 20, "max_drawdown_pct": 90}', "_portfolio.json")
    with pytest.raises(ConfigurationError) as info:
        load_portfolio(tmp_path)
    assert (info.value.source, info.value.field) == (str(tmp_path / "_portfolio.json"), "max_drawdown_pct")
    assert "duplicate key" in info.value.reason


def test_equal_keys_in_different_objects_are_fine(tmp_path: Path) -> None:
    data = bot_config(params={"period": 10}, risk={"stop_loss_pct": 2.0})
    data["risk"]["period"] = 3  # not a real risk key: refused as unknown, not as a duplicate
    error = error_of(write(tmp_path, json.dumps(data)))
    assert "duplicate" not in error.reason and error.field == "risk.period"


def test_the_validate_command_refuses_a_key_given_twice(tmp_path: Path) -> None:
    bad = write(tmp_path, with_repeated_key(bot_config(name="twice"), ("symbol",), "ETH-USDT"), "twice.json")
    failed = subprocess.run([sys.executable, "main.py", "bot", "validate", "--config", str(bad)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2, failed.stdout
    assert f"{bad}: symbol: duplicate key 'symbol'" in failed.stderr
    assert "Traceback" not in failed.stderr
