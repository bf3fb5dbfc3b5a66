"""Bybit v5 public WebSocket client for the ``publicTrade.<symbol>`` topics of spot and linear markets.

One connection per category in use (``/v5/public/spot``, ``/v5/public/linear``). Each topic is its own
``{"req_id":"N","op":"subscribe","args":[topic]}`` request, so every reply (``{"success":...,"req_id":"N",
"op":"subscribe"}``) names exactly one market: a refusal marks it rejected and it is retried with back-off
(2 s doubling to 60 s); a request left unanswered is sent again after ``ack_timeout``. Bybit cuts a connection
that sends no heartbeat: the client sends ``{"op":"ping"}`` every ``ping_after`` s (Bybit asks for about 20 s)
and, when nothing (not even the pong) has arrived for ``ping_after + pong_timeout`` s, drops the socket; a lost
connection is reconnected with exponential back-off and full jitter, re-subscribing all.

The interface is :class:`data.okx.client.OkxTradeStream`'s (``state``, ``stats``, ``run``, ``ping_now``,
``on_trades(symbol, wire_trades, received_ms)``), so the collector shell is shared. Trade ids are synthetic
(:mod:`data.bybit.frames`). Malformed frames are counted per kind (``stats.malformed``), logged once per kind
and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection

from data.bybit.frames import Kind, Market, Reply, decode_frame, market
from data.okx.frames import WireTrade
from data.streams import LinkedTradeStream, SubscribingLink

log = logging.getLogger(__name__)

REQUEST_SPACING_S = 0.02  # between two subscribe requests of one connection


class BybitTradeStream(LinkedTradeStream):
    """Run with :meth:`run` until ``stop`` is set; ``urls`` maps each category in use to its socket; options and
    callbacks: :class:`~data.streams.TradeStreamBase`."""

    venue = "bybit"

    def __init__(self, urls: dict[Kind, str], symbols: Sequence[str],
                 on_trades: Callable[[str, list[WireTrade], int], None], **options: Any) -> None:
        super().__init__(symbols, on_trades, **options)
        self.last_ids: dict[str, int] = {}  # each market's last synthetic trade id (kept across reconnects)
        self.links: list[_Link] = [_Link(self, url, markets) for url, markets in self.endpoints(urls, market)]

    async def ping_now(self) -> bool:
        """Send ``{"op":"ping"}`` on every open connection; the pong counts as a frame received."""
        sent = False
        for link in self.links:
            if link.ws is not None:
                with contextlib.suppress(Exception):
                    await link.ping(link.ws)
                    sent = True
        return sent


class _Link(SubscribingLink):
    """One connection (one category) of a :class:`BybitTradeStream`."""

    owner: BybitTradeStream

    def __init__(self, owner: BybitTradeStream, url: str, markets: list[Market]) -> None:
        super().__init__(owner, url, [m.symbol for m in markets])
        self.names = {m.venue_symbol: m.symbol for m in markets}
        self._request_id = 0
        self._last_ping = 0.0

    async def ping(self, ws: ClientConnection) -> None:
        self.owner.stats.pings += 1
        self._last_ping = time.monotonic()
        await ws.send('{"op":"ping"}')

    async def subscribe(self, ws: ClientConnection, symbols: list[str]) -> None:
        for i, symbol in enumerate(symbols):
            if i:
                await asyncio.sleep(REQUEST_SPACING_S)
            self._request_id += 1
            req_id = str(self._request_id)
            self.sent(req_id, [symbol])
            await ws.send(orjson.dumps({"req_id": req_id, "op": "subscribe",
                                        "args": [self.owner.markets[symbol].topic]}).decode())

    def decode(self, raw: bytes) -> tuple[str, list[WireTrade]] | Reply | None:
        return decode_frame(raw, self.names, self.owner.last_ids)

    def reply(self, reply: Reply) -> None:
        if reply.op == "subscribe":  # else a pong (or an unsubscribe's answer): already counted as a frame
            self.answered(reply.req_id, reply.ok, "subscribe", reply.msg)

    async def keepalive(self, ws: ClientConnection) -> None:
        """A ping every ``ping_after`` s; a socket silent for ``ping_after + pong_timeout`` s is dropped."""
        owner = self.owner
        self._last_ping = time.monotonic()
        while True:
            await asyncio.sleep(min(owner.ping_after, owner.pong_timeout) / 4)
            now = time.monotonic()
            if now - self.last_rx >= owner.ping_after + owner.pong_timeout:
                log.warning("bybit ws: no pong, reconnecting", extra={"url": self.url})
                ws.transport.abort()
                return
            if now - self._last_ping >= owner.ping_after:
                await self.ping(ws)
