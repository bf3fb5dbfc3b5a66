"""Binance order books, live: the ``<symbol>@depth@100ms`` streams (spot and USDⓈ-M) kept in sequence with
REST snapshots, as Binance documents the local book (:class:`data.books.DepthSync` holds the rules).

One connection per endpoint kind in use. Every update is applied to the symbol's book through its
``DepthSync``; while a book waits for a snapshot (at the start, after a reconnection, after a **gap**) one
REST ``depth`` request is made for it (retried with back-off), the buffered updates after the snapshot are
applied and the book is live again. A gap is counted (``gaps``) and so is every snapshot after the first
(``resyncs``). ``on_book(symbol, book, event_ms, last_update_id)`` is called after each applied update and
after a snapshot; it runs on the event loop and must not block (:class:`data.bookkeeper.BookKeeper` only
marks the book dirty).
Malformed frames are counted per kind and skipped, as on the trade streams.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from config.errors import MalformedMessageError, TcpDashboardError
from data.binance.frames import Kind, Reply, decode_depth_frame, market
from data.books import APPLIED, STALE, Book, DepthSync
from data.streams import ClientStats, Reconnect, close_on, frames, now_ms, with_helpers

if TYPE_CHECKING:
    from data.binance.rest import BinanceRest

log = logging.getLogger(__name__)

SNAPSHOT_RETRY_S = (0.5, 30.0)  # first and longest wait between failed snapshot requests


class BinanceBookStream:
    """Run with :meth:`run` until ``stop`` is set. ``urls`` maps each endpoint kind in use to its socket;
    ``rest`` fetches the snapshots (``snapshot_limit`` levels a side)."""

    venue = "binance"

    def __init__(self, urls: dict[Kind, str], rest: BinanceRest, symbols: Sequence[str],
                 on_book: Callable[[str, Book, int, int | None], None], *, snapshot_limit: int = 1000,
                 backoff_base: float = 0.5, backoff_cap: float = 30.0) -> None:
        if not symbols:
            raise ValueError("at least one symbol is needed")
        self.markets = {s: market(s) for s in dict.fromkeys(symbols)}
        missing = {m.kind for m in self.markets.values()} - set(urls)
        if missing:
            raise ValueError(f"no WebSocket URL for {', '.join(sorted(missing))} markets")
        self.urls = urls
        self.rest = rest
        self.on_book = on_book
        self.snapshot_limit = snapshot_limit
        self.syncs = {s: DepthSync(usdm=m.kind is Kind.USDM) for s, m in self.markets.items()}
        self.updates = dict.fromkeys(self.markets, 0)
        self.last_event_ms = dict.fromkeys(self.markets, 0)
        self.stats = ClientStats()
        self.reconnect = Reconnect(backoff_base, backoff_cap)
        self._fetching: dict[str, asyncio.Task[None]] = {}
        self._links: dict[Kind, ClientConnection | None] = {}

    def live(self, symbol: str) -> bool:
        """The book holds a snapshot and every update since (not waiting for a resync)."""
        return self.syncs[symbol].last_id is not None

    async def run(self, stop: asyncio.Event) -> None:
        kinds = sorted({m.kind for m in self.markets.values()})
        try:
            await asyncio.gather(*(self.reconnect.run(lambda kind=kind: self._session(kind, stop), stop,
                                                      ended=lambda kind=kind: self._ended(kind), stats=self.stats,
                                                      log=log, name=f"binance depth {self.urls[kind]}")
                                   for kind in kinds))
        finally:
            for task in list(self._fetching.values()):
                task.cancel()

    def _symbols(self, kind: Kind) -> list[str]:
        return [s for s, m in self.markets.items() if m.kind is kind]

    def _ended(self, kind: Kind) -> None:
        self._links[kind] = None
        self.stats.connected = any(ws is not None for ws in self._links.values())
        for symbol in self._symbols(kind):
            self.syncs[symbol].reset()

    async def _session(self, kind: Kind, stop: asyncio.Event) -> None:
        names = {self.markets[s].venue_symbol: s for s in self._symbols(kind)}
        async with connect(self.urls[kind], ping_interval=20, ping_timeout=20, open_timeout=10, close_timeout=2,
                           compression=None, max_size=2**24, max_queue=4096) as ws:
            self._links[kind] = ws
            self.stats.connects += 1
            self.stats.connected = True
            await ws.send(orjson.dumps({"method": "SUBSCRIBE", "id": 1,
                                        "params": [f"{v.lower()}@depth@100ms" for v in names]}).decode())
            await with_helpers(self._receive(ws, names), close_on(stop, ws))

    async def _receive(self, ws: ClientConnection, names: dict[str, str]) -> None:
        stats = self.stats
        async for raw in frames(ws, stats):
            try:
                decoded = decode_depth_frame(raw, names)
            except MalformedMessageError as exc:
                stats.malformed_frame(exc, log, "binance depth")
                continue
            if decoded is None:
                continue
            if isinstance(decoded, Reply):
                if not decoded.ok:
                    stats.error(str(decoded.code), decoded.msg, ",".join(names.values()))
                    log.warning("binance depth: subscription refused", extra={"error": decoded.msg[:300]})
                continue
            symbol, event, event_ms = decoded
            sync = self.syncs[symbol]
            outcome = sync.on_event(event)
            if outcome == APPLIED:
                self.updates[symbol] += 1
                self.last_event_ms[symbol] = event_ms
                self.on_book(symbol, sync.book, event_ms, sync.last_id)
            elif outcome != STALE:  # buffered (waiting for a snapshot) or a gap: fetch one
                if outcome == "gap":  # the first of a symbol is a warning; later ones are counted in health
                    log.log(logging.WARNING if sync.gaps == 1 else logging.INFO, "binance depth: sequence gap, "
                            "resyncing", extra={"symbol": symbol, "first_id": event.first_id, "gaps": sync.gaps})
                self._fetch(symbol)

    def _fetch(self, symbol: str) -> None:
        if symbol not in self._fetching:
            task = asyncio.create_task(self._snapshot(symbol), name=f"depth snapshot {symbol}")
            self._fetching[symbol] = task
            task.add_done_callback(lambda _t, s=symbol: self._fetching.pop(s, None))

    async def _snapshot(self, symbol: str) -> None:
        delay, cap = SNAPSHOT_RETRY_S
        while True:
            try:
                snap = await self.rest.depth_snapshot(symbol, self.snapshot_limit)
                break
            except (TcpDashboardError, MalformedMessageError) as exc:
                log.warning("binance depth: snapshot failed, retrying",
                            extra={"symbol": symbol, "error": str(exc)[:300], "delay_s": delay})
                await asyncio.sleep(delay)
                delay = min(cap, delay * 2)
        sync = self.syncs[symbol]
        sync.snapshot(snap.last_update_id, snap.bids, snap.asks)
        if sync.last_id is not None:
            self.on_book(symbol, sync.book, self.last_event_ms[symbol] or now_ms(), sync.last_id)

    def health(self, symbol: str) -> dict[str, Any]:
        sync = self.syncs[symbol]
        return {"live": self.live(symbol), "updates": self.updates[symbol], "gaps": sync.gaps,
                "resyncs": sync.resyncs, "last_update_id": sync.last_id,
                "last_event_ms": self.last_event_ms[symbol] or None}
