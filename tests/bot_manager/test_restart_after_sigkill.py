"""SIGKILL of a real ``python main.py bot run`` mid-run, then a restart, ends in exactly the state of an
uninterrupted run: same orders, fills, positions, equity snapshots, signals, balances and bot state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import select

from config.domain import Candle, datetime_to_ms
from data import messages, topics
from database.engine import session_scope
from database.migrate import upgrade
from database.models import Bot, BotEvent, ComponentHealth, EquitySnapshot, Fill, Order, Position, SignalRow
from tests.bot_manager.builders import bot_config, load_candles, sessions_for, store_candles
from tests.conftest import REDIS_URL, create_pg_database, drop_pg_database

ROOT = Path(__file__).resolve().parents[2]
WARMUP = 300
TOTAL = 1000
KILL_AT = 650

BOTS = [
    bot_config(name="sma_exits", risk={"stop_loss_pct": 0.3, "take_profit_pct": 0.4, "trailing_stop_pct": 0.25}),
    bot_config(name="ema_long_short", strategy="ema_cross", params={"fast": 5, "slow": 13},
               direction="long_short", leverage=2, sizing={"method": "equity_fraction", "fraction_pct": 30},
               slippage={"model": "volume", "base_bps": 1, "impact_bps": 50, "max_bps": 40},
               risk={"cooldown_candles": 2, "max_exposure_pct": 80}),
]


def _start(db_url: str, prefix: str, bots_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix,
           "BOTS_DIR": str(bots_dir), "LOG_LEVEL": "WARNING"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "main.py", "bot", "run"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def _wait(predicate: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes],
          log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"bot manager exited with {proc.returncode}: {log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {log.read_text()[-3000:]}")
        time.sleep(0.05)


class Run:
    """One database + one Redis prefix + the bot manager as a real subprocess."""

    def __init__(self, tmp: Path, name: str, candles: list[Candle]) -> None:
        self.url = create_pg_database(f"tcp_bots_{name}")
        upgrade(self.url)
        self.prefix = f"test:{name}:{os.getpid()}:{time.time_ns()}:"
        self.dir = tmp / name
        self.dir.mkdir()
        for bot in BOTS:
            (self.dir / f"{bot['name']}.json").write_text(json.dumps(bot))
        self.log = tmp / f"{name}.log"
        self.sessions = sessions_for(self.url)
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.candles = candles
        store_candles(self.sessions, candles[:WARMUP])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        started = datetime.now(UTC)
        self.proc = _start(self.url, self.prefix, self.dir, self.log)

        def ready() -> bool:
            with session_scope(self.sessions) as session:
                row = session.get(ComponentHealth, "bot_manager")
                return row is not None and row.updated_at >= started
        _wait(ready, 60, "the bot manager to start", self.proc, self.log)

    def feed(self, start: int, stop: int) -> None:
        for candle in self.candles[start:stop]:
            store_candles(self.sessions, [candle])
            channel = topics.candles(candle.exchange, candle.symbol, candle.timeframe)
            self.redis.publish(self.prefix + channel, messages.dumps(messages.candle_to_message(candle)))
            time.sleep(0.002)

    def wait_done(self) -> None:
        last = self.candles[-1].open_time_ms

        def done() -> bool:
            with session_scope(self.sessions) as session:
                times = session.scalars(select(Bot.last_candle_time)).all()
            return len(times) == len(BOTS) and all(t is not None and datetime_to_ms(t) == last for t in times)
        assert self.proc is not None
        _wait(done, 120, "every bot to process the last candle", self.proc, self.log)

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0, self.log.read_text()[-3000:]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def processed(self) -> int:
        """The oldest ``last_candle_time`` among the bots (epoch ms)."""
        with session_scope(self.sessions) as session:
            return min(datetime_to_ms(t) for t in session.scalars(select(Bot.last_candle_time)))

    def state(self) -> dict[str, Any]:
        """Everything the bots stored, without surrogate ids and wall-clock times."""
        with session_scope(self.sessions) as s:
            names = dict(s.execute(select(Bot.id, Bot.name)).all())
            return {
                "bots": sorted((b.name, b.status, b.balance, b.equity, b.fees_paid, b.realised_pnl, b.peak_equity,
                                json.dumps(b.state, sort_keys=True), b.last_candle_time)
                               for b in s.scalars(select(Bot))),
                "orders": sorted((names[o.bot_id], o.client_order_id, o.side, o.order_type, o.quantity, o.status,
                                  o.limit_price, o.stop_price, o.reason) for o in s.scalars(select(Order))),
                "fills": sorted((names[f.bot_id], f.ts, f.side, f.quantity, f.price, f.fee, f.realised_pnl,
                                 f.position_after, f.balance_after, f.reason) for f in s.scalars(select(Fill))),
                "positions": sorted((names[p.bot_id], p.opened_at, p.side, p.quantity, p.entry_price, p.status,
                                     p.fees, p.realised_pnl, p.exit_price, p.exit_reason, p.closed_at)
                                    for p in s.scalars(select(Position))),
                "equity": sorted((names[e.bot_id], e.ts, e.equity, e.balance, e.unrealised_pnl)
                                 for e in s.scalars(select(EquitySnapshot))),
                "signals": sorted((r.source, r.candle_time, r.signal_type) for r in s.scalars(select(SignalRow))),
                "risk_events": sorted((names[e.bot_id], e.candle_time, e.kind, e.message)
                                      for e in s.scalars(select(BotEvent)) if e.candle_time is not None),
            }

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.sessions.kw["bind"].dispose()
        for key in self.redis.scan_iter(f"{self.prefix}*"):
            self.redis.delete(key)
        self.redis.close()
        drop_pg_database(self.url)


def test_sigkill_mid_run_and_restart_give_the_same_final_state_as_an_uninterrupted_run(tmp_path: Path) -> None:
    candles = load_candles(TOTAL)
    straight, killed = Run(tmp_path, "straight", candles), Run(tmp_path, "killed", candles)
    try:
        straight.start()
        straight.feed(WARMUP, TOTAL)
        straight.wait_done()
        straight.terminate()

        killed.start()
        killed.feed(WARMUP, KILL_AT)
        killed.kill()  # while it is still busy with the candles just published
        done_before_kill = killed.processed()
        assert candles[WARMUP].open_time_ms <= done_before_kill, "the first process never traded"
        print("processed before the kill:", done_before_kill, "last fed:", candles[KILL_AT - 1].open_time_ms)
        killed.feed(KILL_AT, KILL_AT + 100)  # the collector keeps storing while the bots are down
        killed.start()
        killed.feed(KILL_AT + 100, TOTAL)
        killed.wait_done()
        killed.terminate()

        expected, got = straight.state(), killed.state()
        assert len(expected["fills"]) >= 20 and len(expected["equity"]) == len(BOTS) * (TOTAL - WARMUP)
        for table in expected:
            assert got[table] == expected[table], table
    finally:
        straight.close()
        killed.close()
