"""Publishes candles on the bus without ever blocking collection or storage (I/O shell).

Closed candles go out in the order they were handed over, on ``topics.candles(...)``. Forming
candles are coalesced per channel (only the newest waits) and go out on
``topics.candle_updates(...)``; the engine's clock tick already limits them to 4 per second per
channel. A Redis outage only delays publishing: :class:`~data.bus.RedisBus` keeps a backlog and
this task keeps flushing it until Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from config.domain import Candle
from data import topics
from data.bus import Bus
from data.messages import candle_to_message

log = logging.getLogger(__name__)


@dataclass
class PublisherStats:
    closed_published: int = 0
    updates_published: int = 0
    updates_coalesced: int = 0
    last_publish_ms: int = 0
    publish_errors: int = 0


class CandlePublisher:
    def __init__(self, bus: Bus, *, max_closed: int = 1_000_000) -> None:
        self.bus = bus
        self.stats = PublisherStats()
        self._closed: deque[Candle] = deque(maxlen=max_closed)
        self._updates: dict[str, Candle] = {}
        self._ready = asyncio.Event()

    def closed(self, candles: Sequence[Candle]) -> None:
        self._closed.extend(candles)
        self._ready.set()

    def updates(self, candles: Sequence[Candle]) -> None:
        for c in candles:
            channel = topics.candle_updates(c.exchange, c.symbol, c.timeframe)
            if channel in self._updates:
                self.stats.updates_coalesced += 1
            self._updates[channel] = c
        if candles:
            self._ready.set()

    @property
    def backlog(self) -> int:
        return len(self._closed) + len(self._updates) + int(getattr(self.bus.stats, "backlog", 0))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self._closed and not self._updates:
                self._ready.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready.wait(), 1.0)
                if getattr(self.bus.stats, "backlog", 0):
                    await self._flush_bus()
                continue
            await self._publish_pending()
        await self._publish_pending()
        await self._flush_bus()

    async def _publish_pending(self) -> None:
        while self._closed:
            c = self._closed.popleft()
            await self._publish(topics.candles(c.exchange, c.symbol, c.timeframe), c)
            self.stats.closed_published += 1
        updates, self._updates = self._updates, {}
        for channel, c in updates.items():
            await self._publish(channel, c)
            self.stats.updates_published += 1

    async def _publish(self, channel: str, candle: Candle) -> None:
        try:
            await self.bus.publish(channel, candle_to_message(candle))
            self.stats.last_publish_ms = int(time.time() * 1000)
        except Exception:  # noqa: BLE001 - the bus must never stop the collector
            self.stats.publish_errors += 1
            log.exception("publisher: bus.publish failed", extra={"channel": channel})

    async def _flush_bus(self) -> None:
        flush = getattr(self.bus, "flush", None)
        if flush is not None:
            with contextlib.suppress(Exception):
                await flush(timeout=0.5)
