"""The platform pieces the browser tests need, on one event loop in a background thread: the
dashboard (``serve_dashboard``), the bot runtime (``run_bots``), optionally the market replay
server with the real collector in front of it, and a candle feeder that writes candles to the
database and publishes them on the real Redis bus, as the collector does."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot_manager.runtime import run_bots
from config.domain import Candle
from config.settings import Settings
from dashboard.server import serve_dashboard
from data import topics
from data.bus import RedisBus
from data.messages import candle_to_message
from data.replay.server import ReplayServer
from data.service import DEMO_HISTORY_MS, demo_tapes, run_market_data
from database.engine import session_scope
from database.repositories.market import upsert_candles


class Platform:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], redis_url: str, prefix: str, *,
                 bots: bool = True, replay_speed: float | None = None) -> None:
        """``replay_speed``: also serve the bundled demo replay of BTC-USDT at that speed and run the
        collector on it."""
        self.settings, self.sessions = settings, sessions
        self._redis = (redis_url, prefix)
        self._bots = bots
        self._replay_speed = replay_speed
        self.replay: ReplayServer | None = None
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-platform", daemon=True)
        self._stop: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.bus: RedisBus | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> str:
        self._thread.start()
        ready: Future[str] = Future()
        self.call(self._start(ready)).result(timeout)
        self.url = ready.result(timeout)
        return self.url

    async def _start(self, ready: Future[str]) -> None:
        self._stop = asyncio.Event()
        self.bus = RedisBus(self._redis[0], prefix=self._redis[1])
        self._tasks.append(asyncio.create_task(serve_dashboard(
            self.settings, self.bus, self._stop, port=0, on_listening=ready.set_result)))
        if self._bots:
            self._tasks.append(asyncio.create_task(run_bots(self.settings, self.bus, self._stop, poll_interval=0.5)))
        if self._replay_speed is not None:
            tapes = await asyncio.to_thread(demo_tapes, ["BTC-USDT"])
            self.replay = ReplayServer(tapes, speed=self._replay_speed, loop=True, port=0, history_ms=DEMO_HISTORY_MS)
            await self.replay.start()
            self._tasks.append(asyncio.create_task(run_market_data(
                self.settings, self.bus, self._stop, symbols=["BTC-USDT"], ws_url=self.replay.ws_url,
                rest_url=self.replay.rest_url)))

    def call(self, coroutine: Coroutine[Any, Any, Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def publish_update(self, candle: Candle, timeout: float = 10.0) -> None:
        """Publish a forming-candle update (``candle_updates`` channel)."""
        assert self.bus is not None
        message = candle_to_message(replace(candle, closed=False))
        channel = topics.candle_updates(candle.exchange, candle.symbol, candle.timeframe)
        self.call(self.bus.publish(channel, message)).result(timeout)

    def feed(self, candles: Sequence[Candle], interval: float) -> Future[Any]:
        """Store each closed candle, then publish it (``candles`` channel), ``interval`` seconds apart."""
        return self.call(self._feed(list(candles), interval))

    async def _feed(self, candles: list[Candle], interval: float) -> None:
        assert self.bus is not None
        for candle in candles:
            await asyncio.to_thread(self._store, candle)
            await self.bus.publish(topics.candles(candle.exchange, candle.symbol, candle.timeframe),
                                   candle_to_message(candle))
            await asyncio.sleep(interval)

    def _store(self, candle: Candle) -> None:
        with session_scope(self.sessions) as session:
            upsert_candles(session, [candle])

    def stop(self, timeout: float = 30.0) -> None:
        async def shutdown() -> None:
            assert self._stop is not None
            self._stop.set()
            await asyncio.wait(self._tasks, timeout=timeout)
            if self.replay is not None:
                await self.replay.close()
            if self.bus is not None:
                await self.bus.close()

        try:
            self.call(shutdown()).result(timeout + 5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
