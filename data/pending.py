"""Rows waiting for the database, written in batches (the order-book and derivatives shells use it).

While the database is down the rows wait, up to ``max_pending``; past that the oldest are dropped and counted.
The first failure of an outage is logged; ``db_ok`` says whether the last write went through."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from database.engine import make_session_factory, session_scope

log = logging.getLogger(__name__)

T = TypeVar("T")


class PendingWrites(Generic[T]):
    def __init__(self, db: Engine, write: Callable[[Session, Sequence[T]], int], what: str,
                 max_pending: int = 10_000) -> None:
        self._factory = make_session_factory(db)
        self._write = write
        self.what = what
        self.max_pending = max_pending
        self.items: list[T] = []
        self.stored = 0
        self.dropped = 0
        self.db_ok = True
        self._inflight: asyncio.Future[None] | None = None
        self._trimmed = 0  # rows dropped from the front so far (a write in flight must not delete newer ones)

    def add(self, items: Sequence[T]) -> None:
        self.items += items
        excess = len(self.items) - self.max_pending
        if excess > 0:
            self.dropped += excess
            self._trimmed += excess
            del self.items[:excess]

    async def flush(self) -> None:
        """Write what waits. A flush whose caller is cancelled still finishes (its thread is writing), and the
        next flush waits for it first, so no row is written twice."""
        if self._inflight is not None and not self._inflight.done():
            await asyncio.shield(self._inflight)
        if self.items:
            self._inflight = asyncio.ensure_future(self._write_pending())
            await asyncio.shield(self._inflight)

    async def _write_pending(self) -> None:
        batch = list(self.items)
        trimmed = self._trimmed

        def write() -> int:
            with session_scope(self._factory) as session:
                return self._write(session, batch)

        try:
            self.stored += await asyncio.to_thread(write)
            del self.items[:max(0, len(batch) - (self._trimmed - trimmed))]  # the front that was written
            self.db_ok = True
        except Exception as exc:  # noqa: BLE001 - the database may be down: keep them for the next flush
            if self.db_ok:
                log.warning(f"{self.what}: kept until the database is back", extra={"error": str(exc)[:200]})
            self.db_ok = False
