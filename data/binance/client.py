"""Binance public WebSocket client for the ``<symbol>@trade`` streams of spot and USDⓈ-M markets.

One connection per endpoint kind in use (spot ``stream.binance.com``, USDⓈ-M ``fstream.binance.com``),
each subscribing with ``SUBSCRIBE`` requests (at most ``SUBSCRIBE_BATCH`` streams each, spaced under
Binance's 5 incoming messages per second) and tracking each request's ``{"result":null,"id":N}`` reply;
an error reply (``{"code":2,"msg":...,"id":N}``) marks that request's symbols rejected and retries them
with back-off (2 s doubling to 60 s); a request left unanswered is sent again after ``ack_timeout``.
Binance pings every 20 s (spot) / 3 min (USDⓈ-M) and cuts a connection at 24 h: ``websockets`` answers
the pings, our own pings after ``ping_after`` s of silence detect a dead socket within ``pong_timeout``,
and a lost connection is reconnected with exponential back-off and full jitter, re-subscribing all.

The interface is :class:`data.okx.client.OkxTradeStream`'s (``state``, ``stats``, ``run``,
``ping_now``, ``on_trades(symbol, wire_trades, received_ms)``), so the collector shell is shared.
Malformed frames are counted per kind (``stats.malformed``), logged once per kind and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection

from data.binance.frames import Kind, Market, Reply, decode_frame, market
from data.okx.frames import WireTrade
from data.streams import LinkedTradeStream, SubscribingLink, now_ms

log = logging.getLogger(__name__)

SUBSCRIBE_BATCH = 200  # USDⓈ-M allows 200 streams per connection, spot 1024
REQUEST_SPACING_S = 0.25  # spot: 5 incoming messages per second per connection


class BinanceTradeStream(LinkedTradeStream):
    """Run with :meth:`run` until ``stop`` is set; ``urls`` maps each endpoint kind in use to its socket;
    options and callbacks: :class:`~data.streams.TradeStreamBase`."""

    venue = "binance"

    def __init__(self, urls: dict[Kind, str], symbols: Sequence[str],
                 on_trades: Callable[[str, list[WireTrade], int], None], **options: Any) -> None:
        super().__init__(symbols, on_trades, **options)
        self.links = [_Link(self, url, markets) for url, markets in self.endpoints(urls, market)]
        self._pongs: set[asyncio.Task[None]] = set()

    async def ping_now(self) -> bool:
        """Ping every open connection at once; each pong counts as a frame received (it proves every
        earlier frame of that connection was delivered)."""
        sent = False
        for link in self.links:
            ws = link.ws
            if ws is None:
                continue
            with contextlib.suppress(Exception):
                waiter = await ws.ping()
                self.stats.pings += 1
                task = asyncio.create_task(self._await_pong(waiter))
                self._pongs.add(task)
                task.add_done_callback(self._pongs.discard)
                sent = True
        return sent

    async def _await_pong(self, waiter: Awaitable[float]) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(waiter, self.pong_timeout)
            self.stats.last_frame_ms = now_ms()


class _Link(SubscribingLink):
    """One connection (one endpoint kind) of a :class:`BinanceTradeStream`."""

    owner: BinanceTradeStream

    def __init__(self, owner: BinanceTradeStream, url: str, markets: list[Market]) -> None:
        super().__init__(owner, url, [m.symbol for m in markets])
        self.names = {m.venue_symbol: m.symbol for m in markets}
        self._request_id = 0

    async def subscribe(self, ws: ClientConnection, symbols: list[str]) -> None:
        for i in range(0, len(symbols), SUBSCRIBE_BATCH):
            batch = symbols[i:i + SUBSCRIBE_BATCH]
            if i:
                await asyncio.sleep(REQUEST_SPACING_S)
            self._request_id += 1
            self.sent(self._request_id, batch)
            await ws.send(orjson.dumps({"method": "SUBSCRIBE",
                                        "params": [self.owner.markets[s].stream for s in batch],
                                        "id": self._request_id}).decode())

    def decode(self, raw: bytes) -> tuple[str, list[WireTrade]] | Reply | None:
        decoded = decode_frame(raw, self.names)
        if type(decoded) is tuple:
            return decoded[0], [decoded[1]]
        return decoded  # type: ignore[return-value]

    def reply(self, reply: Reply) -> None:
        self.answered(reply.id if isinstance(reply.id, int) else None, reply.ok, str(reply.code), reply.msg)

    async def keepalive(self, ws: ClientConnection) -> None:
        """A ping after ``ping_after`` s of silence; a dead socket is cut after ``pong_timeout`` more."""
        owner = self.owner
        while True:
            await asyncio.sleep(min(owner.ping_after, owner.pong_timeout) / 4)
            if time.monotonic() - self.last_rx < owner.ping_after:
                continue
            owner.stats.pings += 1
            try:
                waiter = await ws.ping()
                await asyncio.wait_for(waiter, owner.pong_timeout)
            except TimeoutError:
                log.warning("binance ws: no pong, reconnecting", extra={"url": self.url})
                ws.transport.abort()
                return
            self.last_rx = time.monotonic()
            owner.stats.last_frame_ms = now_ms()
