"""Storage writer: batched, idempotent writes of closed candles and raw trades (I/O shell).

Candles and trades have separate loops (and database connections), so a large trade batch never
delays a closed candle. A closed candle is published only after its commit, always: a consumer never
sees a candle on the bus that the database cannot return (while the database is down, closed candles
wait with it; forming candles still flow). Both buffers are bounded (oldest dropped first, counted);
everything the buffers hold is retried until written.

Commits don't wait for the disk by default (PostgreSQL ``synchronous_commit=off``: visible at once,
on disk within ~0.6 s), which takes a closed candle's round trip off the WAL flush. What that risks —
a PostgreSQL crash losing the last fraction of a second of commits — is closed by idempotence: the
writer keeps each written batch until the server's WAL flush position has passed it (a cheap probe,
every ``durability_poll`` seconds, on a connection of its own) and, after any failed write or probe
(a crashed server always breaks the connection), writes what it kept again (and publishes nothing
twice). On stop it waits (bounded) for its last commits to reach the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from config.domain import Candle, ms_to_datetime
from data.okx.frames import WireTrade
from database.engine import make_session_factory, session_scope
from database.repositories.market import (
    CANDLES_PER_STATEMENT,
    flush_wal,
    insert_trade_rows,
    prune_trades,
    relax_commit_durability,
    retention_cutoff,
    upsert_candles,
    wal_positions,
)
from database.timescale import uses_timescale

log = logging.getLogger(__name__)
T = TypeVar("T")

TRADE_BATCH = 50_000


def _db_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [SQLAlchemyError, sqlite3.Error, OSError]
    try:
        import psycopg2

        errors.append(psycopg2.Error)  # raised unwrapped by the COPY path
    except ImportError:  # pragma: no cover - psycopg2 is a dependency
        pass
    return tuple(errors)


DB_ERRORS = _db_errors()
DB_ERRORS_OR_TIMEOUT: tuple[type[BaseException], ...] = (*DB_ERRORS, TimeoutError)


@dataclass
class WriterStats:
    candles_written: int = 0
    trades_written: int = 0
    trades_received: int = 0
    candles_dropped: int = 0
    trades_dropped: int = 0
    db_ok: bool = True
    outage_since_ms: int | None = None
    last_error: str | None = None
    last_write_ms: int = 0
    pruned_trades: int = 0
    candles_rewritten: int = 0
    trades_rewritten: int = 0


@dataclass(slots=True)
class _Unflushed:
    """A written batch whose commit may not be on disk yet; ``lsn``: a WAL position at or past its
    commit record (None until probed)."""

    batch: list = field(default_factory=list)  # type: ignore[type-arg]
    lsn: int | None = None


class StorageWriter:
    """Buffer and write; run :meth:`run` until ``stop``, which flushes what is left (bounded by
    ``final_flush_timeout``)."""

    def __init__(self, engine: Engine, *, exchange: str = "okx", store_trades: bool = True,
                 flush_interval: float = 0.2, max_candles: int = 500_000, max_trades: int = 1_000_000,
                 trade_high_water: int = 50_000,
                 retry_base: float = 0.25, retry_cap: float = 5.0, trade_retention_days: int | None = None,
                 final_flush_timeout: float = 10.0, durable_commits: bool = False,
                 durability_poll: float = 0.2,
                 gil_switch_interval: float | None = 0.0005,
                 on_stored: Callable[[list[Candle]], None] | None = None,
                 on_event: Callable[[str, str, dict[str, object]], None] | None = None) -> None:
        self._factory = make_session_factory(engine)
        self._connections: dict[str, Connection] = {}
        # One thread per loop: few malloc arenas (memory), and each connection stays on its thread.
        # Only commits that don't wait for the disk can be lost by a server crash (SQLite's can't).
        self.tracks_unflushed = not durable_commits and engine.dialect.name == "postgresql"
        self._threads = {kind: ThreadPoolExecutor(1, thread_name_prefix=f"writer-{kind}")
                         for kind in ("candles", "trades", *(("wal",) if self.tracks_unflushed else ()))}
        self._engine = engine
        self.exchange = exchange
        self.store_trades = store_trades
        self.flush_interval = flush_interval
        self.max_candles = max_candles
        self.max_trades = max_trades
        self.trade_high_water = trade_high_water
        # Cleared while the database is up but behind by more than ``trade_high_water`` trades: the
        # stream then stops reading (TCP back-pressure) instead of growing the buffer. Never cleared
        # during an outage: collection goes on and the bounded buffer takes the trades.
        self.flow = asyncio.Event()
        self.flow.set()
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.trade_retention_days = trade_retention_days
        self.final_flush_timeout = final_flush_timeout
        self.durable_commits = durable_commits
        self.durability_poll = durability_poll
        self._written_candles: deque[_Unflushed] = deque()
        self._written_trades: deque[_Unflushed] = deque()
        self._rewrite_candles: list[Candle] = []
        self._rewrite_trades: list[tuple[str, Sequence[WireTrade]]] = []
        self.gil_switch_interval = gil_switch_interval
        self.on_stored = on_stored
        self.on_event = on_event
        self.stats = WriterStats()
        self._candles: deque[tuple[Candle, float]] = deque()  # (candle, queued at)
        self._trades: deque[tuple[str, Sequence[WireTrade]]] = deque()
        self._trade_count = 0
        self._candle_ready = asyncio.Event()
        # Failures in a row per kind of call ("candles", "trades", "wal"); reset by that kind's success.
        self._failures_in_row = {"candles": 0, "trades": 0, "wal": 0}
        # Set when another kind of call succeeds: cuts a loop's back-off short once the database
        # answers again, so a loop asleep in a long back-off doesn't keep its buffer (and its stale
        # failure count, which keeps the health ``down``) for up to ``retry_cap`` after the outage.
        self._wake = {"candles": asyncio.Event(), "trades": asyncio.Event()}
        self._first_failure_ms = 0
        self._epoch = 0  # bumped by every failure: a write begun before it may have been lost with it
        self._candle_lock = asyncio.Lock()
        self._trade_lock = asyncio.Lock()
        self._newest_trade_ms = 0

    # ------------------------------------------------------------------ producers (event loop)

    def add_candles(self, candles: Sequence[Candle]) -> None:
        now = time.monotonic()
        self._candles.extend((c, now) for c in candles)
        while len(self._candles) > self.max_candles:
            self._candles.popleft()
            self.stats.candles_dropped += 1
        self._candle_ready.set()

    def add_trades(self, symbol: str, trades: Sequence[WireTrade]) -> None:
        """Queue the trades of one push (converted to rows in the writer thread)."""
        self._trades.append((symbol, trades))
        self._trade_count += len(trades)
        self.stats.trades_received += len(trades)
        while self._trade_count > self.max_trades and len(self._trades) > 1:
            _, dropped = self._trades.popleft()
            self._trade_count -= len(dropped)
            self.stats.trades_dropped += len(dropped)
        if self._trade_count > self.trade_high_water and self.stats.db_ok:
            self.flow.clear()

    @property
    def candle_backlog(self) -> int:
        return len(self._candles)

    @property
    def trade_backlog(self) -> int:
        return self._trade_count

    def lag_ms(self) -> int:
        """Age of the oldest candle not yet written."""
        if not self._candles:
            return 0
        return int((time.monotonic() - self._candles[0][1]) * 1000)

    # ------------------------------------------------------------------ loops

    async def run(self, stop: asyncio.Event) -> None:
        # A writer thread back from the database needs the GIL to go on; while the event loop or the
        # other writer thread runs Python code it waits up to the interpreter's switch interval
        # (5 ms by default) per round trip. A shorter interval bounds what a closed candle waits
        # (the latency benchmark's p99); it is process-wide and restored when the writer stops.
        previous_interval = sys.getswitchinterval()
        if self.gil_switch_interval is not None and self.gil_switch_interval < previous_interval:
            sys.setswitchinterval(self.gil_switch_interval)
        loops = [asyncio.create_task(self._candle_loop(stop), name="writer candles")]
        if self.store_trades:
            loops.append(asyncio.create_task(self._trade_loop(stop), name="writer trades"))
        probe = asyncio.create_task(self._durability_loop(stop), name="writer wal") if self.tracks_unflushed else None
        try:
            await asyncio.gather(*loops)
            if probe is not None:
                await probe
                await self._wait_on_disk()
        finally:
            for task in [*loops, *([probe] if probe else [])]:
                task.cancel()
            loop = asyncio.get_running_loop()
            for kind, pool in self._threads.items():
                await loop.run_in_executor(pool, self._close_connection, kind)
                pool.shutdown(wait=False)
            sys.setswitchinterval(previous_interval)

    async def flush(self, timeout: float) -> bool:
        """Write everything buffered now; False if the database refused until ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._candles_pending or (self.store_trades and self._trades_pending):
            ok = await self._write_candles() if self._candles_pending else True
            ok = (await self._write_trades() if self.store_trades and self._trades_pending else True) and ok
            if not ok:
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(min(self.retry_base, max(deadline - time.monotonic(), 0)))
        return True

    @property
    def _candles_pending(self) -> bool:
        return bool(self._candles or self._rewrite_candles)

    @property
    def _trades_pending(self) -> bool:
        return bool(self._trades or self._rewrite_trades)

    async def _candle_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self._candles_pending:
                self._candle_ready.clear()
                waiter = asyncio.create_task(self._candle_ready.wait())
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            if not await self._write_candles():
                await self._sleep_backoff(stop, "candles")
        await self.flush(self.final_flush_timeout)

    async def _trade_loop(self, stop: asyncio.Event) -> None:
        last_prune = time.monotonic()  # first prune after an hour, when the newest trade time is known
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.flush_interval)
            except TimeoutError:
                pass
            if stop.is_set():
                break
            while self._trades_pending and not stop.is_set():
                if not await self._write_trades():
                    await self._sleep_backoff(stop, "trades")
                    break
            if self.trade_retention_days and time.monotonic() - last_prune > 3600:
                last_prune = time.monotonic()
                await self._prune()

    async def _sleep_backoff(self, stop: asyncio.Event, kind: str) -> None:
        """Back off after a failure of ``kind``, until the delay ends, ``stop`` is set, or another
        kind of call succeeds (the database is back: retry now)."""
        delay = min(self.retry_cap, self.retry_base * 2 ** min(self._failures_in_row[kind], 10))
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(self._wake[kind].wait())]
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # ------------------------------------------------------------------ writes

    async def _write_candles(self) -> bool:
        async with self._candle_lock:
            return await self._write_candles_locked()

    async def _write_candles_locked(self) -> bool:
        loop = asyncio.get_running_loop()
        if self._rewrite_candles:  # written before a failure, maybe lost with it: write again, don't publish
            again = list(self._rewrite_candles)
            epoch = self._epoch
            try:
                await loop.run_in_executor(self._threads["candles"], self._upsert, again)
            except DB_ERRORS as exc:
                self._failed(exc, "candles")
                return False
            del self._rewrite_candles[:len(again)]
            self.stats.candles_rewritten += len(again)
            self._remember(self._written_candles, self._rewrite_candles, again, epoch)
        batch = list(self._candles)
        candles = [c for c, _ in batch]
        epoch = self._epoch
        if candles:
            try:
                await loop.run_in_executor(self._threads["candles"], self._upsert, candles)
            except DB_ERRORS as exc:
                self._failed(exc, "candles")
                return False
        for entry in batch:
            if self._candles and self._candles[0] is entry:
                self._candles.popleft()
        self.stats.candles_written += len(candles)
        self._remember(self._written_candles, self._rewrite_candles, candles, epoch)
        self._succeeded("candles")
        if self.on_stored is not None and candles:
            self.on_stored(candles)
        return True

    def _remember(self, written: deque[_Unflushed], rewrite: list, batch: list,  # type: ignore[type-arg]
                  epoch: int) -> None:
        """Keep a batch just written until its commit is on disk (see the module docstring) — or, if a
        failure was seen while it was being written (the server may have crashed after its commit),
        queue it to be written again, after what that failure queued (the newest version wins)."""
        if not self.tracks_unflushed or not batch:
            return
        if epoch == self._epoch:
            written.append(_Unflushed(batch))
        else:
            rewrite.extend(batch)
            self._candle_ready.set()

    @property
    def unflushed(self) -> int:
        """Batches written but maybe not on disk yet."""
        return len(self._written_candles) + len(self._written_trades)

    async def _durability_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.durability_poll)
            except TimeoutError:
                pass
            if self.unflushed and not stop.is_set():
                await self._release_flushed()

    async def _wait_on_disk(self) -> None:
        """After the final flush: put the last commits on disk before the process ends (bounded by
        ``final_flush_timeout``)."""
        if not self.unflushed:
            return
        try:
            await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(
                self._threads["wal"], self._run, "wal", flush_wal), self.final_flush_timeout)
        except DB_ERRORS_OR_TIMEOUT as exc:
            log.warning("writer: the last commits may not be on disk",
                        extra={"error": str(exc).splitlines()[0][:300] if str(exc) else "timeout",
                               "batches": self.unflushed})
            return
        self._written_candles.clear()  # all committed before the flush
        self._written_trades.clear()

    async def _release_flushed(self) -> bool:
        """Probe the WAL positions; forget the batches now on disk. False if the probe failed."""
        probed = [entry for queue in (self._written_candles, self._written_trades) for entry in queue
                  if entry.lsn is None]  # all committed before the probe starts
        try:
            inserted, flushed = await asyncio.get_running_loop().run_in_executor(
                self._threads["wal"], lambda: self._run("wal", wal_positions, one_statement=True))
        except DB_ERRORS as exc:
            self._failed(exc, "wal")
            return False
        self._failures_in_row["wal"] = 0
        for entry in probed:
            entry.lsn = inserted
        for queue in (self._written_candles, self._written_trades):
            while queue and queue[0].lsn is not None and queue[0].lsn <= flushed:
                queue.popleft()
        return True

    def _connection(self, kind: str, autocommit: bool) -> Connection:
        """A long-lived connection per loop and mode (no pool checkout or pre-ping per write); dropped
        on error. With ``durable_commits=False`` its commits don't wait for the WAL flush."""
        key = f"{kind}/autocommit" if autocommit else kind
        conn = self._connections.get(key)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._engine.connect()
            if autocommit:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            if not self.durable_commits:
                relax_commit_durability(conn)
                conn.commit()
            self._connections[key] = conn
        return conn

    def _run(self, kind: str, write: Callable[[Connection], T], *, one_statement: bool = False) -> T:
        """Run ``write`` in a transaction — or, on PostgreSQL, when ``write`` is one statement (atomic by
        itself), in autocommit mode: one round trip instead of three (BEGIN, statement, COMMIT), which
        is what a closed candle's latency is made of."""
        autocommit = one_statement and self._engine.dialect.name == "postgresql"
        key = f"{kind}/autocommit" if autocommit else kind
        conn = self._connection(kind, autocommit)
        try:
            if autocommit:
                result = write(conn)
                conn.commit()  # ends SQLAlchemy's bookkeeping only: the statement committed itself
            else:
                with conn.begin():
                    result = write(conn)
        except BaseException:
            self._connections.pop(key, None)
            with contextlib.suppress(Exception):
                conn.invalidate()
                conn.close()
            raise
        return result

    def _close_connection(self, kind: str) -> None:
        for key in (kind, f"{kind}/autocommit"):
            conn = self._connections.pop(key, None)
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _upsert(self, candles: list[Candle]) -> None:
        self._run("candles", lambda conn: upsert_candles(conn, candles),
                  one_statement=len(candles) <= CANDLES_PER_STATEMENT)

    async def _write_trades(self) -> bool:
        async with self._trade_lock:
            return await self._write_trades_locked()

    async def _write_trades_locked(self) -> bool:
        if self._rewrite_trades:  # written before a failure, maybe lost with it: write again
            again = list(self._rewrite_trades)
            epoch = self._epoch
            try:
                await asyncio.get_running_loop().run_in_executor(self._threads["trades"], self._insert_trades, again)
            except DB_ERRORS as exc:
                self._failed(exc, "trades")
                return False
            del self._rewrite_trades[:len(again)]
            self.stats.trades_rewritten += sum(len(trades) for _, trades in again)
            self._remember(self._written_trades, self._rewrite_trades, again, epoch)
        batch: list[tuple[str, Sequence[WireTrade]]] = []
        rows = 0
        for item in self._trades:
            batch.append(item)
            rows += len(item[1])
            if rows >= TRADE_BATCH:
                break
        epoch = self._epoch
        try:
            if batch:
                await asyncio.get_running_loop().run_in_executor(self._threads["trades"], self._insert_trades, batch)
        except DB_ERRORS as exc:
            self._failed(exc, "trades")
            return False
        self._remember(self._written_trades, self._rewrite_trades, batch, epoch)
        for entry in batch:
            if self._trades and self._trades[0] is entry:
                self._trades.popleft()
                self._trade_count -= len(entry[1])
        self.stats.trades_written += rows
        self._succeeded("trades")
        if self._trade_count <= self.trade_high_water // 2:
            self.flow.set()
        return True

    def _insert_trades(self, batch: list[tuple[str, Sequence[WireTrade]]]) -> None:
        exchange = self.exchange
        rows = [(exchange, symbol, t.tradeId, t.ts, t.px, t.sz, t.side.value)
                for symbol, trades in batch for t in trades]
        self._run("trades", lambda conn: insert_trade_rows(conn, rows))
        self._newest_trade_ms = max(self._newest_trade_ms, max((r[3] for r in rows), default=0))

    async def _prune(self) -> None:
        days = self.trade_retention_days
        assert days is not None

        # Retention counts back from the newest trade written (= now when live; the replayed time in a replay).
        newest = ms_to_datetime(self._newest_trade_ms) if self._newest_trade_ms else datetime.now(UTC)

        def prune() -> int:
            with self._engine.connect() as probe:  # its own transaction: the probe may fail harmlessly
                if uses_timescale(probe):
                    return 0  # TimescaleDB's retention policy owns it
            with session_scope(self._factory) as session:
                return prune_trades(session, retention_cutoff(min(newest, datetime.now(UTC)), days))

        try:
            self.stats.pruned_trades += await asyncio.get_running_loop().run_in_executor(self._threads["trades"], prune)
        except DB_ERRORS as exc:
            self._failed(exc, "trades")

    def _failed(self, exc: BaseException, kind: str) -> None:
        self.flow.set()
        self._epoch += 1
        # The server may have crashed and taken the last commits with it: queue them again.
        for written, rewrite in ((self._written_candles, self._rewrite_candles),
                                 (self._written_trades, self._rewrite_trades)):
            for entry in written:
                rewrite.extend(entry.batch)
            written.clear()
        if self._rewrite_candles:
            self._candle_ready.set()
        self.stats.last_error = str(exc).splitlines()[0][:300]
        self._failures_in_row[kind] += 1
        if kind in self._wake:
            self._wake[kind].clear()  # only a success after this failure cuts its back-off short
        if self._failures_in_row[kind] == 1:
            # Maybe only a connection that died while idle (in an outage already over): the retry,
            # on a fresh connection, tells. Reported as an outage from the second failure in a row.
            if self.stats.db_ok and max(self._failures_in_row.values()) == 1:
                self._first_failure_ms = int(time.time() * 1000)
            log.info("writer: a database call failed; retrying on a fresh connection",
                     extra={"error": self.stats.last_error, "kind": kind})
            return
        if self.stats.db_ok:
            self.stats.db_ok = False
            self.stats.outage_since_ms = self._first_failure_ms
            log.warning("writer: database write failed; buffering and retrying",
                        extra={"error": self.stats.last_error})
            if self.on_event is not None:
                self.on_event("WARNING", "database unavailable: buffering candles and trades",
                              {"error": self.stats.last_error})

    def _succeeded(self, kind: str) -> None:
        self.stats.last_write_ms = int(time.time() * 1000)
        self._failures_in_row[kind] = 0
        for other, wake in self._wake.items():
            if other != kind and self._failures_in_row[other]:
                wake.set()
        if not self.stats.db_ok and max(self._failures_in_row.values()) < 2:
            down_ms = self.stats.last_write_ms - (self.stats.outage_since_ms or self.stats.last_write_ms)
            self.stats.db_ok = True
            self.stats.outage_since_ms = None
            log.info("writer: database back; buffer written", extra={"outage_ms": down_ms})
            if self.on_event is not None:
                self.on_event("INFO", "database available again; buffered data written", {"outage_ms": down_ms})
