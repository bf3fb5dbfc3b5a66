"""Bad input at every door: command-line arguments, a database that is not there, bot files, replay
tapes and dashboard forms. Each gives one clear error naming what was wrong, a non-zero exit code
for commands, no traceback, and nothing stored or half-written."""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.errors import ConfigurationError
from data.replay.tape import read_tape
from tests.reliability.harness import ROOT, free_port, subprocess_env

NOWHERE = "postgresql://postgres@127.0.0.1:1/x"
GOOD_TAPE_HEADER = "trade_id,ts_ms,price,size,side\n"
GOOD_ROW = "1,1700000000000,100.5,0.1,buy\n"
CLI_TIMEOUT_S = 45.0


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    expect: tuple[str, ...]  # substrings of the one error line
    database_url: str | None = None  # default: a fresh SQLite file of the case
    bots: str | None = None  # a bot file written into the case's BOTS_DIR


TAPES: dict[str, tuple[bytes, tuple[str, ...]]] = {
    # name: (file content, substrings the error must contain besides the file name)
    "price_not_a_number": ((GOOD_TAPE_HEADER + GOOD_ROW + "2,1700000001000,abc,0.1,sell\n").encode(), ("row 3",)),
    "ts_not_an_integer": ((GOOD_TAPE_HEADER + GOOD_ROW + "2,17000x0001000,100,0.1,sell\n").encode(), ("row 3",)),
    "ts_missing": ((GOOD_TAPE_HEADER + GOOD_ROW + "2,,100,0.1,sell\n").encode(), ("row 3",)),
    "negative_size": ((GOOD_TAPE_HEADER + GOOD_ROW + "2,1700000001000,100,-0.1,sell\n").encode(), ("row 3",)),
    "unknown_side": ((GOOD_TAPE_HEADER + GOOD_ROW + "2,1700000001000,100,0.1,hold\n").encode(), ("row 3",)),
    "duplicate_trade_id": ((GOOD_TAPE_HEADER + GOOD_ROW + "1,1700000001000,100,0.1,sell\n").encode(), ("row 3",)),
    "extra_field": ((GOOD_TAPE_HEADER + GOOD_ROW + "2,1700000001000,100,0.1,sell,7\n").encode(), ("row 3",)),
    "missing_columns": (b"id,when,px\n1,2,3\n", ("row 1", "trade_id")),
    "no_header": (b"4711,1700000000000,35000.5,0.25,buy\n", ("row 1", "trade_id")),
    "empty_file": (b"", ()),
    "truncated_gzip": (gzip.compress((GOOD_TAPE_HEADER + "".join(
        f"{i},{1700000000000 + i},{100 + i % 7}.5,0.1,buy\n" for i in range(1, 3000))).encode())[:2000], ()),
}
TAPE_FILE = {name: f"{name}.csv.gz" if name == "truncated_gzip" else f"{name}.csv" for name in TAPES}

BAD_BOT = ('{"name": "typo", "symbol": "BTC-USDT", "strategy": "sma_cross", "starting_balance": 1000, '
           '"sizing": {"method": "fixed_quote", "amount": 10}, "risk": {"stop_los_pct": 1}}')

CASES: dict[str, Case] = {
    "backtest_unknown_timeframe": Case(("backtest", "--strategy", "sma_cross", "--symbol", "BTC-USDT", "--start",
                                        "2026-01-01", "--end", "2026-01-02", "--timeframe", "7m"),
                                       ("--timeframe", "7m")),
    "collect_empty_symbols": Case(("collect", "--symbols", ""), ("--symbols",)),
    "collect_only_commas": Case(("collect", "--symbols", ",,"), ("--symbols",)),
    "collect_http_websocket_url": Case(("collect", "--symbols", "BTC-USDT", "--okx-ws-url", "http://127.0.0.1:1/ws"),
                                       ("--okx-ws-url", "ws://")),
    "backfill_unreadable_start": Case(("backfill", "--symbol", "BTC-USDT", "--start", "yesterday"),
                                      ("--start", "yesterday")),
    "replay_negative_speed": Case(("replay", "--speed", "-1", "--port", "0"), ("--speed", "-1")),
    "replay_tape_not_a_number": Case(("replay", "--tape", "{tapes}/price_not_a_number.csv", "--symbol", "BTC-USDT",
                                      "--port", "0"), ("price_not_a_number.csv", "row 3")),
    "replay_tape_truncated_gzip": Case(("replay", "--tape", "{tapes}/truncated_gzip.csv.gz", "--symbol", "BTC-USDT",
                                        "--port", "0"), ("truncated_gzip.csv.gz",)),
    "platform_with_an_invalid_bot_file": Case((), ("typo.json", "risk.stop_los_pct", "stop_loss_pct"), bots=BAD_BOT),
    "platform_database_nowhere": Case((), ("127.0.0.1:1",), database_url=NOWHERE),
    "collect_database_nowhere": Case(("collect", "--symbols", "BTC-USDT"), ("127.0.0.1:1",), database_url=NOWHERE),
    "bot_list_database_nowhere": Case(("bot", "list"), ("127.0.0.1:1",), database_url=NOWHERE),
    "db_upgrade_database_nowhere": Case(("db", "upgrade"), ("127.0.0.1:1",), database_url=NOWHERE),
    "worker_database_nowhere": Case(("worker",), ("127.0.0.1:1",), database_url=NOWHERE),
}


