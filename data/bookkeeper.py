"""The order-book shell: a venue's book stream (:mod:`data.binance.depth`) -> the bus and the database.

The stream calls :meth:`BookKeeper.on_book` after every applied update; that only marks the market dirty.
Every ``publish_interval_s`` the best ``depth`` levels of each dirty book go out on ``books.<exchange>.<symbol>``
(a :class:`~config.domain.BookTop`); every ``snapshot_interval_s`` (0: never) the latest top of each market
that changed is stored in ``book_snapshots``. While the database is down the snapshots wait (up to
``MAX_PENDING``, then the oldest are dropped and counted) and are written when it is back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import Engine

from config.domain import BookTop
from data import topics
from data.books import Book, book_top
from data.bus import Bus
from data.messages import book_to_message
from data.pending import PendingWrites
from data.streams import with_helpers
from database.repositories.books import add_book_snapshots

log = logging.getLogger(__name__)

MAX_PENDING = 10_000


class BookKeeper:
    def __init__(self, exchange: str, bus: Bus, db: Engine, *, depth: int = 20,
                 publish_interval_s: float = 0.25, snapshot_interval_s: float = 10.0) -> None:
        self.exchange = exchange
        self.bus = bus
        self.depth = depth
        self.publish_interval_s = publish_interval_s
        self.snapshot_interval_s = snapshot_interval_s
        self._dirty: dict[str, tuple[Book, int, int | None]] = {}
        self.latest: dict[str, BookTop] = {}
        self._unstored: set[str] = set()
        self.pending: PendingWrites[BookTop] = PendingWrites(db, add_book_snapshots, "book snapshots",
                                                              MAX_PENDING)
        self.published = 0

    def on_book(self, symbol: str, book: Book, event_ms: int, update_id: int | None) -> None:
        self._dirty[symbol] = (book, event_ms, update_id)

    async def run(self, stop: asyncio.Event) -> None:
        loops = [self._publish_loop(stop), *([self._store_loop(stop)] if self.snapshot_interval_s > 0 else [])]
        try:
            await with_helpers(stop.wait(), *loops)
        finally:
            self.publish_now()
            await self._flush()

    def publish_now(self) -> list[BookTop]:
        """Take the top of every changed book (kept in ``latest``, to be stored); returns them for publishing."""
        tops = []
        for symbol, (book, event_ms, update_id) in self._dirty.items():
            if book.best_bid is None and book.best_ask is None:
                continue  # emptied by a gap: the resync's snapshot comes next
            top = book_top(self.exchange, symbol, event_ms, book, self.depth, update_id)
            self.latest[symbol] = top
            self._unstored.add(symbol)
            tops.append(top)
        self._dirty.clear()
        return tops

    async def _publish_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.publish_interval_s)
            for top in self.publish_now():
                try:
                    await self.bus.publish(topics.books(self.exchange, top.symbol), book_to_message(top))
                    self.published += 1
                except Exception as exc:  # noqa: BLE001 - a bus outage: the next top replaces this one
                    log.debug("books: publish failed", extra={"error": str(exc)[:200]})

    async def _store_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.snapshot_interval_s)
            await self._flush()

    async def _flush(self) -> None:
        self.pending.add([self.latest[s] for s in sorted(self._unstored)])
        self._unstored.clear()
        await self.pending.flush()

    @property
    def stored(self) -> int:
        return self.pending.stored

    def health(self) -> dict[str, Any]:
        p = self.pending
        return {"published": self.published, "snapshots_stored": p.stored, "snapshots_pending": len(p.items),
                "snapshots_dropped": p.dropped, "db_ok": p.db_ok}
