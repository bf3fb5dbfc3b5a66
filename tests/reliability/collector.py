"""The real collector (``data.collector.Collector``) in front of a replay server, both on the test's
loop thread, storing into a fresh PostgreSQL database: the exchange-side fault tests drive it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from config.domain import DEFAULT_TIMEFRAMES, Timeframe
from data.bus import InProcessBus
from data.collector import Collector, CollectorConfig
from data.replay.server import ReplayServer
from data.replay.tape import Tape
from database.engine import make_engine, make_session_factory, session_scope
from database.migrate import upgrade
from database.repositories.market import get_candles, latest_candle_time_ms
from tests.conftest import create_pg_database, drop_pg_database
from tests.data.builders import assert_candles_match, expected_candles
from tests.reliability.harness import SYMBOL, LoopThread

MINUTE = 60_000


class CollectorRun:
    """``server`` and ``collector`` live on ``loop``; call their methods through ``loop.call``."""

    def __init__(self, loop: LoopThread, tape: Tape, *, speed: float, history_ms: int = 0,
                 **config: Any) -> None:
        self.loop, self.tape = loop, tape
        self.url = create_pg_database("tcp_rel_collector")
        upgrade(self.url)
        self.engine = make_engine(self.url)
        self.sessions = make_session_factory(self.engine)
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        options: dict[str, Any] = {"tick_s": 0.1, "flush_interval_s": 0.05, "health_interval_s": 1.0,
                                   "ping_after_s": 1.0, "pong_timeout_s": 1.0, "repair_ready_delay_s": 0.2}
        options.update(config)

        async def start() -> tuple[ReplayServer, Collector]:
            server = await ReplayServer({SYMBOL: tape}, speed=speed, loop=True, history_ms=history_ms).start()
            collector = Collector(CollectorConfig(symbols=(SYMBOL,), ws_url=server.ws_url, rest_url=server.rest_url,
                                                  database_url=self.url, **options), InProcessBus())
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(collector.run(self._stop))
            return server, collector

        self.server, self.collector = loop.run(start())

    def latest_minute(self) -> int:
        with session_scope(self.sessions) as session:
            return latest_candle_time_ms(session, "okx", SYMBOL, Timeframe.M1) or 0

    def failed(self) -> str | None:
        task = self._task
        if task is not None and task.done():
            return f"the collector stopped: {task.exception() if not task.cancelled() else 'cancelled'}"
        return None

    def close(self) -> None:
        async def stop() -> None:
            if self._stop is not None:
                self._stop.set()
            if self._task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._task, 20)
            await self.server.close()
        try:
            self.loop.run(stop(), 40)
        finally:
            self.engine.dispose()
            drop_pg_database(self.url)

    def assert_candles_are_the_tapes(self, end_ms: int) -> None:
        """Stored candles of every timeframe, for the buckets complete by ``end_ms``, equal an independent
        aggregation of the tape (trade counts aside: minutes backfilled over REST have none)."""
        first = self.tape.first_ts
        for tf in DEFAULT_TIMEFRAMES:
            end = tf.floor(end_ms)
            expected = expected_candles(self.tape, tf)
            expected = expected[expected.index < end]
            with session_scope(self.sessions) as session:
                stored = get_candles(session, "okx", SYMBOL, tf, tf.floor(first), end)
            assert_candles_match(stored, expected, counts=False)
