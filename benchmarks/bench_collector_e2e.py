"""Collector end to end, with real processes, PostgreSQL and Redis:

* ``throughput``: ``replay --speed 0`` -> ``collect`` into PostgreSQL with raw trades stored, trades/s.
* ``latency``: trade received -> closed candle published on Redis (written to PostgreSQL first), p50/p99.
* ``rss``: collector resident memory with 50 symbols x 6 timeframes (a synthesised day each).
* ``rss_all``: all the collectors together, 50 symbols in one process: OKX (46 synthesised symbols), Binance
  (the real BTC-USDT spot and USDⓈ-M tapes, with both order books and the USDⓈ-M funding/liquidation stream) and
  Bybit (the same tapes in Bybit framing, spot + linear, with the linear tickers/liquidation stream); beside the
  same with ``ORDER_BOOKS`` and ``MARKET_STATE`` off (the reference).

    .venv/bin/python benchmarks/bench_collector_e2e.py [throughput|latency|rss|rss_all|idle ...]
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import psycopg2  # noqa: E402

ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TAPE = ROOT / "data" / "samples" / "tape_BTC-USDT_binance_spot_2024-08-08T2354.csv.gz"


class Database:
    def __init__(self) -> None:
        self.name = f"bench_e2e_{uuid.uuid4().hex[:8]}"
        self.admin = psycopg2.connect(ADMIN)
        self.admin.autocommit = True
        self.admin.cursor().execute(f'CREATE DATABASE "{self.name}"')
        self.url = ADMIN.rsplit("/", 1)[0] + "/" + self.name

    def scalar(self, sql: str) -> int:
        with psycopg2.connect(self.url) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return int(cur.fetchone()[0])

    def drop(self) -> None:
        self.admin.cursor().execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.close()


def env(database_url: str, data_dir: str) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SYMBOLS")}
    values.update(DATABASE_URL=database_url, TCP_DATA_DIR=data_dir, LOG_LEVEL="WARNING",
                  TRADE_RETENTION_DAYS="3650")  # the tapes are old: keep their raw trades
    return values


def start_replay(args: list[str], data_dir: str) -> tuple[subprocess.Popen[str], str, str]:
    process = subprocess.Popen([sys.executable, "main.py", "replay", "--port", "0", *args], cwd=ROOT,
                               env=env("sqlite:///" + data_dir + "/unused.db", data_dir), stdout=subprocess.PIPE,
                               text=True)
    match = re.search(r"(ws://\S+) rest (http://\S+)", process.stdout.readline())  # type: ignore[union-attr]
    assert match
    return process, match.group(1), match.group(2)


def start_collect(database_url: str, symbols: str, ws: str, rest: str, data_dir: str,
                  entry: tuple[str, ...] = ("main.py",)) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, *entry, "collect", "--symbols", symbols, "--okx-ws-url", ws,
                             "--okx-rest-url", rest], cwd=ROOT, env=env(database_url, data_dir))


def throughput(passes: int = 25) -> None:
    from data.replay.tape import read_tape

    total = len(read_tape(TAPE)) * passes
    db = Database()
    with tempfile.TemporaryDirectory() as tmp:
        replay, ws, rest = start_replay(["--tape", str(TAPE), "--symbol", "BTC-USDT", "--speed", "0", "--loop",
                                         "--passes", str(passes)], tmp)
        collect = start_collect(db.url, "BTC-USDT", ws, rest, tmp)
        try:
            while True:
                time.sleep(0.05)
                try:
                    if db.scalar("SELECT count(*) FROM trades") > 0:
                        break
                except psycopg2.Error:
                    pass
            start = time.perf_counter()
            stored = 0
            while stored < total and time.perf_counter() - start < 300:
                time.sleep(0.25)
                stored = db.scalar("SELECT count(*) FROM trades")
            seconds = time.perf_counter() - start
            cpu = psutil.Process(collect.pid).cpu_times()
            candles = db.scalar("SELECT count(*) FROM candles")
        finally:
            collect.terminate()
            collect.wait(120)
            replay.terminate()
            replay.wait(30)
            db.drop()
    print(f"throughput: {stored:,} of {total:,} real trades (tape x{passes}) replayed at --speed 0 and stored "
          f"with {candles:,} candles in PostgreSQL: {stored / seconds / 1000:.1f} k trades/s "
          f"(collector CPU {cpu.user + cpu.system:.1f} s of {seconds:.1f} s wall)")


def latency(closes: int = 400) -> None:
    for durable in (False, True):
        _latency(closes, durable)


def _latency(closes: int, durable: bool) -> None:
    from config.domain import Side
    from data.bus import RedisBus
    from data.collector import Collector, CollectorConfig
    from data.okx.frames import WireTrade
    from database.migrate import upgrade

    db = Database()
    upgrade(db.url)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"

    async def main() -> list[float]:
        bus, listener = RedisBus(REDIS, prefix=prefix), RedisBus(REDIS, prefix=prefix)
        subscription = await listener.subscribe("candles.okx.BTC-USDT.1m")
        config = CollectorConfig(("BTC-USDT",), "ws://127.0.0.1:9/unused", "http://127.0.0.1:9", db.url,
                                 durable_commits=durable)
        collector = Collector(config, bus)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(collector.writer.run(stop)), asyncio.create_task(collector.publisher.run(stop))]
        t0 = 1_700_000_040_000 - 1_700_000_040_000 % 60_000
        sent: dict[int, float] = {}
        samples: list[float] = []
        trade_id = 1
        for minute in range(closes + 1):
            for k in range(20):  # a busy minute: 20 pushes of 5 trades
                trades = [WireTrade(tradeId=trade_id + j, px=100.0 + j, sz=0.1, side=Side.BUY,
                                    ts=t0 + minute * 60_000 + k * 100 + j) for j in range(5)]
                trade_id += 5
                if k == 0:
                    sent[t0 + (minute - 1) * 60_000] = time.perf_counter()
                collector._on_trades("BTC-USDT", trades, int(time.time() * 1000))
            while (message := await subscription.get(timeout=0.2 if minute else 0.01)) is not None:
                _, body = message
                samples.append(time.perf_counter() - sent[int(body["open_time_ms"])])
            await asyncio.sleep(0.002)
        stop.set()
        await asyncio.gather(*tasks)
        await subscription.close()
        await listener.close()
        await bus.close()
        collector.db.dispose()
        return samples

    try:
        samples = asyncio.run(main())
    finally:
        db.drop()
    samples.sort()
    ms = [s * 1000 for s in samples]
    print(f"latency: trade received -> closed 1m candle written to PostgreSQL and received from Redis, "
          f"{len(ms)} closes: p50 {statistics.median(ms):.2f} ms, p99 {ms[int(len(ms) * 0.99) - 1]:.2f} ms, "
          f"max {ms[-1]:.2f} ms (raw trades stored too; "
          f"{'synchronous commit' if durable else 'synchronous_commit=off, the default'})")


def synthesised_day(folder: str, symbols: int) -> tuple[list[str], list[str]]:
    """``symbols`` tapes of a day (2026-01-02) synthesised from the real candles, scaled apart: the replay's
    ``--tape``/``--symbol`` arguments and the names."""
    from data.replay.synth import synthesise
    from data.service import DEMO_CANDLES

    day = 1_767_312_000_000
    args, names = [], []
    for i in range(symbols):
        name = f"S{i:02d}-USDT"
        path = synthesise(DEMO_CANDLES, Path(folder) / f"{name}.csv.gz", seed=i, price_scale=1.0 / (i + 1),
                          price_decimals=3, first_trade_id=1_000_000 * (i + 1), start_ms=day, end_ms=day + 86_400_000)
        args += ["--tape", str(path), "--symbol", name]
        names.append(name)
    return args, names


def rss(symbols: int = 50) -> None:
    db = Database()
    with tempfile.TemporaryDirectory() as tmp:
        args, names = synthesised_day(tmp, symbols)
        from data.replay.tape import read_tape

        total = sum(len(read_tape(Path(tmp) / f"{n}.csv.gz")) for n in names)
        replay, ws, rest = start_replay([*args, "--speed", "0"], tmp)
        collect = start_collect(db.url, ",".join(names), ws, rest, tmp, entry=("-m", "data"))
        peak = 0
        try:
            process = psutil.Process(collect.pid)
            start = time.perf_counter()
            stored = 0
            while stored < total and time.perf_counter() - start < 600:
                time.sleep(0.5)
                peak = max(peak, process.memory_info().rss)
                try:
                    stored = db.scalar("SELECT count(*) FROM trades")
                except psycopg2.Error:
                    pass
            candles = db.scalar("SELECT count(*) FROM candles")
            final = process.memory_info().rss
        finally:
            collect.terminate()
            collect.wait(120)
            replay.terminate()
            replay.wait(30)
            db.drop()
    print(f"rss: `python -m data collect`, {symbols} symbols x 6 timeframes, {stored:,} trades and {candles:,} "
          f"candles stored at --speed 0: RSS {final / 2**20:.0f} MB at the end, {peak / 2**20:.0f} MB peak (sampled)")


def start_venue_replay(protocol: str, tmp: str) -> tuple[subprocess.Popen[str], tuple[str, ...]]:
    """``replay --protocol P`` of the bundled Binance tapes at 2x, looping: (process, (ws, rest, perp ws))."""
    replay = subprocess.Popen(
        [sys.executable, "main.py", "replay", "--port", "0", "--protocol", protocol, "--speed", "2", "--loop"],
        cwd=ROOT, env=env("sqlite:///" + tmp + "/unused.db", tmp), stdout=subprocess.PIPE, text=True)
    line = replay.stdout.readline()  # type: ignore[union-attr]
    found = re.search(r"(ws://\S+) rest (http://\S+) (?:usdm|linear) (ws://\S+)", line)
    assert found, f"replay did not start: {line!r}"
    return replay, found.groups()


def rss_all(okx_symbols: int = 46, seconds: float = 90.0) -> None:
    """One collector process for every venue (``SYMBOLS=S00-USDT,...,binance:BTC-USDT,binance:BTC-USDT-SWAP,
    bybit:BTC-USDT,bybit:BTC-USDT-SWAP``, the venues' URLs pointing at three replay processes), with and without
    books and market state."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        args, names = synthesised_day(tmp, okx_symbols)
        for label, extra in (("reference: trades and candles only", {"ORDER_BOOKS": "false", "MARKET_STATE": "false"}),
                             ("with books and market state", {})):
            db = Database()
            okx_replay, ws, rest = start_replay([*args, "--speed", "0"], tmp)
            binance_replay, (b_ws, b_rest, b_usdm) = start_venue_replay("binance", tmp)
            bybit_replay, (y_ws, y_rest, y_linear) = start_venue_replay("bybit", tmp)
            venues = ["binance:BTC-USDT", "binance:BTC-USDT-SWAP", "bybit:BTC-USDT", "bybit:BTC-USDT-SWAP"]
            environment = {**env(db.url, tmp), **extra, "MARKET_SOURCE": "live", "SYMBOLS": ",".join([*names, *venues]),
                           "OKX_WS_URL": ws, "OKX_REST_URL": rest, "BINANCE_WS_URL": b_ws, "BINANCE_REST_URL": b_rest,
                           "BINANCE_USDM_WS_URL": b_usdm, "BINANCE_USDM_REST_URL": b_rest, "BYBIT_WS_URL": y_ws,
                           "BYBIT_LINEAR_WS_URL": y_linear, "BYBIT_REST_URL": y_rest}
            collect = subprocess.Popen([sys.executable, "-m", "data", "collect"], cwd=ROOT, env=environment)
            peak = 0
            try:
                process = psutil.Process(collect.pid)
                deadline = time.perf_counter() + seconds
                while time.perf_counter() < deadline:
                    time.sleep(0.5)
                    peak = max(peak, process.memory_info().rss)
                final = process.memory_info().rss
                assert collect.poll() is None, "the collector stopped"
                books = db.scalar("SELECT count(*) FROM book_snapshots")
                trades = db.scalar("SELECT count(*) FROM trades")
                binance = db.scalar("SELECT count(*) FROM candles WHERE exchange = 'binance'")
                bybit = db.scalar("SELECT count(*) FROM candles WHERE exchange = 'bybit'")
            finally:
                for p in (collect, okx_replay, binance_replay, bybit_replay):
                    p.terminate()
                    p.wait(120)
                db.drop()
            results[label] = (final, peak, books, trades, binance, bybit)
    print(f"rss_all: one `python -m data collect` for {okx_symbols} OKX + 2 Binance + 2 Bybit symbols, {seconds:.0f} s "
          "(OKX replay at --speed 0, Binance and Bybit at 2x looping)")
    for label, (final, peak, books, trades, binance, bybit) in results.items():
        print(f"  {label:<36} RSS {final / 2**20:.0f} MB at the end, {peak / 2**20:.0f} MB peak; {trades:,} trades, "
              f"{binance:,} Binance and {bybit:,} Bybit candles, {books:,} book snapshots stored")


def idle(seconds: float = 20.0) -> None:
    """RSS of a collector following one symbol at live speed, through ``main.py`` and ``-m data``."""
    db = Database()
    sizes = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            replay, ws, rest = start_replay(["--tape", str(TAPE), "--symbol", "BTC-USDT", "--speed", "1"], tmp)
            try:
                for entry in (("main.py",), ("-m", "data")):
                    collect = start_collect(db.url, "BTC-USDT", ws, rest, tmp, entry=entry)
                    time.sleep(seconds)
                    sizes[" ".join(entry)] = psutil.Process(collect.pid).memory_info().rss
                    collect.terminate()
                    collect.wait(60)
            finally:
                replay.terminate()
                replay.wait(30)
    finally:
        db.drop()
    print(f"idle: one symbol at live speed after {seconds:.0f} s, RSS: " + ", ".join(
        f"`python {entry} collect` {rss / 2**20:.0f} MB" for entry, rss in sizes.items()))


if __name__ == "__main__":
    parts = sys.argv[1:] or ["throughput", "latency", "rss", "idle"]
    for part in parts:
        {"throughput": throughput, "latency": latency, "rss": rss, "rss_all": rss_all, "idle": idle}[part]()
