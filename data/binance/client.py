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
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection, connect

from config.errors import MalformedMessageError
from data.binance.frames import Kind, Market, Reply, decode_frame, market
from data.okx.frames import WireTrade
from data.streams import StreamState, TradeStreamBase, close_on, now_ms, with_helpers

log = logging.getLogger(__name__)

SUBSCRIBE_BATCH = 200  # USDⓈ-M allows 200 streams per connection, spot 1024
REQUEST_SPACING_S = 0.25  # spot: 5 incoming messages per second per connection


class BinanceTradeStream(TradeStreamBase):
    """Run with :meth:`run` until ``stop`` is set; ``urls`` maps each endpoint kind in use to its socket;
    options and callbacks: :class:`~data.streams.TradeStreamBase`."""

    venue = "binance"

    def __init__(self, urls: dict[Kind, str], symbols: Sequence[str],
                 on_trades: Callable[[str, list[WireTrade], int], None], **options: Any) -> None:
        super().__init__(symbols, on_trades, **options)
        self.markets = {s: market(s) for s in self.symbols}
        kinds = {m.kind for m in self.markets.values()}
        missing = kinds - set(urls)
        if missing:
            raise ValueError(f"no WebSocket URL for {', '.join(sorted(missing))} markets")
        self._links = [_Link(self, kind, urls[kind], [m for m in self.markets.values() if m.kind is kind])
                       for kind in sorted(kinds)]
        self._pongs: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self.reconnect.run(lambda link=link: link.session(stop), stop,
                                                  ended=link.ended, stats=self.stats, log=log,
                                                  name=f"binance ws {link.url}")
                               for link in self._links))

    async def ping_now(self) -> bool:
        """Ping every open connection at once; each pong counts as a frame received (it proves every
        earlier frame of that connection was delivered)."""
        sent = False
        for link in self._links:
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

    async def _await_pong(self, waiter: asyncio.Future[float]) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(waiter, self.pong_timeout)
            self.stats.last_frame_ms = now_ms()


class _Link:
    """One connection (one endpoint kind) of a :class:`BinanceTradeStream`."""

    def __init__(self, owner: BinanceTradeStream, kind: Kind, url: str, markets: list[Market]) -> None:
        self.owner = owner
        self.kind = kind
        self.url = url
        self.markets = markets
        self.names = {m.venue_symbol: m.symbol for m in markets}
        self.ws: ClientConnection | None = None
        self._request_id = 0
        self._pending: dict[int, tuple[list[str], float]] = {}  # request id -> (symbols, sent at)
        self._last_rx = 0.0

    def ended(self) -> None:
        self.ws = None
        self._pending.clear()
        owner = self.owner
        owner.stats.connected = any(link.ws is not None for link in owner._links)
        owner._disconnected([m.symbol for m in self.markets])

    async def session(self, stop: asyncio.Event) -> None:
        owner = self.owner
        for m in self.markets:
            owner.state[m.symbol] = StreamState.CONNECTING
        async with connect(self.url, ping_interval=None, open_timeout=10, close_timeout=2, compression=None,
                           max_size=2**24, max_queue=1024) as ws:
            self.ws = ws
            owner.stats.connects += 1
            owner.stats.connected = True
            self._last_rx = time.monotonic()
            await self._subscribe(ws, [m.symbol for m in self.markets])
            await with_helpers(self._receive(ws), self._keepalive(ws), self._resubscribe(ws), close_on(stop, ws))

    async def _subscribe(self, ws: ClientConnection, symbols: list[str]) -> None:
        state = self.owner.state
        for i in range(0, len(symbols), SUBSCRIBE_BATCH):
            batch = symbols[i:i + SUBSCRIBE_BATCH]
            if i:
                await asyncio.sleep(REQUEST_SPACING_S)
            self._request_id += 1
            self._pending[self._request_id] = (batch, time.monotonic())
            for s in batch:
                state[s] = StreamState.SUBSCRIBING
            await ws.send(orjson.dumps({"method": "SUBSCRIBE",
                                        "params": [self.owner.markets[s].stream for s in batch],
                                        "id": self._request_id}).decode())

    async def _resubscribe(self, ws: ClientConnection) -> None:
        """Send again what was never answered (after ``ack_timeout``) and, with back-off, what was refused."""
        state = self.owner.state
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            due: list[str] = []
            for rid, (symbols, sent) in list(self._pending.items()):
                if now - sent >= self.owner.ack_timeout:
                    del self._pending[rid]
                    due += symbols
            due += [m.symbol for m in self.markets
                    if state[m.symbol] is StreamState.REJECTED and self.owner.retries.due(m.symbol, now)]
            if due:
                log.info("binance ws: subscribing again", extra={"symbols": ",".join(due)})
                await self._subscribe(ws, due)

    async def _keepalive(self, ws: ClientConnection) -> None:
        """A ping after ``ping_after`` s of silence; a dead socket is cut after ``pong_timeout`` more."""
        owner = self.owner
        while True:
            await asyncio.sleep(min(owner.ping_after, owner.pong_timeout) / 4)
            if time.monotonic() - self._last_rx < owner.ping_after:
                continue
            owner.stats.pings += 1
            try:
                waiter = await ws.ping()
                await asyncio.wait_for(waiter, owner.pong_timeout)
            except TimeoutError:
                log.warning("binance ws: no pong, reconnecting", extra={"url": self.url})
                ws.transport.abort()
                return
            self._last_rx = time.monotonic()
            owner.stats.last_frame_ms = now_ms()

    async def _receive(self, ws: ClientConnection) -> None:
        owner = self.owner
        on_trades = owner.on_trades
        stats = owner.stats
        flow = owner.flow
        names = self.names
        recv = ws.recv
        while True:
            try:
                raw = await recv(decode=False)
            except websockets.exceptions.ConnectionClosedOK:
                return
            if flow is not None and not flow.is_set():
                await flow.wait()
            self._last_rx = time.monotonic()
            received = now_ms()
            stats.frames += 1
            stats.last_frame_ms = received
            try:
                decoded = decode_frame(raw, names)
            except MalformedMessageError as exc:
                owner._malformed(exc)
                continue
            if type(decoded) is tuple:
                symbol, trade = decoded
                stats.trades += 1
                try:
                    on_trades(symbol, [trade], received)
                except Exception:  # noqa: BLE001 - a handler bug must not stop the stream
                    owner._handler_failed(raw)
            elif isinstance(decoded, Reply):
                self._reply(decoded)

    def _reply(self, reply: Reply) -> None:
        owner = self.owner
        pending = self._pending.pop(reply.id, None) if isinstance(reply.id, int) else None
        if pending is None:
            if not reply.ok:
                owner.stats.error(str(reply.code), reply.msg, "")
                log.warning("binance ws: error reply", extra={"code": reply.code, "error": reply.msg[:300]})
            return
        symbols, _ = pending
        for s in symbols:
            if reply.ok:
                owner._subscribed(s)
            else:
                owner._refused(s)
                owner.stats.error(str(reply.code), reply.msg, s)
        if not reply.ok:
            log.warning("binance ws: subscription refused",
                        extra={"code": reply.code, "error": reply.msg[:300], "symbols": ",".join(symbols)})
