"""What the fault tests share: free ports, an asyncio loop in a thread, a private redis-server and
PostgreSQL cluster, waits that always end, and the replayed market every platform run trades on.

The market is a trade tape synthesised (``data.replay.synth``) from real OKX BTC-USDT-SWAP 1m
candles of ``tests/fixtures``: the first ``HISTORY`` minutes are stored before a run starts (what
an earlier collector left), the rest is served live by a :class:`~data.replay.server.ReplayServer`
at a fixed speed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from config.domain import Candle, Timeframe
from data.replay.market import minute_bars
from data.replay.synth import synthesise_frame
from data.replay.tape import Tape, read_candles_csv

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_CANDLES = ROOT / "tests" / "fixtures" / "candles_okx_BTC-USDT-SWAP_1m_2026-01-01_4000.csv.gz"
SYMBOL = "BTC-USDT"
MINUTE = 60_000
HISTORY = 300  # minutes stored before the platform starts (strategy warm-up)
LIVE = 700  # minutes served live after them
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               alive: Callable[[], str | None] | None = None, interval: float = 0.05) -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` s, or at once when ``alive`` reports a death."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if alive is not None and (death := alive()) is not None:
            raise AssertionError(f"while waiting for {what}: {death}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                                 + (f": {alive()}" if alive is not None and alive() else ""))
        time.sleep(interval)


class LoopThread:
    """An asyncio event loop in a daemon thread; :meth:`run` executes a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="reliability-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call(self, function: Callable[[], T], timeout: float = 10.0) -> T:
        async def wrapper() -> T:
            return function()
        return self.run(wrapper(), timeout)

    def close(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            self.run(cancel_rest(), 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self.loop.close()


class RedisProcess:
    """A private ``redis-server`` on a free loopback port (never the shared one), killable and restartable."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (apt-get install redis-server)"
        self.binary = binary

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.workdir / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(self.answers, 10, f"redis-server on port {self.port}")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def close(self) -> None:
        self.kill()


class PostgresProcess:
    """A private PostgreSQL cluster (``initdb`` in a directory of its own, never the shared server) on
    a free loopback port, that can be crashed (``pg_ctl stop -m immediate``: no shutdown checkpoint,
    WAL buffers lost) and started again. Run as the ``postgres`` user when the tests run as root."""

    def __init__(self, **settings: str) -> None:
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="tcp-pg-"))  # outside pytest's 0700 tmp: the owner must reach it
        self.data = self.home / "data"
        self.settings = {"listen_addresses": "'127.0.0.1'", "port": str(self.port),
                         "unix_socket_directories": f"'{self.data}'", "fsync": "on", **settings}
        self.bin = Path(_pg_bindir())

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_owner(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert done.returncode == 0, f"{' '.join(command)} failed: {done.stderr.strip()}"

    def init(self) -> None:
        self.home.chmod(0o755)
        self.data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
        self._as_owner(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                       "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in self.settings.items())

    @property
    def socket_url(self) -> str:
        """The same server through its Unix socket (reachable while TCP is off, see :meth:`start`)."""
        return f"postgresql://postgres@/postgres?host={self.data}&port={self.port}"

    def start(self, tcp: bool = True) -> None:
        """Start (after a crash: recover first); ``tcp=False`` listens on the Unix socket only."""
        options = [] if tcp else ["-o", "-c listen_addresses=''"]
        self._pg_ctl("-l", str(self.data / "server.log"), *options, "-t", "60", "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def crash(self) -> None:
        self._pg_ctl("-m", "immediate", "stop")

    def _pg_ctl(self, *args: str) -> None:
        self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", *args)

    def __enter__(self) -> PostgresProcess:
        """Initialised and started; closed (crashed if running, removed) on exit."""
        self.init()
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.crash()
        shutil.rmtree(self.home, ignore_errors=True)


def _pg_bindir() -> str:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return str(found[-1].parent)
    initdb = shutil.which("initdb")
    assert initdb, "PostgreSQL's server binaries (initdb, pg_ctl) are not installed"
    return str(Path(initdb).parent)


# ---------------------------------------------------------------------------- the replayed market


@dataclass(frozen=True)
class Market:
    tape: Tape
    trades: pd.DataFrame  # the synthesised trades the tape was built from (trade_id, ts_ms, price, size, side)
    history: list[Candle]  # the first HISTORY minutes, stored before a run
    live_start_ms: int  # open time of the first live minute

    def minute(self, n: int) -> int:
        """Open time of the n-th live minute (0 = the first one)."""
        return self.live_start_ms + n * MINUTE

    @property
    def history_ms(self) -> int:
        """``ReplayServer(history_ms=…)`` that opens the live market at the first live minute."""
        return self.live_start_ms - self.tape.first_ts


@cache
def market() -> Market:
    candles = read_candles_csv(FIXTURE_CANDLES).iloc[:HISTORY + LIVE]
    frame = synthesise_frame(candles, seed=11)
    tape = Tape(trade_id=frame["trade_id"].to_numpy(np.int64), ts_ms=frame["ts_ms"].to_numpy(np.int64),
                price=frame["price"].to_numpy(np.float64), size=frame["size"].to_numpy(np.float64),
                is_buy=(frame["side"] == "buy").to_numpy(), source=f"synthesised from {FIXTURE_CANDLES.name}")
    live_start = int(candles["ts_ms"].iloc[HISTORY])
    history = [Candle("okx", SYMBOL, Timeframe.M1, b.open_ms, b.open, b.high, b.low, b.close, b.volume, b.quote)
               for b in minute_bars(tape) if b.open_ms < live_start]
    return Market(tape, frame, history, live_start)


def subprocess_env(**values: str) -> dict[str, str]:
    """The test process's environment without any project setting, plus ``values``."""
    drop = ("DATABASE_URL", "REDIS_URL", "REDIS_PREFIX", "SYMBOLS", "BOTS_DIR", "MARKET_SOURCE", "OKX_WS_URL",
            "OKX_REST_URL", "DASHBOARD_PORT", "DASHBOARD_HOST", "METRICS_PORT", "LOG_DIR", "TIMEFRAMES")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(values)
    return env
