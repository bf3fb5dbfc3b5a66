"""``python main.py`` as a real subprocess on a fresh PostgreSQL database, trading a replayed market
served from this process, with everything the fault tests need to observe and hurt it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from config.domain import Timeframe, datetime_to_ms
from data.replay.server import ReplayServer
from database.engine import make_engine, make_session_factory, session_scope
from database.migrate import upgrade
from database.models import Bot, BotEvent, ComponentHealth, EquitySnapshot, Fill, Order, Position, SignalRow
from database.repositories.market import upsert_candles
from tests.bot_manager.builders import bot_config
from tests.conftest import create_pg_database, drop_pg_database
from tests.reliability.harness import ROOT, SYMBOL, LoopThread, Market, free_port, subprocess_env, wait_until

BOTS = [
    bot_config(name="sma_exits", risk={"stop_loss_pct": 0.3, "take_profit_pct": 0.4, "trailing_stop_pct": 0.25}),
    bot_config(name="ema_long_short", strategy="ema_cross", params={"fast": 5, "slow": 13},
               direction="long_short", leverage=2, sizing={"method": "equity_fraction", "fraction_pct": 30},
               slippage={"model": "volume", "base_bps": 1, "impact_bps": 50, "max_bps": 40},
               risk={"cooldown_candles": 2, "max_exposure_pct": 80}),
]
SIGTERM_BOUND_S = 15.0  # liveness bound, not a speed figure


class PlatformRun:
    """One database, one bot folder, one replay server (in ``loop``) and ``python main.py``.

    ``database_url_for`` maps the database's URL to what the platform is given (e.g. through a
    proxy); the test itself always reads the database directly. ``database_url``: an empty database
    of the test's own (e.g. on a private cluster it stops and starts) instead of a fresh one on the
    shared server; it is left in place on :meth:`close`.
    """

    def __init__(self, tmp: Path, name: str, market: Market, loop: LoopThread, *, speed: float, redis_url: str,
                 database_url_for: Any = None, loop_tape: bool = True, database_url: str | None = None) -> None:
        self.name, self.market, self.loop, self.speed, self.loop_tape = name, market, loop, speed, loop_tape
        self.dir = tmp / name
        (self.dir / "bots").mkdir(parents=True)
        for bot in BOTS:
            (self.dir / "bots" / f"{bot['name']}.json").write_text(json.dumps(bot))
        self._own_database = database_url is None
        self.url = database_url or create_pg_database(f"tcp_rel_{name}")
        self.platform_url = database_url_for(self.url) if database_url_for else self.url
        self.redis_url = redis_url
        self.prefix = f"rel:{name}:{time.time_ns()}:"
        self.log = self.dir / "platform.log"
        self.engine = make_engine(self.url)
        self.sessions = make_session_factory(self.engine)
        self.process: subprocess.Popen[bytes] | None = None
        self.server: ReplayServer | None = None
        self.exits: list[tuple[int, float]] = []  # (exit code, seconds from SIGTERM to exit)
        upgrade(self.url)
        with session_scope(self.sessions) as session:
            upsert_candles(session, market.history)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the replay paused, start the platform, and let the market open once the bots are loaded."""
        if self.server is None:
            async def serve() -> ReplayServer:
                server = ReplayServer({SYMBOL: self.market.tape}, speed=self.speed, loop=self.loop_tape,
                                      history_ms=self.market.history_ms)
                server.pause()
                return await server.start()
            self.server = self.loop.run(serve())
        started = datetime.now(UTC)
        env = subprocess_env(
            DATABASE_URL=self.platform_url, REDIS_URL=self.redis_url, REDIS_PREFIX=self.prefix,
            MARKET_SOURCE="live", OKX_WS_URL=self.server.ws_url, OKX_REST_URL=self.server.rest_url,
            SYMBOLS=SYMBOL, BOTS_DIR=str(self.dir / "bots"), DASHBOARD_PORT=str(free_port()),
            TCP_DATA_DIR=str(self.dir), LOG_LEVEL="INFO")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "main.py"], cwd=ROOT, env=env, stdout=out,
                                            stderr=subprocess.STDOUT)
        wait_until(lambda: self._health_since("bot_manager", started), 60, f"{self.name}: the bots to load",
                   self.death)
        self.loop.call(self.server.resume)

    def _health_since(self, component: str, since: datetime) -> bool:
        with session_scope(self.sessions) as session:
            row = session.get(ComponentHealth, component)
            return row is not None and row.updated_at >= since

    def death(self) -> str | None:
        """None while the platform runs; else its exit code and the end of its log."""
        if self.process is None or self.process.poll() is None:
            return None
        return f"the platform exited with {self.process.returncode}:\n{self.log_tail()}"

    def log_tail(self, size: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds until exit). Kills after 60 s."""
        assert self.process is not None
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(10)
        result = (code, time.monotonic() - sent)
        self.exits.append(result)
        print(f"{self.name}: SIGTERM -> exit {code} in {result[1]:.1f} s")
        return result

    def close(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)
            if self.server is not None:
                self.loop.run(self.server.close(), 15)
        finally:
            self.engine.dispose()
            if self._own_database:
                drop_pg_database(self.url)

    # ------------------------------------------------------------------ observations

    def processed(self) -> int | None:
        """The oldest ``last_candle_time`` of the bots (epoch ms), None before every bot processed one."""
        with session_scope(self.sessions) as session:
            times = session.scalars(select(Bot.last_candle_time)).all()
        known = [datetime_to_ms(t) for t in times if t is not None]
        return min(known) if len(known) == len(BOTS) else None

    def wait_processed(self, candle_ms: int, timeout: float) -> None:
        wait_until(lambda: (self.processed() or 0) >= candle_ms, timeout,
                   f"{self.name}: every bot to process the candle at {candle_ms}", self.death)

    def health(self, component: str) -> tuple[str, dict[str, Any]] | None:
        with session_scope(self.sessions) as session:
            row = session.get(ComponentHealth, component)
            return None if row is None else (row.status, dict(row.data))

    def bot_state(self, until_ms: int) -> dict[str, list[tuple[Any, ...]]]:
        """What the bots stored for the candles up to ``until_ms``, without ids and wall-clock times:
        fills (with balance and position after each), equity snapshots (equity, balance,
        unrealised PnL), positions, signals and risk events."""
        def upto(value: datetime | None) -> bool:
            return value is not None and datetime_to_ms(value) <= until_ms

        with session_scope(self.sessions) as s:
            names = dict(s.execute(select(Bot.id, Bot.name)).all())
            return {
                "fills": sorted((names[f.bot_id], f.ts, f.side, f.quantity, f.price, f.fee, f.realised_pnl,
                                 f.position_after, f.balance_after, f.reason)
                                for f in s.scalars(select(Fill)) if upto(f.ts)),
                "equity": sorted((names[e.bot_id], e.ts, e.equity, e.balance, e.unrealised_pnl)
                                 for e in s.scalars(select(EquitySnapshot)) if upto(e.ts)),
                "positions": sorted((names[p.bot_id], p.opened_at, p.side, p.entry_price,
                                     *((p.quantity, p.exit_price, p.exit_reason, p.realised_pnl, p.closed_at)
                                       if upto(p.closed_at) else ()))
                                    for p in s.scalars(select(Position)) if upto(p.opened_at)),
                "signals": sorted((r.source, r.candle_time, r.signal_type)
                                  for r in s.scalars(select(SignalRow)) if upto(r.candle_time)),
                "risk_events": sorted((names[e.bot_id], e.candle_time, e.kind, e.message)
                                      for e in s.scalars(select(BotEvent)) if upto(e.candle_time)),
            }

    def duplicate_fills(self) -> list[str]:
        """Client order ids that were filled more than once (an order executed twice)."""
        with session_scope(self.sessions) as s:
            ids = s.scalars(select(Order.client_order_id).join(Fill, Fill.order_id == Order.id)).all()
        return sorted({i for i in ids if ids.count(i) > 1})


def trade_candles(trades: pd.DataFrame, timeframe: Timeframe) -> pd.DataFrame:
    """Candles of ``trades`` (the synthesised frame the replay's tape was built from) by a pandas
    group-by that shares no code with the replay (neither its ``Tape`` nor its loader nor
    ``tape_frame``), indexed by bucket open time (ms); trades in OKX order (time, then trade id)."""
    frame = trades.sort_values(["ts_ms", "trade_id"], kind="stable")
    frame = frame.assign(bucket=frame["ts_ms"] // timeframe.ms * timeframe.ms, quote=frame["price"] * frame["size"])
    return frame.groupby("bucket").agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"), close=("price", "last"),
        volume=("size", "sum"), quote_volume=("quote", "sum"))


def assert_candles_are_the_tapes(run: PlatformRun, end_ms: int) -> None:
    """Every stored candle up to ``end_ms`` equals an independent aggregation of the synthesised
    trades (:func:`trade_candles`): no candle lost, none doubled. 1m from the first stored minute;
    higher timeframes from the first live minute (the history was stored as 1m only). Trade counts
    are not compared: minutes backfilled over REST have none (OKX gives none)."""
    from config.domain import DEFAULT_TIMEFRAMES
    from database.repositories.market import get_candles
    from tests.data.builders import assert_candles_match

    for tf in DEFAULT_TIMEFRAMES:
        start = run.market.history[0].open_time_ms if tf is Timeframe.M1 else run.market.live_start_ms
        end = tf.floor(end_ms)  # buckets complete by end_ms
        if end <= start:
            continue
        with session_scope(run.sessions) as session:
            stored = get_candles(session, "okx", SYMBOL, tf, start, end)
        expected = trade_candles(run.market.trades, tf)
        expected = expected[(expected.index >= start) & (expected.index < end)]
        assert_candles_match(stored, expected, counts=False)


def assert_same_bot_state(expected: dict[str, list[tuple[Any, ...]]], got: dict[str, list[tuple[Any, ...]]]) -> None:
    """Table by table; a failure names the candles a bot never processed and the first differing row."""
    processed = {(bot, ts) for bot, ts, *_ in got["equity"]}
    skipped = sorted(f"{bot} {ts:%H:%M}" for bot, ts, *_ in expected["equity"] if (bot, ts) not in processed)
    assert not skipped, f"candles the bots never processed: {skipped[:10]}"
    for table, rows in expected.items():
        if got[table] != rows:
            first = next((i for i, (a, b) in enumerate(zip(rows, got[table], strict=False)) if a != b),
                         min(len(rows), len(got[table])))
            raise AssertionError(f"{table} differ from row {first} ({len(rows)} expected, {len(got[table])} stored):\n"
                                 f"expected {rows[first:first + 2]}\nstored   {got[table][first:first + 2]}")
