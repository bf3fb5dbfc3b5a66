"""The message bus: Redis pub/sub in production, an in-process bus on the embedded default.

Both implement :class:`Bus`. Messages are JSON objects; channel names come from
:mod:`data.topics`. Subscriptions take glob patterns (``candles.okx.*.1m``).

Outages: :meth:`RedisBus.publish` never raises. While Redis is down, messages wait in a bounded
backlog (oldest dropped first, counted) and are sent, in order, when the connection returns;
subscriptions re-subscribe by themselves. Consumers that must not miss anything (bots) also
catch up from the database, so the bus is a fast path, not the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from data import messages

log = logging.getLogger(__name__)

Message = tuple[str, dict[str, Any]]


@dataclass
class BusStats:
    published: int = 0
    delivered: int = 0
    dropped: int = 0
    backlog: int = 0
    connected: bool = True
    reconnects: int = 0
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[Message]: ...
    async def get(self, timeout: float | None = None) -> Message | None: ...
    async def close(self) -> None: ...


class Bus(Protocol):
    stats: BusStats

    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...
    async def subscribe(self, *patterns: str) -> Subscription: ...
    async def close(self) -> None: ...


class _Queued:
    """What every subscription shares: an asyncio queue read by ``get`` or ``async for``."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0
        self.closed = False

    def _put(self, item: Message) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1

    async def get(self, timeout: float | None = None) -> Message | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while not self.closed:
            yield await self.queue.get()


class _QueueSubscription(_Queued):
    """A subscription of the in-process bus, fed from any thread."""

    def __init__(self, patterns: tuple[str, ...], maxsize: int, on_close: Any) -> None:
        super().__init__(maxsize)
        self.patterns = patterns
        self.loop = asyncio.get_running_loop()
        self._on_close = on_close

    def matches(self, channel: str) -> bool:
        return any(fnmatch.fnmatchcase(channel, p) for p in self.patterns)

    def offer(self, item: Message) -> None:
        if self.closed:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._put(item)
        else:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self.loop.call_soon_threadsafe(self._put, item)

    async def close(self) -> None:
        self.closed = True
        self._on_close(self)


class InProcessBus:
    """Same interface as :class:`RedisBus`, delivered inside one process (thread-safe)."""

    def __init__(self, queue_size: int = 100_000) -> None:
        self.stats = BusStats()
        self._subs: list[_QueueSubscription] = []
        self._lock = threading.Lock()
        self._queue_size = queue_size

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        self.publish_nowait(channel, message)

    def publish_nowait(self, channel: str, message: dict[str, Any]) -> None:
        """Publish from synchronous code (any thread)."""
        self.stats.published += 1
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            if sub.matches(channel):
                sub.offer((channel, message))
                self.stats.delivered += 1

    async def subscribe(self, *patterns: str) -> _QueueSubscription:
        sub = _QueueSubscription(patterns, self._queue_size, self._remove)
        with self._lock:
            self._subs.append(sub)
        return sub

    def _remove(self, sub: _QueueSubscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    async def close(self) -> None:
        with self._lock:
            subs, self._subs = self._subs, []
        for sub in subs:
            sub.closed = True


class RedisBus:
    """Redis pub/sub with a bounded publish backlog and self-healing subscriptions."""

    def __init__(self, url: str, prefix: str = "", backlog_size: int = 100_000,
                 retry_delay: float = 0.5) -> None:
        import redis.asyncio as aioredis

        self._url = url
        self._prefix = prefix
        self._client = aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=2,
                                         health_check_interval=10)
        self._backlog: deque[tuple[str, bytes]] = deque(maxlen=backlog_size)
        self._retry_delay = retry_delay
        self._lock = asyncio.Lock()
        self._subs: list[_RedisSubscription] = []
        self.stats = BusStats()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        payload = messages.dumps(message)
        async with self._lock:
            if self._backlog and not await self._drain():
                self._enqueue(channel, payload)
                return
            try:
                await self._client.publish(self._prefix + channel, payload)
                self.stats.published += 1
                self._set_connected(True)
            except Exception as exc:  # noqa: BLE001 - any Redis/socket failure is an outage
                self._set_connected(False, exc)
                self._enqueue(channel, payload)

    def _enqueue(self, channel: str, payload: bytes) -> None:
        if len(self._backlog) == self._backlog.maxlen:
            self.stats.dropped += 1
        self._backlog.append((channel, payload))
        self.stats.backlog = len(self._backlog)

    async def _drain(self) -> bool:
        """Send the backlog in order; False if Redis is still unreachable."""
        while self._backlog:
            channel, payload = self._backlog[0]
            try:
                await self._client.publish(self._prefix + channel, payload)
            except Exception as exc:  # noqa: BLE001
                self._set_connected(False, exc)
                return False
            self._backlog.popleft()
            self.stats.published += 1
        self.stats.backlog = 0
        self._set_connected(True)
        return True

    async def flush(self, timeout: float = 5.0) -> bool:
        """Try to send the backlog until ``timeout``; True when it is empty."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            async with self._lock:
                if await self._drain():
                    return True
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(self._retry_delay)

    def _set_connected(self, ok: bool, exc: Exception | None = None) -> None:
        if ok and not self.stats.connected:
            self.stats.reconnects += 1
            log.info("redis bus: connection restored, backlog sent")
        if not ok and self.stats.connected:
            log.warning("redis bus: publish failed (%s); buffering", exc)
        self.stats.connected = ok
        if exc is not None:
            self.stats.last_error = str(exc)

    async def subscribe(self, *patterns: str) -> _RedisSubscription:
        sub = _RedisSubscription(self, patterns)
        await sub.start()
        self._subs.append(sub)
        return sub

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except Exception:  # noqa: BLE001
            return False

    async def close(self) -> None:
        for sub in list(self._subs):
            await sub.close()
        with contextlib.suppress(Exception):
            await self.flush(timeout=1.0)
        with contextlib.suppress(Exception):
            await self._client.aclose()


class _RedisSubscription(_Queued):
    def __init__(self, bus: RedisBus, patterns: tuple[str, ...], maxsize: int = 100_000) -> None:
        super().__init__(maxsize)
        self._bus = bus
        self._patterns = tuple(bus._prefix + p for p in patterns)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"redis-sub {self._patterns}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout=5)

    async def _run(self) -> None:
        prefix_len = len(self._bus._prefix)
        while not self.closed:
            pubsub = self._bus._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(*self._patterns)
                self._ready.set()
                while not self.closed:
                    item = await pubsub.get_message(timeout=1.0)
                    if item is None or item.get("type") != "pmessage":
                        continue
                    channel = item["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    try:
                        payload = messages.loads(item["data"])
                    except ValueError:
                        log.warning("redis bus: dropped a non-JSON message on %s", channel)
                        continue
                    self._put((channel[prefix_len:], payload))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect on any failure
                if not self.closed:
                    self._bus.stats.reconnects += 1
                    log.warning("redis bus: subscription lost (%s); re-subscribing", exc)
                    await asyncio.sleep(self._bus._retry_delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def close(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self in self._bus._subs:
            self._bus._subs.remove(self)


def make_bus(redis_url: str | None, prefix: str = "") -> Bus:
    """Redis when a URL is configured, otherwise the in-process bus."""
    if redis_url:
        return RedisBus(redis_url, prefix=prefix)
    return InProcessBus()
