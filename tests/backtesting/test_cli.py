"""``python main.py backtest | optimize | worker`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backtesting.builders import okx_5m, write_csv

ROOT = Path(__file__).resolve().parents[2]


def main_py(*args: str, database_url: str | None = None, tmp: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    if database_url:
        env["DATABASE_URL"] = database_url
    if tmp is not None:
        env["TCP_DATA_DIR"] = str(tmp)
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture
def csv_file(tmp_path: Path) -> str:
    return str(write_csv(okx_5m(5_000), tmp_path / "candles.csv", "ts_ms"))


def test_backtest_json_prints_metrics_and_trades(csv_file: str, tmp_path: Path) -> None:
    done = main_py("backtest", "--strategy", "sma_cross", "--params", '{"fast": 10, "slow": 30}', "--data-file",
                   csv_file, "--timeframe", "5m", "--fee", "0.001", "--short", "--json", tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert set(output) == {"metrics", "trades"}
    assert output["metrics"]["trades"] > 50 and output["metrics"]["path"] == "vectorised"
    trade = output["trades"][0]
    for key in ("entry_time", "exit_time", "side", "entry_price", "exit_price", "size", "fees", "pnl"):
        assert key in trade
    assert {t["side"] for t in output["trades"]} <= {"long", "short"}


def test_backtest_can_trade_a_period_of_the_file(csv_file: str, tmp_path: Path) -> None:
    done = main_py("backtest", "--strategy", "sma_cross", "--data-file", csv_file, "--timeframe", "5m",
                   "--start", "2022-05-05", "--end", "2022-05-10T12:00", "--json", tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    trades = json.loads(done.stdout)["trades"]
    assert trades[0]["entry_time"] >= "2022-05-05" and trades[-1]["entry_time"] < "2022-05-10T12"


@pytest.mark.parametrize(("args", "message"), [
    (["--strategy", "nope"], "unknown strategy 'nope'"),
    (["--strategy", "sma_cross", "--params", "{bad"], "--params: invalid JSON"),
    (["--strategy", "sma_cross", "--cash", "lots"], "argument --cash: invalid float value"),
    (["--strategy", "sma_cross", "--fee", "-1"], "--fee"),
    (["--strategy", "sma_cross", "--start", "yesterday"], "--start: cannot read 'yesterday' as a date"),
])
def test_bad_arguments_give_one_line_and_exit_code_2(csv_file: str, tmp_path: Path, args: list[str],
                                                      message: str) -> None:
    done = main_py("backtest", "--data-file", csv_file, *args, tmp=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr


def test_stored_candles_need_symbol_and_period(tmp_path: Path) -> None:
    done = main_py("backtest", "--strategy", "sma_cross", "--symbol", "BTC-USDT", tmp=tmp_path)
    assert done.returncode == 2 and "missing --start, --end" in done.stderr


def test_optimize_stores_trials_and_exports_the_best_bot(sqlite_url: str, csv_file: str, tmp_path: Path) -> None:
    bot_file = tmp_path / "best.json"
    done = main_py("optimize", "--strategy", "sma_cross", "--data-file", csv_file, "--timeframe", "5m",
                   "--grid", "fast=5:15:5", "--grid", "slow=30,40", "--objective", "total_return", "--workers", "1",
                   "--export-bot", str(bot_file), "--bot-name", "sma-best", "--json", database_url=sqlite_url)
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert output["trials"] == 6 and output["failed_trials"] == 0
    bot = json.loads(bot_file.read_text())
    assert bot["name"] == "sma-best" and bot["params"] == output["best_params"]


def test_a_submitted_run_is_done_by_a_worker_process(sqlite_url: str, csv_file: str) -> None:
    queued = main_py("backtest", "--strategy", "sma_cross", "--data-file", csv_file, "--timeframe", "5m", "--submit",
                     "--json", database_url=sqlite_url)
    assert queued.returncode == 0, queued.stderr
    run_id = json.loads(queued.stdout)["run_id"]
    worked = main_py("worker", "--once", database_url=sqlite_url)
    assert worked.returncode == 0 and "ran 1 queued run" in worked.stdout, worked.stderr

    from backtesting.service import BacktestService

    service = BacktestService(sqlite_url, local_workers=0)
    try:
        run = service.get_run(run_id)
        assert run is not None and run.status == "done" and run.metrics["trades"] > 50
    finally:
        service.close()
