"""OKX order books, live: the ``books`` channel (a snapshot, then updates chained by ``seqId``/``prevSeqId`` and
checked by CRC32 ``checksum``: :class:`data.books.OkxBookSync`) or ``books5`` (the best 5 levels, each push a
whole book), on one connection of the public socket.

A **gap** (a broken chain or a checksum that does not match) is counted, the book is emptied and the symbol is
unsubscribed and subscribed again: OKX answers with a new snapshot (a resync). ``on_book(symbol, book, ts_ms,
seq_id)`` is called after every applied push, on the event loop; it must not block. The text ``ping`` keeps the
connection alive past OKX's 30 s idle cut; malformed frames are counted per kind and skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from config.errors import MalformedMessageError
from data.books import APPLIED, GAP, Book, OkxBookSync
from data.streams import ClientStats, Reconnect, close_on, frames, text_keepalive, with_helpers

log = logging.getLogger(__name__)

CHANNELS = ("books", "books5")


class OkxBookStream:
    venue = "okx"

    def __init__(self, url: str, symbols: Sequence[str], on_book: Callable[[str, Book, int, int | None], None], *,
                 channel: str = "books", ping_after: float = 20.0, backoff_base: float = 0.5) -> None:
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
        if not symbols:
            raise ValueError("at least one symbol is needed")
        self.url = url
        self.symbols = tuple(dict.fromkeys(symbols))
        self.on_book = on_book
        self.channel = channel
        self.ping_after = ping_after
        self.syncs = {s: OkxBookSync() for s in self.symbols}
        self.updates = dict.fromkeys(self.symbols, 0)
        self.last_event_ms = dict.fromkeys(self.symbols, 0)
        self.stats = ClientStats()
        self.reconnect = Reconnect(backoff_base)
        self._ws: ClientConnection | None = None

    def live(self, symbol: str) -> bool:
        return self.syncs[symbol].ready

    async def run(self, stop: asyncio.Event) -> None:
        await self.reconnect.run(lambda: self._session(stop), stop, ended=self._ended, stats=self.stats, log=log,
                                 name=f"okx {self.channel} {self.url}")

    def _ended(self) -> None:
        self._ws = None
        self.stats.connected = False
        for sync in self.syncs.values():  # a new connection starts from new snapshots
            sync.ready = False
            sync.seq_id = None
            sync.book.clear()

    def _request(self, op: str, symbols: Sequence[str]) -> str:
        return orjson.dumps({"op": op, "args": [{"channel": self.channel, "instId": s} for s in symbols]}).decode()

    async def _session(self, stop: asyncio.Event) -> None:
        async with connect(self.url, ping_interval=None, open_timeout=10, close_timeout=2, compression=None,
                           max_size=2**24) as ws:
            self._ws = ws
            self.stats.connects += 1
            self.stats.connected = True
            await ws.send(self._request("subscribe", self.symbols))
            await with_helpers(self._receive(ws), text_keepalive(ws, self.stats, "ping", self.ping_after),
                               close_on(stop, ws))

    async def _receive(self, ws: ClientConnection) -> None:
        stats = self.stats
        async for raw in frames(ws, stats):
            if raw == b"pong":
                continue
            try:
                symbol, outcome = self._push(raw)
            except MalformedMessageError as exc:
                stats.malformed_frame(exc, log, "okx books")
                continue
            if outcome == GAP:
                gaps = self.syncs[symbol].gaps  # the first of a symbol is a warning; later ones are counted
                log.log(logging.WARNING if gaps == 1 else logging.INFO, "okx books: sequence gap or checksum "
                        "mismatch, resubscribing", extra={"symbol": symbol, "gaps": gaps})
                await ws.send(self._request("unsubscribe", [symbol]))
                await ws.send(self._request("subscribe", [symbol]))

    def _push(self, raw: bytes) -> tuple[str, str | None]:
        """Apply one frame; returns (symbol, outcome), outcome None for an event."""
        try:
            frame = orjson.loads(raw)
            if "event" in frame:
                if frame["event"] == "error":
                    self.stats.error(str(frame.get("code")), str(frame.get("msg")), "")
                    log.warning("okx books: error reply", extra={"code": frame.get("code"), "error": frame.get("msg")})
                return "", None
            symbol = frame["arg"]["instId"]
            data = frame["data"][0]
            sync = self.syncs[symbol]
            action = frame.get("action", "snapshot")  # books5: every push is the whole (5-level) book
            outcome = sync.on_push(action if self.channel == "books" else "snapshot", data)
            ts = int(data["ts"])
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedMessageError("bad_books", f"{exc!r}: {raw[:200]!r}") from None
        if outcome == APPLIED:
            self.updates[symbol] += 1
            self.last_event_ms[symbol] = ts
            self.on_book(symbol, sync.book, ts, sync.seq_id)
        return symbol, outcome

    def health(self, symbol: str) -> dict[str, Any]:
        sync = self.syncs[symbol]
        resyncs = sync.resyncs if self.channel == "books" else 0  # books5: every push is a whole book
        return {"live": sync.ready, "updates": self.updates[symbol], "gaps": sync.gaps, "resyncs": resyncs,
                "checksums_checked": sync.checked, "last_update_id": sync.seq_id,
                "last_event_ms": self.last_event_ms[symbol] or None}
