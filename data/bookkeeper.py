"""The order-book shell: a venue's book stream (:mod:`data.binance.depth`) -> the bus and the database.

The stream calls :meth:`BookKeeper.on_book` after every applied update; that only marks the market dirty.
Every ``publish_interval_s`` the best ``depth`` levels of each dirty book go out on ``books.<exchange>.<symbol>``
(a :class:`~config.domain.BookTop`); every ``snapshot_interval_s`` (0: never) the latest top of each market
that changed is stored in ``book_snapshots``. While the database is down the snapshots wait (up to
``MAX_PENDING``, then the oldest are dropped and counted) and are written when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from config.domain import BookTop
from data import topics
from data.books import Book, book_top
from data.bus import Bus
from data.messages import book_to_message
from database.engine import make_session_factory, session_scope
from database.repositories.books import add_book_snapshots

log = logging.getLogger(__name__)

MAX_PENDING = 10_000


class BookKeeper:
    def __init__(self, exchange: str, symbols: Sequence[str], bus: Bus, db: Engine, *, depth: int = 20,
                 publish_interval_s: float = 0.25, snapshot_interval_s: float = 10.0) -> None:
        self.exchange = exchange
        self.symbols = tuple(symbols)
        self.bus = bus
        self.depth = depth
        self.publish_interval_s = publish_interval_s
        self.snapshot_interval_s = snapshot_interval_s
        self._factory = make_session_factory(db)
        self._dirty: dict[str, tuple[Book, int, int | None]] = {}
        self.latest: dict[str, BookTop] = {}
        self._unstored: set[str] = set()
        self._pending: list[BookTop] = []
        self.published = 0
        self.stored = 0
        self.dropped = 0
        self.db_ok = True

    def on_book(self, symbol: str, book: Book, event_ms: int, update_id: int | None) -> None:
        self._dirty[symbol] = (book, event_ms, update_id)

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self._publish_loop(stop), name="books publish")]
        if self.snapshot_interval_s > 0:
            tasks.append(asyncio.create_task(self._store_loop(stop), name="books store"))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.publish_now()
            await self._flush()

    def publish_now(self) -> list[BookTop]:
        """Take the top of every dirty book (and queue it for publishing); returns the tops taken."""
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
        self._pending += [self.latest[s] for s in sorted(self._unstored)]
        self._unstored.clear()
        if len(self._pending) > MAX_PENDING:
            self.dropped += len(self._pending) - MAX_PENDING
            del self._pending[:-MAX_PENDING]
        if not self._pending:
            return
        batch = list(self._pending)

        def write() -> int:
            with session_scope(self._factory) as session:
                return add_book_snapshots(session, batch)

        try:
            self.stored += await asyncio.to_thread(write)
            del self._pending[:len(batch)]
            self.db_ok = True
        except Exception as exc:  # noqa: BLE001 - the database may be down: keep them for the next flush
            if self.db_ok:
                log.warning("books: snapshots kept until the database is back", extra={"error": str(exc)[:200]})
            self.db_ok = False

    def health(self) -> dict[str, Any]:
        return {"published": self.published, "snapshots_stored": self.stored, "snapshots_pending": len(self._pending),
                "snapshots_dropped": self.dropped, "db_ok": self.db_ok}
