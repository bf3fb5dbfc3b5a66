"""Real outages of the real services under ``python main.py`` trading a replay: a private PostgreSQL
cluster stopped (``pg_ctl stop -m fast``) for 20 s and started again, and a private redis-server
killed and restarted. In both, no candle is lost and the bots end exactly where an uninterrupted run
ends."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from config.domain import Timeframe
from data import messages
from data.writer import StorageWriter
from database.engine import make_engine, session_scope
from database.migrate import upgrade
from database.models import SystemEvent
from database.repositories.market import latest_candle_time_ms
from tests.conftest import REDIS_URL
from tests.reliability.conftest import END_MINUTE, Reference
from tests.reliability.harness import SYMBOL, LoopThread, PostgresProcess, RedisProcess, wait_until
from tests.reliability.platform import (
    SIGTERM_BOUND_S,
    PlatformRun,
    assert_candles_are_the_tapes,
    assert_same_bot_state,
)
from tests.reliability.test_database_crash import candle, trades, until

PG_OUTAGE_S = 20.0


class HealthListener:
    """Collects the health reports published on the bus (``health.*``) from a thread."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.reports: list[tuple[float, str, str, dict[str, Any]]] = []  # (monotonic, component, status, data)
        self._client = redis.Redis.from_url(redis_url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe(f"{prefix}health.*")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._pubsub.get_message(timeout=0.5)
            if item and item["type"] == "pmessage":
                body = messages.loads(item["data"])
                self.reports.append((time.monotonic(), str(body.get("component")), str(body.get("status")), body))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pubsub.close()
        self._client.close()


def latest_minute(run: PlatformRun) -> int:
    with session_scope(run.sessions) as session:
        return latest_candle_time_ms(session, "okx", SYMBOL, Timeframe.M1) or 0


@pytest.fixture
def private_postgres() -> Iterator[PostgresProcess]:
    """A private PostgreSQL cluster on a free port, the only one a test may stop (never the shared one)."""
    with PostgresProcess(fsync="off") as server:  # a stop checkpoints; fsync adds nothing tested here
        yield server


def test_postgresql_down_for_20_s_mid_replay_loses_no_candle_shows_in_health_and_bots_end_unchanged(
        tmp_path: Path, loop_thread: LoopThread, reference: Reference, private_postgres: PostgresProcess) -> None:
    market = reference.market
    server = private_postgres
    run = PlatformRun(tmp_path, "pg_outage", market, loop_thread, speed=600, redis_url=REDIS_URL,
                      database_url=server.url)
    listener = HealthListener(REDIS_URL, run.prefix)

    def writer_reports(status: str, after: float, before: float = float("inf")) -> list[dict[str, Any]]:
        return [r[3] for r in list(listener.reports) if r[1] == "writer" and r[2] == status and after < r[0] < before]

    try:
        run.start()
        run.wait_processed(market.minute(20), 60)
        stored_before = latest_minute(run)
        # The real server goes away: ``pg_ctl stop -m fast`` ends every connection and the port refuses.
        server.stop()
        stopped_at = time.monotonic()
        time.sleep(PG_OUTAGE_S)
        served_during = loop_thread.call(lambda: run.server.market_ms(SYMBOL))  # type: ignore[union-attr]
        server.start()
        started_at = time.monotonic()
        # The bots catch up within seconds; the health reports come every few: wait for the writer's
        # first report after the restart to say ``ok`` (before stopping, when the last says ``stopped``).
        wait_until(lambda: bool(writer_reports("ok", started_at)), 30,
                   "a writer health report saying ok after PostgreSQL came back", run.death)
        run.wait_processed(market.minute(END_MINUTE), 120)
        code, seconds = run.terminate()
        assert (code, seconds < SIGTERM_BOUND_S) == (0, True), run.log_tail()
        # Collection went on: the replay moved far beyond what was stored when the database went away,
        # and everything up to the end is stored now.
        assert served_during > stored_before + 60 * 60_000
        assert_candles_are_the_tapes(run, market.minute(END_MINUTE))
        # Health showed the outage while it lasted (on the bus: the database was gone) …
        down = writer_reports("down", stopped_at, started_at)
        assert down and down[-1]["candle_backlog"] > 0 and down[-1]["outage_since_ms"], listener.reports[-5:]
        # … and once it said ok again, never down again (the outage was over).
        first_ok = min(r[0] for r in listener.reports if r[1] == "writer" and r[2] == "ok" and r[0] > started_at)
        assert not writer_reports("down", first_ok), writer_reports("down", first_ok)[:2]
        # The system events record it once the database is back.
        with session_scope(run.sessions) as session:
            events = [(e.component, e.level, e.message) for e in session.scalars(
                select(SystemEvent).where(SystemEvent.component == "writer").order_by(SystemEvent.id))]
        assert [level for _, level, _ in events] == ["WARNING", "INFO"], events
        state = run.bot_state(reference.end_ms)
    finally:
        listener.close()
        run.close()
    assert_same_bot_state(reference.state, state)


def test_when_postgresql_returns_a_writer_loop_asleep_in_its_back_off_resumes_at_once_and_health_is_ok(
        private_postgres: PostgresProcess) -> None:
    """The trade loop fails through an outage into a long back-off; once the database is back, the
    first successful write (a candle) cuts that back-off short: the buffered trades are written and
    the writer is ``ok`` again without waiting out the back-off (before the fix its stale failure
    count kept it ``down`` for up to ``retry_cap``)."""
    server = private_postgres
    upgrade(server.url)
    back_off_s = 10.0  # the trade loop's sleep after its 2nd failure in a row (retry_base * 2**2)
    bound_s = back_off_s / 2  # a liveness bound, not a speed figure: the fix resumes within one flush interval

    async def main() -> None:
        engine = make_engine(server.url)
        writer = StorageWriter(engine, flush_interval=0.05, retry_base=back_off_s / 4, retry_cap=60.0)
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        writer.add_trades(SYMBOL, trades(0, 10))
        await until(lambda: writer.stats.trades_written == 10, "the first trades written")
        await asyncio.to_thread(server.stop)
        writer.add_trades(SYMBOL, trades(10, 10))
        # Failures at 0 s and 5 s (now down): the next retry would come 10 s after the second.
        await until(lambda: writer._failures_in_row["trades"] == 2, "two trade failures in a row", 30)
        assert not writer.stats.db_ok
        await asyncio.to_thread(server.start)
        writer.add_candles([candle(0)])
        written_at = time.monotonic()
        await until(lambda: writer.stats.candles_written == 1, "the candle written", bound_s)
        await until(lambda: writer.stats.db_ok and writer.trade_backlog == 0, "the trades written and the writer ok",
                    bound_s - (time.monotonic() - written_at))
        assert writer.stats.trades_written == 20
        stop.set()
        await task
        engine.dispose()

    asyncio.run(asyncio.wait_for(main(), 90))


def test_a_redis_restart_mid_replay_is_survived_by_publishers_subscribers_and_bots_without_duplicate_fills(
        tmp_path: Path, loop_thread: LoopThread, reference: Reference) -> None:
    market = reference.market
    server = RedisProcess(tmp_path)
    server.start()
    run = PlatformRun(tmp_path, "redis_restart", market, loop_thread, speed=1200, redis_url=server.url)
    try:
        run.start()
        run.wait_processed(market.minute(40), 60)
        server.kill()
        stored_at_kill = latest_minute(run)
        time.sleep(3.0)
        assert latest_minute(run) > stored_at_kill  # collection goes on without Redis
        server.start()  # same port, empty: every subscription has to be made again
        # Publishers reconnect: a fresh subscriber on the restarted server receives closed candles.
        client = redis.Redis(port=server.port)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.psubscribe(f"{run.prefix}candles.okx.{SYMBOL}.1m")

        def candle_received() -> bool:
            message = pubsub.get_message(timeout=0.2)
            return message is not None and message["type"] == "pmessage"
        wait_until(candle_received, 20, "a closed candle published on the restarted Redis", run.death)
        pubsub.close()
        client.close()
        # Subscribers reconnect: the bots only move on candles that reach them over the bus.
        run.wait_processed(market.minute(END_MINUTE), 90)
        wait_until(lambda: ((run.health("bus") or ("", {}))[1].get("reconnects", 0) >= 1), 15,
                   "the collector's bus health to count the reconnect", run.death)
        code, seconds = run.terminate()
        assert (code, seconds < SIGTERM_BOUND_S) == (0, True), run.log_tail()
        assert_candles_are_the_tapes(run, market.minute(END_MINUTE))
        assert run.duplicate_fills() == []
        state = run.bot_state(reference.end_ms)
    finally:
        run.close()
        server.close()
    assert_same_bot_state(reference.state, state)