@dataclass(frozen=True)
class Outcome:
    code: int | None  # None: still running after CLI_TIMEOUT_S (killed)
    stdout: str
    stderr: str
    database: Path


def write_tapes(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (content, _) in TAPES.items():
        (folder / TAPE_FILE[name]).write_bytes(content)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every command case run at once, each as ``python main.py …`` in its own folder."""
    base = tmp_path_factory.mktemp("cli")
    write_tapes(base / "tapes")
    running: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    try:
        for name, case in CASES.items():
            folder = base / name
            (folder / "bots").mkdir(parents=True)
            if case.bots is not None:
                (folder / "bots" / "typo.json").write_text(case.bots)
            database = folder / "tcp.db"
            env = subprocess_env(DATABASE_URL=case.database_url or f"sqlite:///{database}",
                                 BOTS_DIR=str(folder / "bots"), TCP_DATA_DIR=str(folder), MARKET_SOURCE="replay",
                                 REPLAY_PORT="0", DASHBOARD_PORT=str(free_port()), LOG_LEVEL="WARNING")
            args = [a.replace("{tapes}", str(base / "tapes")) for a in case.args]
            running[name] = (subprocess.Popen([sys.executable, "main.py", *args], cwd=ROOT, env=env, text=True,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE), database)
        deadline = time.monotonic() + CLI_TIMEOUT_S
        results = {}
        for name, (process, database) in running.items():
            try:
                out, err = process.communicate(timeout=max(deadline - time.monotonic(), 0.1))
                results[name] = Outcome(process.returncode, out, err, database)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate(timeout=10)
                results[name] = Outcome(None, out, err, database)
        return results
    finally:
        for process, _ in running.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)


def stored_rows(database: Path) -> dict[str, int]:
    """Rows in the tables a run could have written (empty when the file was never created)."""
    import sqlite3

    if not database.exists():
        return {}
    with sqlite3.connect(database) as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
        return {t: conn.execute(f'select count(*) from "{t}"').fetchone()[0]  # noqa: S608 - test-owned names
                for t in ("candles", "trades", "bots", "orders") if t in tables}


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_command_line_or_setting_gives_one_clear_error_line_and_a_non_zero_exit(
        name: str, outcomes: dict[str, Outcome]) -> None:
    outcome, case = outcomes[name], CASES[name]
    shown = f"exit {outcome.code}\nstdout: {outcome.stdout[-1500:]}\nstderr: {outcome.stderr[-3000:]}"
    assert outcome.code is not None, f"still running after {CLI_TIMEOUT_S:.0f} s instead of refusing: {shown}"
    assert outcome.code != 0, shown
    assert "Traceback" not in outcome.stdout + outcome.stderr, shown
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), shown
    for text in case.expect:
        assert text in lines[0], f"{text!r} not in the error line: {shown}"
    assert not any(stored_rows(outcome.database).values()), stored_rows(outcome.database)


@pytest.mark.parametrize("name", list(TAPES))
def test_a_malformed_tape_is_refused_with_an_error_naming_the_file_and_the_line(name: str, tmp_path: Path) -> None:
    write_tapes(tmp_path)
    path = tmp_path / TAPE_FILE[name]
    with pytest.raises(ConfigurationError) as info:
        read_tape(path)
    message = str(info.value)
    assert info.value.source == str(path) and message.startswith(str(path)), message
    for text in TAPES[name][1]:
        assert text in message, message
    for line in TAPES[name][0].decode("utf-8", "replace").splitlines()[:3]:  # no line of the file is echoed whole
        assert len(line) < 12 or line not in message, message

