"""The live order-book cache of the spread page: the bus consumer (or, without a bus, a database poller of
``book_snapshots``) writes the newest top of each market; page callbacks read it from web threads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING

from config.domain import BookTop
from dashboard.live import copy_from_bus
from data import topics
from data.bus import Bus
from data.messages import book_from_message
from database.repositories.books import latest_book_snapshots

if TYPE_CHECKING:
    from dashboard.context import DashboardContext

log = logging.getLogger(__name__)


class LiveBookCache:
    """The newest :class:`BookTop` per ``(exchange, symbol)``, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tops: dict[tuple[str, str], BookTop] = {}
        self.received = 0
        self.rejected = 0

    def update(self, top: BookTop) -> None:
        with self._lock:
            old = self._tops.get((top.exchange, top.symbol))
            if old is None or top.ts_ms >= old.ts_ms:
                self._tops[(top.exchange, top.symbol)] = top
            self.received += 1

    def tops(self) -> list[BookTop]:
        with self._lock:
            return [self._tops[k] for k in sorted(self._tops)]


async def consume_books(bus: Bus, cache: LiveBookCache, stop: asyncio.Event) -> None:
    """Copy book tops from the bus (``books.*.*``) into ``cache`` until ``stop`` is set."""
    await copy_from_bus(bus, (topics.books("*", "*"),), lambda message: cache.update(book_from_message(message)),
                        cache, stop, "book")


async def poll_books(context: DashboardContext, stop: asyncio.Event, interval: float = 2.0) -> None:
    """Without a bus: the newest stored snapshot of each market (``BOOK_SNAPSHOT_S`` apart)."""
    def read() -> list[BookTop]:
        with context.session() as session:
            return latest_book_snapshots(session)

    while not stop.is_set():
        try:
            for top in await asyncio.to_thread(read):
                context.books.update(top)
        except Exception as exc:  # noqa: BLE001 - the database may be restarting; try again later
            log.warning("dashboard: polling book snapshots failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
