"""What every venue's trade stream shares (:mod:`data.okx.client`, :mod:`data.binance.client`,
:mod:`data.bybit.client`): per-symbol states, counters, the reconnect loop (exponential back-off with full
jitter), the back-off of a refused subscription, counting malformed frames (logged once per kind, then only
counted), and the subscribe / receive / re-subscribe loop of a connection per endpoint (:class:`SubscribingLink`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from config.errors import MalformedMessageError
from data.okx.frames import WireTrade

RETRY_FIRST_S = 2.0  # a refused subscription is retried after 2 s, doubling to 60 s
RETRY_CAP_S = 60.0


class StreamState(StrEnum):
    CONNECTING = "connecting"
    SUBSCRIBING = "subscribing"
    SUBSCRIBED = "subscribed"
    REJECTED = "rejected"
    DISCONNECTED = "disconnected"


@dataclass
class ClientStats:
    frames: int = 0
    trades: int = 0
    connects: int = 0
    reconnects: int = 0
    pings: int = 0
    malformed: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    last_frame_ms: int = 0
    connected: bool = False

    def malformed_frame(self, exc: MalformedMessageError, log: logging.Logger, venue: str) -> None:
        count = self.malformed.get(exc.kind, 0)
        self.malformed[exc.kind] = count + 1
        if count == 0:
            log.warning(f"{venue} ws: malformed frame skipped (further ones of this kind are only counted)",
                        extra={"kind": exc.kind, "detail": exc.detail[:300]})

    def error(self, code: str, msg: str, symbol: str) -> None:
        """Keep the last 20 error replies (shown in health)."""
        self.errors.append({"code": code, "msg": msg[:300], "symbol": symbol})
        del self.errors[:-20]


async def with_helpers(main: Awaitable[None], *helpers: Coroutine[Any, Any, None]) -> None:
    """Await ``main`` (a connection's receive loop) with ``helpers`` (keep-alive, re-subscribe, stop) running as
    tasks beside it; they are cancelled when it ends."""
    tasks = [asyncio.create_task(helper) for helper in helpers]
    try:
        await main
    finally:
        for task in tasks:
            task.cancel()


async def close_on(stop: asyncio.Event, ws: ClientConnection) -> None:
    """Close ``ws`` (a clean close frame) once ``stop`` is set: a connection's stop helper."""
    await stop.wait()
    await ws.close()


async def frames(ws: ClientConnection, stats: ClientStats) -> AsyncIterator[bytes]:
    """The frames of ``ws`` as bytes until it closes cleanly, each counted in ``stats`` with its receive time."""
    while True:
        try:
            raw = await ws.recv(decode=False)
        except websockets.exceptions.ConnectionClosedOK:
            return
        stats.frames += 1
        stats.last_frame_ms = now_ms()
        yield raw


async def text_keepalive(ws: ClientConnection, stats: ClientStats, text: str, after: float, *,
                         always: bool = False) -> None:
    """Send ``text`` (OKX's ``ping``) whenever nothing has arrived for ``after`` seconds (``always``: every
    ``after`` seconds, Bybit's heartbeat): a connection helper."""
    sent = now_ms()
    while True:
        await asyncio.sleep(after / 4)
        now = now_ms()
        if now - (sent if always else stats.last_frame_ms) >= after * 1000:
            stats.pings += 1
            sent = now
            await ws.send(text)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Retries:
    """When each refused symbol may be subscribed again."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._delay: dict[str, float] = {}

    def refused(self, symbol: str) -> None:
        delay = min(RETRY_CAP_S, max(RETRY_FIRST_S, 2 * self._delay.get(symbol, 0.0)))
        self._delay[symbol] = delay
        self.at[symbol] = time.monotonic() + delay

    def accepted(self, symbol: str) -> None:
        self._delay.pop(symbol, None)

    def due(self, symbol: str, now: float) -> bool:
        return now >= self.at.get(symbol, now)


@dataclass
class Reconnect:
    """The reconnect policy: ``backoff_base * 2**attempt`` capped at ``backoff_cap``, full jitter, at least
    1/3 s; the attempt count starts again after a session that lasted ``stable_after`` s."""

    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    stable_after: float = 10.0
    rng: random.Random = field(default_factory=random.Random)

    async def run(self, session: Callable[[], Awaitable[None]], stop: asyncio.Event, *, ended: Callable[[], None],
                  stats: ClientStats, log: logging.Logger, name: str) -> None:
        """Run ``session`` until ``stop``; after each one (``ended`` is called), wait and start another."""
        attempt = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                await session()
            except (TimeoutError, OSError, websockets.exceptions.WebSocketException) as exc:
                log.warning(f"{name}: connection lost", extra={"error": repr(exc)})
            finally:
                ended()
            if stop.is_set():
                break
            if time.monotonic() - started >= self.stable_after:
                attempt = 0
            delay = max(1 / 3, self.rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** attempt)))
            attempt += 1
            stats.reconnects += 1
            log.info(f"{name}: reconnecting", extra={"attempt": attempt, "delay_s": round(delay, 2)})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)


class TradeStreamBase:
    """The state and options every venue's trade stream has; subclasses implement :meth:`run` and
    :meth:`ping_now`. Callbacks run on the event loop and must not block: ``on_trades(symbol, wire_trades,
    received_ms)``, ``on_subscribed(symbol)``, ``on_disconnected(symbols)``; ``flow``, when given and
    cleared, pauses reading (the consumer is behind)."""

    venue = ""

    def __init__(
        self,
        symbols: Sequence[str],
        on_trades: Callable[[str, list[WireTrade], int], None],
        *,
        on_subscribed: Callable[[str], None] | None = None,
        on_disconnected: Callable[[Sequence[str]], None] | None = None,
        flow: asyncio.Event | None = None,
        ping_after: float = 20.0,
        pong_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        stable_after: float = 10.0,
        ack_timeout: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        if not symbols:
            raise ValueError("at least one symbol is needed")
        self.symbols = tuple(dict.fromkeys(symbols))
        self.on_trades = on_trades
        self.on_subscribed = on_subscribed
        self.on_disconnected = on_disconnected
        self.flow = flow
        self.ping_after = ping_after
        self.pong_timeout = pong_timeout
        self.ack_timeout = ack_timeout
        self.reconnect = Reconnect(backoff_base, backoff_cap, stable_after, rng or random.Random())
        self.retries = Retries()
        self.state: dict[str, StreamState] = {s: StreamState.DISCONNECTED for s in self.symbols}
        self.stats = ClientStats()

    async def run(self, stop: asyncio.Event) -> None:
        raise NotImplementedError

    async def ping_now(self) -> bool:
        raise NotImplementedError

    def _subscribed(self, symbol: str) -> None:
        if self.state[symbol] is not StreamState.SUBSCRIBED:  # venues may re-ack duplicates; count once
            self.state[symbol] = StreamState.SUBSCRIBED
            self.retries.accepted(symbol)
            if self.on_subscribed is not None:
                self.on_subscribed(symbol)

    def _refused(self, symbol: str) -> None:
        self.state[symbol] = StreamState.REJECTED
        self.retries.refused(symbol)

    def _disconnected(self, symbols: Sequence[str]) -> None:
        """Mark ``symbols`` disconnected (a refused one stays refused) and tell the consumer which were up."""
        was = [s for s in symbols if self.state[s] is not StreamState.DISCONNECTED]
        for s in symbols:
            if self.state[s] is not StreamState.REJECTED:
                self.state[s] = StreamState.DISCONNECTED
        if was and self.on_disconnected is not None:
            self.on_disconnected(was)

    def _malformed(self, exc: MalformedMessageError) -> None:
        self.stats.malformed_frame(exc, logging.getLogger(type(self).__module__), self.venue)

    def _handler_failed(self, raw: bytes) -> None:
        self._malformed(MalformedMessageError("handler_error", f"trades handler failed on {raw[:200]!r}"))
        logging.getLogger(type(self).__module__).exception(f"{self.venue} ws: trades handler failed")


class LinkedTradeStream(TradeStreamBase):
    """A trade stream over one connection per endpoint (Binance spot / USDⓈ-M, Bybit spot / linear): each a
    :class:`SubscribingLink` in ``links``, reconnected on its own."""

    links: list[SubscribingLink]
    markets: dict[str, Any]  # our symbol -> the venue's market (with its endpoint ``kind``)

    def endpoints(self, urls: Mapping[Any, str], market: Callable[[str], Any]) -> list[tuple[str, list[Any]]]:
        """Set :attr:`markets` and return each endpoint in use with its markets, ``(url, markets)``; a
        ``ValueError`` when ``urls`` lacks one."""
        self.markets = {s: market(s) for s in self.symbols}
        kinds = {m.kind for m in self.markets.values()}
        missing = kinds - set(urls)
        if missing:
            raise ValueError(f"no WebSocket URL for {', '.join(sorted(missing))} markets")
        return [(urls[kind], [m for m in self.markets.values() if m.kind is kind]) for kind in sorted(kinds)]

    async def run(self, stop: asyncio.Event) -> None:
        log = logging.getLogger(type(self).__module__)
        await asyncio.gather(*(self.reconnect.run(lambda link=link: link.session(stop), stop,  # type: ignore[misc]
                                                  ended=link.ended, stats=self.stats, log=log,
                                                  name=f"{self.venue} ws {link.url}")
                               for link in self.links))


class SubscribingLink:
    """One connection of a :class:`LinkedTradeStream`: connect, subscribe ``symbols`` (the venue's
    :meth:`subscribe` records each request with :meth:`sent`), receive, and answer replies with
    :meth:`answered`; a request left unanswered is sent again after the owner's ``ack_timeout``, a refused
    symbol after its back-off. Subclasses give :meth:`subscribe`, :meth:`decode` (a frame -> ``(symbol, trades)``,
    a reply for :meth:`reply`, or ``None``), :meth:`reply` and :meth:`keepalive`."""

    def __init__(self, owner: LinkedTradeStream, url: str, symbols: Sequence[str]) -> None:
        self.owner = owner
        self.url = url
        self.symbols = list(symbols)
        self.ws: ClientConnection | None = None
        self.last_rx = 0.0  # monotonic time of the last frame
        self._pending: dict[object, tuple[list[str], float]] = {}  # request key -> (symbols, sent at)
        self._log = logging.getLogger(type(self).__module__)

    # ------------------------------------------------------------------ per venue

    async def subscribe(self, ws: ClientConnection, symbols: list[str]) -> None:
        raise NotImplementedError

    def decode(self, raw: bytes) -> tuple[str, list[WireTrade]] | Any:
        raise NotImplementedError

    def reply(self, reply: Any) -> None:
        raise NotImplementedError

    async def keepalive(self, ws: ClientConnection) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ shared

    def ended(self) -> None:
        self.ws = None
        self._pending.clear()
        owner = self.owner
        owner.stats.connected = any(link.ws is not None for link in owner.links)
        owner._disconnected(self.symbols)

    async def session(self, stop: asyncio.Event) -> None:
        owner = self.owner
        for s in self.symbols:
            owner.state[s] = StreamState.CONNECTING
        async with connect(self.url, ping_interval=None, open_timeout=10, close_timeout=2, compression=None,
                           max_size=2**24, max_queue=1024) as ws:
            self.ws = ws
            owner.stats.connects += 1
            owner.stats.connected = True
            self.last_rx = time.monotonic()
            await self.subscribe(ws, list(self.symbols))
            await with_helpers(self._receive(ws), self.keepalive(ws), self._resubscribe(ws), close_on(stop, ws))

    def sent(self, key: object, symbols: list[str]) -> None:
        """A subscribe request for ``symbols`` went out under ``key`` (its id)."""
        self._pending[key] = (symbols, time.monotonic())
        for s in symbols:
            self.owner.state[s] = StreamState.SUBSCRIBING

    def answered(self, key: object, ok: bool, code: str, msg: str) -> None:
        """The reply to request ``key`` (``None``: a reply naming no request of ours)."""
        owner = self.owner
        pending = self._pending.pop(key, None) if key is not None else None
        if pending is None:
            if not ok:
                owner.stats.error(code, msg, "")
                self._log.warning(f"{owner.venue} ws: error reply", extra={"code": code, "error": msg[:300]})
            return
        symbols, _ = pending
        for s in symbols:
            if ok:
                owner._subscribed(s)
            else:
                owner._refused(s)
                owner.stats.error(code, msg, s)
        if not ok:
            self._log.warning(f"{owner.venue} ws: subscription refused",
                              extra={"code": code, "error": msg[:300], "symbols": ",".join(symbols)})

    async def _resubscribe(self, ws: ClientConnection) -> None:
        """Send again what was never answered (after ``ack_timeout``) and, with back-off, what was refused."""
        owner = self.owner
        state = owner.state
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            due: list[str] = []
            for key, (symbols, sent) in list(self._pending.items()):
                if now - sent >= owner.ack_timeout:
                    del self._pending[key]
                    due += symbols
            due += [s for s in self.symbols if state[s] is StreamState.REJECTED and owner.retries.due(s, now)]
            if due:
                self._log.info(f"{owner.venue} ws: subscribing again", extra={"symbols": ",".join(due)})
                await self.subscribe(ws, due)

    async def _receive(self, ws: ClientConnection) -> None:
        owner = self.owner
        on_trades = owner.on_trades
        stats = owner.stats
        flow = owner.flow
        decode = self.decode
        recv = ws.recv
        while True:
            try:
                raw = await recv(decode=False)
            except websockets.exceptions.ConnectionClosedOK:
                return
            if flow is not None and not flow.is_set():
                await flow.wait()
            self.last_rx = time.monotonic()
            received = now_ms()
            stats.frames += 1
            stats.last_frame_ms = received
            try:
                decoded = decode(raw)
            except MalformedMessageError as exc:
                owner._malformed(exc)
                continue
            if type(decoded) is tuple:
                symbol, trades = decoded
                stats.trades += len(trades)
                try:
                    on_trades(symbol, trades, received)
                except Exception:  # noqa: BLE001 - a handler bug must not stop the stream
                    owner._handler_failed(raw)
            elif decoded is not None:
                self.reply(decoded)


class ChannelStream:
    """One connection to ``url`` subscribed by ``requests`` (text frames sent on every connect), each frame
    parsed by ``parse(raw, received_ms)`` into a list of messages for ``on_messages`` (``None``: nothing to hand
    over, e.g. an ack). Reconnects like the trade streams; a frame that raises :class:`MalformedMessageError` is
    counted per kind and skipped. ``ping_text``: a text ping sent after ``ping_after`` s of silence (OKX's
    ``ping``; with ``ping_always`` every ``ping_after`` s, Bybit's ``{"op":"ping"}``); without it ``websockets``
    pings (Binance answers those)."""

    def __init__(self, venue: str, url: str, requests: Sequence[str],
                 parse: Callable[[bytes, int], list[Any] | None], on_messages: Callable[[list[Any]], None], *,
                 ping_text: str | None = None, ping_always: bool = False, ping_after: float = 20.0,
                 backoff_base: float = 0.5, backoff_cap: float = 30.0) -> None:
        self.venue = venue
        self.url = url
        self.requests = tuple(requests)
        self.parse = parse
        self.on_messages = on_messages
        self.ping_text = ping_text
        self.ping_always = ping_always
        self.ping_after = ping_after
        self.stats = ClientStats()
        self.messages = 0
        self.reconnect = Reconnect(backoff_base, backoff_cap)
        self._log = logging.getLogger(f"{__name__}.{venue}")

    async def run(self, stop: asyncio.Event) -> None:
        await self.reconnect.run(lambda: self._session(stop), stop, ended=self._ended, stats=self.stats,
                                 log=self._log, name=f"{self.venue} {self.url}")

    def _ended(self) -> None:
        self.stats.connected = False

    async def _session(self, stop: asyncio.Event) -> None:
        from websockets.asyncio.client import connect

        async with connect(self.url, ping_interval=None if self.ping_text else 20, ping_timeout=20,
                           open_timeout=10, close_timeout=2, compression=None, max_size=2**24) as ws:
            self.stats.connects += 1
            self.stats.connected = True
            for request in self.requests:
                await ws.send(request)
            helpers = [close_on(stop, ws)]
            if self.ping_text:
                helpers.append(text_keepalive(ws, self.stats, self.ping_text, self.ping_after,
                                              always=self.ping_always))
            await with_helpers(self._receive(ws), *helpers)

    async def _receive(self, ws: ClientConnection) -> None:
        stats = self.stats
        async for raw in frames(ws, stats):
            try:
                messages = self.parse(raw, stats.last_frame_ms)
            except MalformedMessageError as exc:
                stats.malformed_frame(exc, self._log, self.venue)
                continue
            if messages:
                self.messages += len(messages)
                self.on_messages(messages)
