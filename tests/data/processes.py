"""Run ``python main.py replay`` and ``python main.py collect`` as real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from config.domain import Candle, Timeframe
from database.engine import make_engine, make_session_factory, session_scope
from database.repositories.market import get_candles
from tests.data.builders import ROOT, SYMBOL


def env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "SYMBOLS")}
    values.update(DATABASE_URL=database_url, TCP_DATA_DIR=str(data_dir), LOG_LEVEL="WARNING",
                  MARKET_SOURCE="replay", **extra)
    return values


def start_replay(tape: Path, *, speed: float, passes: int, data_dir: Path) -> tuple[subprocess.Popen[str], str, str]:
    """``passes`` = 2: the tape, then one repeat shifted by whole days, which closes every bucket of the first."""
    args = [sys.executable, "main.py", "replay", "--tape", str(tape), "--symbol", SYMBOL, "--speed", str(speed),
            "--port", "0", "--loop", "--passes", str(passes)]
    process = subprocess.Popen(args, cwd=ROOT, env=env("sqlite:///" + str(data_dir / "unused.db"), data_dir),
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # "replay: serving … on ws://… rest http://…"
    match = re.search(r"(ws://\S+) rest (http://\S+)", line)
    assert match, f"replay did not start: {line!r}"
    return process, match.group(1), match.group(2)


def start_collect(database_url: str, ws_url: str, rest_url: str, data_dir: Path,
                  *extra_args: str, **extra_env: str) -> subprocess.Popen[str]:
    args = [sys.executable, "main.py", "collect", "--symbols", SYMBOL, "--okx-ws-url", ws_url,
            "--okx-rest-url", rest_url, *extra_args]
    log = open(data_dir / f"collect-{time.monotonic_ns()}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(args, cwd=ROOT, env=env(database_url, data_dir, **extra_env), stdout=log,
                            stderr=subprocess.STDOUT, text=True)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def stored_candles(url: str, timeframe: Timeframe, start_ms: int | None = None,
                   end_ms: int | None = None) -> list[Candle]:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return get_candles(session, "okx", SYMBOL, timeframe, start_ms, end_ms)
    finally:
        engine.dispose()


def stop(process: subprocess.Popen[str], timeout: float = 60.0) -> int:
    process.terminate()
    return process.wait(timeout)
