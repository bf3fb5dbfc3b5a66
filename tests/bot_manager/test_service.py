"""The service layer the CLI and the dashboard call: lifecycle, folder sync, lists and details."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bot_manager.manager import BotManager
from bot_manager.service import BotService
from config.errors import ConfigurationError
from tests.bot_manager.builders import bot_config, load_candles, sessions_for, store_candles

ROOT = Path(__file__).resolve().parents[2]


def test_the_lifecycle_allows_only_meaningful_transitions(db_url: str) -> None:
    service = BotService(sessions_for(db_url))
    assert service.create_bot(bot_config(name="life")).status == "created"
    with pytest.raises(ConfigurationError, match="cannot go from created to paused"):
        service.pause("life")
    assert service.start("life").status == "running"
    assert service.pause("life").status == "paused"
    assert service.resume("life").status == "running"
    assert service.stop("life").status == "stopped"
    with pytest.raises(ConfigurationError, match="already exists"):
        service.create_bot(json.dumps(bot_config(name="life")))
    service.delete("life")
    with pytest.raises(ConfigurationError, match="no bot named 'life'"):
        service.start("life")


def test_list_and_detail_show_equity_pnl_position_signal_and_performance(pg_clean: str) -> None:
    sessions = sessions_for(pg_clean)
    candles = load_candles(900)
    store_candles(sessions, candles[:300])
    service = BotService(sessions)
    service.create_bot(bot_config(name="shown"), start=True)
    manager = BotManager(sessions)
    manager.start()
    for candle in candles[300:]:
        store_candles(sessions, [candle])
        manager.on_candle(candle)
    [summary] = service.list_bots()
    broker = manager.bots["shown"].engine.broker
    assert summary.equity == broker.equity_decimal() and summary.balance == broker.balance
    assert summary.pnl == summary.equity - Decimal(10_000) and summary.fees_paid == broker.fees_paid
    assert summary.last_signal in ("BUY", "SELL") and summary.last_candle_time_ms == candles[-1].open_time_ms
    assert (summary.position_side is None) == (broker.position_side == 0)
    detail = service.bot_detail("shown")
    assert len(detail.equity_curve) == 600 and detail.equity_curve[-1][1] == float(summary.equity)
    closed = [p for p in detail.positions if p["status"] == "closed"]
    assert detail.performance["trades"] == len(closed) > 0
    wins = sum(1 for p in closed if p["realised_pnl"] - p["fees"] > 0)
    assert detail.performance["win_rate"] == pytest.approx(wins / len(closed))
    assert detail.performance["fees_paid"] == pytest.approx(float(broker.fees_paid))
    assert len(detail.fills) == sum(1 for _ in detail.fills) > 0 and detail.events


def test_syncing_the_folder_creates_missing_bots_and_keeps_existing_state(sqlite_url: str, tmp_path: Path) -> None:
    service = BotService(sessions_for(sqlite_url))
    (tmp_path / "a.json").write_text(json.dumps(bot_config(name="a")))
    (tmp_path / "b.json").write_text(json.dumps(bot_config(name="b", enabled=False)))
    first = service.sync_folder(tmp_path)
    assert (first.created, {b.name: b.status for b in service.list_bots()}) == (
        ["a", "b"], {"a": "running", "b": "created"})
    service.stop("a")
    (tmp_path / "a.json").write_text(json.dumps(bot_config(name="a", risk={"stop_loss_pct": 1})))
    second = service.sync_folder(tmp_path)
    assert (second.created, second.updated, second.unchanged) == ([], ["a"], ["b"])
    assert service.list_bots()[0].status == "stopped"  # state kept
    (tmp_path / "a.json").write_text(json.dumps(bot_config(name="a", symbol="ETH-USDT")))
    with pytest.raises(ConfigurationError, match="Rename the bot or delete the stored one first"):
        service.sync_folder(tmp_path)


def test_the_bot_commands_create_start_list_and_delete(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    path = tmp_path / "cli.json"
    path.write_text(json.dumps(bot_config(name="cli_bot")))

    def bot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "main.py", "bot", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)

    assert bot("create", "--config", str(path)).stdout.strip() == "created bot 'cli_bot' (created)"
    assert bot("start", "--config", str(path)).stdout.strip() == "bot 'cli_bot': running"
    listing = bot("list").stdout.splitlines()
    assert listing[0].startswith("NAME") and listing[1].split()[:2] == ["cli_bot", "running"]
    assert "10000.00" in listing[1] and "flat" in listing[1]
    unknown = bot("pause", "--name", "ghost")
    assert unknown.returncode == 2 and "no bot named 'ghost'" in unknown.stderr
    assert bot("delete", "--name", "cli_bot").returncode == 0
    assert bot("list").stdout.strip() == "no bots"
