"""Real outages of the real services under ``python main.py`` trading a replay: PostgreSQL cut for
20 s through a loopback proxy, and a private redis-server killed and restarted. In both, no candle
is lost and the bots end exactly where an uninterrupted run ends."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import select

from config.domain import Timeframe
from data import messages
from database.engine import session_scope
from database.models import SystemEvent
from database.repositories.market import latest_candle_time_ms
from tests.conftest import PG_ADMIN_URL, REDIS_URL
from tests.data.proxy import CuttableProxy
from tests.reliability.conftest import END_MINUTE, Reference
from tests.reliability.harness import SYMBOL, LoopThread, RedisProcess, wait_until
from tests.reliability.platform import (
    SIGTERM_BOUND_S,
    PlatformRun,
    assert_candles_are_the_tapes,
    assert_same_bot_state,
)

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


def test_postgresql_down_for_20_s_mid_replay_loses_no_candle_shows_in_health_and_bots_end_unchanged(
        tmp_path: Path, loop_thread: LoopThread, reference: Reference) -> None:
    market = reference.market
    netloc = PG_ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
    host, port = netloc.rsplit(":", 1)
    with CuttableProxy(host, int(port)) as proxy:
        run = PlatformRun(tmp_path, "pg_outage", market, loop_thread, speed=600, redis_url=REDIS_URL,
                          database_url_for=proxy.url_for)
        listener = HealthListener(REDIS_URL, run.prefix)
        try:
            run.start()
            run.wait_processed(market.minute(20), 60)
            stored_before = latest_minute(run)
            proxy.cut()
            cut_at = time.monotonic()
            time.sleep(PG_OUTAGE_S)
            served_during = loop_thread.call(lambda: run.server.market_ms(SYMBOL))  # type: ignore[union-attr]
            proxy.restore()
            restored_at = time.monotonic()
            run.wait_processed(market.minute(END_MINUTE), 120)
            code, seconds = run.terminate()
            assert (code, seconds < SIGTERM_BOUND_S) == (0, True), run.log_tail()
            # Collection went on: the replay moved far beyond what was stored when the database went away,
            # and everything up to the end is stored now.
            assert served_during > stored_before + 60 * 60_000
            assert_candles_are_the_tapes(run, market.minute(END_MINUTE))
            # Health showed the outage while it lasted (on the bus: the database was gone) …
            down = [r for r in listener.reports if r[1] == "writer" and r[2] == "down" and cut_at < r[0] < restored_at]
            assert down and down[-1][3]["candle_backlog"] > 0 and down[-1][3]["outage_since_ms"], listener.reports[-5:]
            assert any(r[1] == "writer" and r[2] == "ok" and r[0] > restored_at for r in listener.reports)
            # … and the system events record it once the database is back.
            with session_scope(run.sessions) as session:
                events = [(e.component, e.level, e.message) for e in session.scalars(
                    select(SystemEvent).where(SystemEvent.component == "writer").order_by(SystemEvent.id))]
            assert [level for _, level, _ in events] == ["WARNING", "INFO"], events
            state = run.bot_state(reference.end_ms)
        finally:
            listener.close()
            run.close()
    assert_same_bot_state(reference.state, state)


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
