"""OKX public WebSocket client for the ``trades`` channel: one connection, any number of instIds.

Subscribes in batched requests, tracks per-symbol acks and ``error`` events (a rejected instId is
logged with OKX's code and message and leaves the others running), keeps the connection alive with
the text ``ping``/``pong`` OKX expects before its 30 s idle cut, and reconnects with exponential
back-off and full jitter, re-subscribing everything. A subscription left unanswered is sent again
after ``ack_timeout``; a refused one is retried with back-off (2 s doubling to 60 s). Malformed frames
are counted per kind, logged once per kind and skipped; so is each trade of a push that is not the protocol's
(``bad_trade``, ``wrong_inst_id``: counted per trade), the push's other trades are kept. Trades are handed over
as wire values, not domain values (see :mod:`data.okx.frames`): ``on_trades(symbol, wire_trades, received_ms)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import websockets
from websockets.asyncio.client import ClientConnection, connect

from config.errors import MalformedMessageError
from data.okx.frames import PONG_BYTES, WireTrade, decode_public, error_symbol

log = logging.getLogger(__name__)

SUBSCRIBE_BATCH = 200  # args per request: far below OKX's 64 KB request limit


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


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class OkxTradeStream:
    """Run with :meth:`run` until ``stop`` is set. Callbacks run on the event loop and must not block."""

    def __init__(
        self,
        url: str,
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
        self.url = url
        self.symbols = tuple(dict.fromkeys(symbols))
        self.on_trades = on_trades
        self.on_subscribed = on_subscribed
        self.on_disconnected = on_disconnected
        self.flow = flow  # when given and cleared, reading pauses (the consumer is behind)
        self.ping_after = ping_after
        self.pong_timeout = pong_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.stable_after = stable_after
        self.ack_timeout = ack_timeout
        self._sent_at: dict[str, float] = {}
        self._retry_at: dict[str, float] = {}
        self._retry_delay: dict[str, float] = {}
        self._request_id = 0
        self._rng = rng or random.Random()
        self.state: dict[str, StreamState] = {s: StreamState.DISCONNECTED for s in self.symbols}
        self.stats = ClientStats()
        self._last_rx = 0.0
        self._ws: ClientConnection | None = None

    async def run(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self._session(stop)
            except (TimeoutError, OSError, websockets.exceptions.WebSocketException) as exc:
                log.warning("okx ws: connection lost", extra={"url": self.url, "error": repr(exc)})
            finally:
                self._mark_disconnected()
            if stop.is_set():
                break
            if time.monotonic() - started >= self.stable_after:
                attempt = 0
            delay = max(1 / 3, self._rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** attempt)))
            attempt += 1
            self.stats.reconnects += 1
            log.info("okx ws: reconnecting", extra={"attempt": attempt, "delay_s": round(delay, 2)})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def ping_now(self) -> bool:
        """Send a text ``ping`` at once (its ``pong`` proves every earlier push was delivered)."""
        ws = self._ws
        if ws is None:
            return False
        with contextlib.suppress(Exception):
            await ws.send("ping")
            self.stats.pings += 1
            return True
        return False

    def _mark_disconnected(self) -> None:
        was = [s for s, st in self.state.items() if st is not StreamState.DISCONNECTED]
        for s in self.symbols:
            if self.state[s] is not StreamState.REJECTED:
                self.state[s] = StreamState.DISCONNECTED
        self.stats.connected = False
        self._ws = None
        if was and self.on_disconnected is not None:
            self.on_disconnected(was)

    async def _session(self, stop: asyncio.Event) -> None:
        for s in self.symbols:
            self.state[s] = StreamState.CONNECTING
        async with connect(self.url, ping_interval=None, open_timeout=10, close_timeout=2, compression=None,
                           max_size=2**24, max_queue=256) as ws:
            self._ws = ws
            self.stats.connects += 1
            self.stats.connected = True
            self._last_rx = time.monotonic()
            await self._subscribe(ws, self.symbols)
            helpers = [asyncio.create_task(self._keepalive(ws), name="okx keepalive"),
                       asyncio.create_task(self._resubscribe(ws), name="okx resubscribe"),
                       asyncio.create_task(self._close_on(stop, ws), name="okx stop")]
            try:
                await self._receive(ws)
            finally:
                for task in helpers:
                    task.cancel()

    async def _subscribe(self, ws: ClientConnection, symbols: Sequence[str]) -> None:
        args = [{"channel": "trades", "instId": s} for s in symbols]
        now = time.monotonic()
        for s in symbols:
            self.state[s] = StreamState.SUBSCRIBING
            self._sent_at[s] = now
        for i in range(0, len(args), SUBSCRIBE_BATCH):
            self._request_id += 1
            await ws.send(json.dumps({"id": f"sub{self._request_id}", "op": "subscribe",
                                      "args": args[i:i + SUBSCRIBE_BATCH]}))

    async def _resubscribe(self, ws: ClientConnection) -> None:
        """Send again what was never answered (after ``ack_timeout``) and, with back-off, what was refused."""
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            due = [s for s, st in self.state.items()
                   if (st is StreamState.SUBSCRIBING and now - self._sent_at.get(s, now) >= self.ack_timeout)
                   or (st is StreamState.REJECTED and now >= self._retry_at.get(s, now))]
            if due:
                log.info("okx ws: subscribing again", extra={"symbols": ",".join(due)})
                await self._subscribe(ws, due)

    async def _close_on(self, stop: asyncio.Event, ws: ClientConnection) -> None:
        await stop.wait()
        await ws.close()

    async def _keepalive(self, ws: ClientConnection) -> None:
        """Text ``ping`` after ``ping_after`` s of silence; give up after ``pong_timeout`` more."""
        tick = min(self.ping_after, self.pong_timeout) / 4
        pinged_at: float | None = None
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if pinged_at is not None and self._last_rx >= pinged_at:
                pinged_at = None
            if pinged_at is None and now - self._last_rx >= self.ping_after:
                pinged_at = now
                self.stats.pings += 1
                await ws.send("ping")
            elif pinged_at is not None and now - pinged_at >= self.pong_timeout:
                log.warning("okx ws: no pong, reconnecting", extra={"silent_s": round(now - self._last_rx, 1)})
                ws.transport.abort()
                return

    async def _receive(self, ws: ClientConnection) -> None:
        on_trades = self.on_trades
        on_rejected = self._malformed
        stats = self.stats
        flow = self.flow
        recv = ws.recv
        while True:
            try:
                raw = await recv(decode=False)  # bytes as received: no UTF-8 decode into a str first
            except websockets.exceptions.ConnectionClosedOK:
                return
            if flow is not None and not flow.is_set():
                await flow.wait()
            self._last_rx = time.monotonic()
            received = now_ms()
            stats.frames += 1
            stats.last_frame_ms = received
            if raw == PONG_BYTES:
                continue
            try:
                frame = decode_public(raw, on_rejected)
            except MalformedMessageError as exc:
                self._malformed(exc)
                continue
            data = frame.data
            if data is not None:
                if not data:
                    continue
                stats.trades += len(data)
                try:
                    on_trades(frame.arg.instId, data, received)  # type: ignore[union-attr]
                except Exception:  # noqa: BLE001 - a handler bug must not stop the stream
                    self._malformed(MalformedMessageError("handler_error", f"trades handler failed on {raw[:200]!r}"))
                    log.exception("okx ws: trades handler failed")
            else:
                self._event(frame.event or "", frame)
                if frame.event == "notice" and frame.code == "64008":
                    log.info("okx ws: service upgrade notice, reconnecting now")
                    await ws.close()
                    return

    def _malformed(self, exc: MalformedMessageError) -> None:
        count = self.stats.malformed.get(exc.kind, 0)
        self.stats.malformed[exc.kind] = count + 1
        if count == 0:
            log.warning("okx ws: malformed frame skipped (further ones of this kind are only counted)",
                        extra={"kind": exc.kind, "detail": exc.detail[:300]})

    def _event(self, event: str, frame: object) -> None:
        arg = getattr(frame, "arg", None)
        symbol = arg.instId if arg is not None else ""
        if event == "subscribe" and symbol in self.state:
            if self.state[symbol] is not StreamState.SUBSCRIBED:  # OKX re-acks duplicates; count once
                self.state[symbol] = StreamState.SUBSCRIBED
                self._retry_delay.pop(symbol, None)
                if self.on_subscribed is not None:
                    self.on_subscribed(symbol)
        elif event == "error":
            code, msg = getattr(frame, "code", ""), getattr(frame, "msg", "")
            failed = error_symbol(msg, self.symbols)
            if failed is not None:
                self.state[failed] = StreamState.REJECTED
                delay = min(60.0, max(2.0, 2 * self._retry_delay.get(failed, 0.0)))
                self._retry_delay[failed] = delay
                self._retry_at[failed] = time.monotonic() + delay
            self.stats.errors.append({"code": code, "msg": msg[:300], "symbol": failed or ""})
            del self.stats.errors[:-20]
            log.warning("okx ws: error event", extra={"code": code, "error": msg[:300], "symbol": failed})
        elif event == "notice":
            log.info("okx ws: notice", extra={"code": getattr(frame, "code", ""), "text": getattr(frame, "msg", "")})
