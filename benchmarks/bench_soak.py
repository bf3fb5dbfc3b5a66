"""Soak: the whole platform (``python main.py``) on the looping bundled replay at high speed for N
minutes, printing its memory (RSS) over time; the memory should stay flat once warm.

The platform runs as a real subprocess on a fresh PostgreSQL database and the real Redis (a key
prefix of its own), with the shipped bots of ``config/bots/`` trading (their kill switch and daily loss
limit removed, so they trade all along) and the dashboard served (this script fetches its page every
sample, as an open browser tab would). Each sample prints the
platform's RSS next to what it has done so far (candles and trades stored, bot fills, market time).

Reference, printed side by side: the RSS of a Python process that only imports the same packages
(the floor the platform's RSS starts from), and the growth rate a leak would show.

Run: ``.venv/bin/python benchmarks/bench_soak.py --minutes 10 [--speed 600] [--interval 30]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from database.engine import make_engine, make_session_factory, session_scope  # noqa: E402
from database.models import Bot, CandleRow, Fill, TradeRow  # noqa: E402

IMPORTS = ("import main, data.service, data.collector, bot_manager.runtime, dashboard.server, backtesting.service, "
           "strategies.registry")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(process: psutil.Process) -> float:
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def import_floor_mb() -> float:
    """RSS of a Python process that has imported the platform's packages and does nothing else."""
    probe = subprocess.Popen([sys.executable, "-c", f"{IMPORTS}; import sys; sys.stdout.write('ready\\n'); "
                              "sys.stdout.flush(); sys.stdin.read()"], cwd=ROOT, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert probe.stdout is not None and probe.stdout.readline().strip() == "ready"
        return rss_mb(psutil.Process(probe.pid))
    finally:
        probe.kill()
        probe.wait(10)


def counts(sessions: object) -> tuple[int, int, int, datetime | None, datetime | None]:
    """(candles, trades, fills, newest 1m open time, last candle of the running bot furthest behind)."""
    with session_scope(sessions) as s:  # type: ignore[arg-type]
        candles = s.scalar(select(func.count()).select_from(CandleRow)) or 0
        trades = s.scalar(select(func.count()).select_from(TradeRow)) or 0
        fills = s.scalar(select(func.count()).select_from(Fill)) or 0
        newest = s.scalar(select(func.max(CandleRow.open_time)).where(CandleRow.timeframe == "1m"))
        bots = s.scalar(select(func.min(Bot.last_candle_time)).where(Bot.status == "running"))
    return candles, trades, fills, newest, bots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the platform runs")
    parser.add_argument("--speed", type=float, default=600.0, help="replay speed (x real time)")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    from tests.conftest import create_pg_database, drop_pg_database

    floor = import_floor_mb()
    url = create_pg_database("tcp_bench_soak")
    folder = Path(tempfile.mkdtemp(prefix="bench_soak_"))
    port = free_port()
    prefix = f"soak:{os.getpid()}:"
    bots = folder / "bots"
    bots.mkdir()
    for path in sorted((ROOT / "config" / "bots").glob("*.json")):
        bot = json.loads(path.read_text())
        if not path.name.startswith("_"):  # keep them trading: no kill switch, no daily stop
            bot["risk"] = {**bot.get("risk", {}), "max_drawdown_pct": None, "daily_loss_limit_pct": None}
        (bots / path.name).write_text(json.dumps(bot))
    env = {k: v for k, v in os.environ.items() if k not in ("SYMBOLS", "OKX_WS_URL", "OKX_REST_URL")}
    env.update(DATABASE_URL=url, REDIS_URL=args.redis_url, REDIS_PREFIX=prefix, MARKET_SOURCE="replay",
               REPLAY_SPEED=str(args.speed), REPLAY_PORT="0", DASHBOARD_PORT=str(port), TCP_DATA_DIR=str(folder),
               BOTS_DIR=str(bots), LOG_LEVEL="WARNING")
    log = (folder / "platform.log").open("wb")
    started = time.monotonic()
    platform = subprocess.Popen([sys.executable, "main.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    process = psutil.Process(platform.pid)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    samples: list[tuple[float, float]] = []
    print(f"platform pid {platform.pid}, replay speed {args.speed:g}x, {args.minutes:g} min, log {log.name}")
    print(f"{'minute':>6} {'RSS MB':>8} {'candles':>9} {'trades':>10} {'fills':>6}  {'market time reached':<17} "
          "bots behind")
    try:
        deadline = started + args.minutes * 60
        next_sample = started + min(args.interval, 10.0)
        while True:
            time.sleep(max(0.0, next_sample - time.monotonic()))
            if platform.poll() is not None:
                raise SystemExit(f"the platform exited with {platform.returncode}; see {log.name}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
            except OSError as exc:
                print(f"  dashboard did not answer: {exc}")
            minute = (time.monotonic() - started) / 60
            rss = rss_mb(process)
            samples.append((minute, rss))
            try:
                candles, trades, fills, newest, slowest_bot = counts(sessions)
            except Exception as exc:  # noqa: BLE001 - the schema may not be migrated in the first seconds
                candles = trades = fills = 0
                newest = slowest_bot = None
                print(f"  (database not ready: {str(exc).splitlines()[0][:80]})")
            reached = newest.strftime("%Y-%m-%d %H:%M") if newest else "-"
            behind = f"{(newest - slowest_bot).total_seconds() / 60:.0f} min" if newest and slowest_bot else "-"
            print(f"{minute:6.1f} {rss:8.1f} {candles:9d} {trades:10d} {fills:6d}  {reached:<17} {behind}",
                  flush=True)
            if time.monotonic() >= deadline:
                break
            next_sample += args.interval
        sent = time.monotonic()
        platform.send_signal(signal.SIGTERM)
        code = platform.wait(60)
        stop_s = time.monotonic() - sent
    finally:
        if platform.poll() is None:
            platform.kill()
            platform.wait(10)
        log.close()
        engine.dispose()
        drop_pg_database(url)

    warm = [(m, r) for m, r in samples if m >= 2.0] or samples
    half = [(m, r) for m, r in warm if m >= warm[0][0] + (warm[-1][0] - warm[0][0]) / 2] or warm
    slope = float(np.polyfit([m for m, _ in half], [r for _, r in half], 1)[0]) if len(half) >= 2 else 0.0
    print()
    print(f"{'':38} {'platform':>10} {'reference':>10}")
    print(f"{'RSS floor (imports only), MB':38} {'':>10} {floor:10.1f}")
    print(f"{'RSS after warm-up (minute >= 2), MB':38} {warm[0][1]:10.1f}")
    print(f"{'RSS at the end, MB':38} {warm[-1][1]:10.1f}")
    print(f"{'RSS max, MB':38} {max(r for _, r in samples):10.1f}")
    print(f"{'growth, second half (least squares), MB/min':38} {slope:10.2f} {'0 (flat)':>10}")
    print(f"SIGTERM -> exit {code} in {stop_s:.1f} s")


if __name__ == "__main__":
    main()
