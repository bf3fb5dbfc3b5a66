"""The platform pieces the browser tests need, on one event loop in a background thread: the
dashboard (``serve_dashboard``), the bot runtime (``run_bots``), optionally the market replay
server with the real collector in front of it, and a candle feeder that writes candles to the
database and publishes them on the real Redis bus, as the collector does."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from bot_manager.runtime import run_bots
from config.domain import Candle
from config.settings import Settings, load_settings
from dashboard.server import serve_dashboard
from data import topics
from data.bus import RedisBus
from data.messages import candle_to_message
from data.replay.server import ReplayServer
from data.service import DEMO_HISTORY_MS, binance_depth, binance_tapes, demo_tapes, run_market_data
from database.engine import make_engine, make_session_factory, session_scope
from database.migrate import upgrade
from database.repositories.market import upsert_candles


class Platform:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], redis_url: str, prefix: str, *,
                 bots: bool = True, replay_speed: float | None = None) -> None:
        """``replay_speed``: also serve the bundled demo replay of BTC-USDT at that speed and run the
        collector on it (with ``EXCHANGE=binance``: the real Binance tapes and books of ``SYMBOLS``)."""
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
        if self._replay_speed is not None and self.settings.exchange == "binance":
            # the real Binance spot + USDⓈ-M tapes and depth captures, with the collector keeping their books
            symbols = list(self.settings.symbols)
            tapes = await asyncio.to_thread(binance_tapes, symbols)
            depth = await asyncio.to_thread(binance_depth, symbols)
            self.replay = ReplayServer(tapes, speed=self._replay_speed, loop=True, port=0, protocol="binance",
                                       depth=depth)
            await self.replay.start()
            self._tasks.append(asyncio.create_task(run_market_data(
                self.settings, self.bus, self._stop, ws_url=self.replay.ws_url, rest_url=self.replay.rest_url,
                perp_ws_url=self.replay.usdm_ws_url, perp_rest_url=self.replay.rest_url)))
        elif self._replay_speed is not None:
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


def redis_client(url: str) -> redis.Redis:
    """A client of the test Redis; fails the test with a clear message when it is not reachable."""
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {url} ({exc})", pytrace=False)
    return client


@contextlib.contextmanager
def replay_platform(name: str, redis_url: str, bots_dir: Path, env: dict[str, str], *, replay_speed: float,
                    bots: bool = True) -> Iterator[Platform]:
    """A fresh migrated PostgreSQL database, a Redis prefix of its own and a started :class:`Platform` with the
    replay and the collector on it; everything is removed afterwards."""
    from tests.conftest import create_pg_database, drop_pg_database

    client = redis_client(redis_url)
    url = create_pg_database(name)
    upgrade(url)
    prefix = f"test:{uuid.uuid4().hex[:10]}:"
    settings = load_settings({"DATABASE_URL": url, "REDIS_URL": redis_url, "REDIS_PREFIX": prefix,
                              "BOTS_DIR": str(bots_dir), **env})
    engine = make_engine(url)
    running = Platform(settings, make_session_factory(engine), redis_url, prefix, bots=bots,
                       replay_speed=replay_speed)
    running.start()
    try:
        yield running
    finally:
        running.stop()
        engine.dispose()
        drop_pg_database(url)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()
