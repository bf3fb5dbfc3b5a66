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
import time
from collections.abc import Callable, Sequence
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from config.errors import MalformedMessageError
from data.okx.frames import PONG_BYTES, WireTrade, decode_public, error_symbol
from data.streams import ClientStats, StreamState, TradeStreamBase, close_on, now_ms, with_helpers

__all__ = ["ClientStats", "OkxTradeStream", "StreamState", "now_ms"]  # the shared names, as before

log = logging.getLogger(__name__)

SUBSCRIBE_BATCH = 200  # args per request: far below OKX's 64 KB request limit


class OkxTradeStream(TradeStreamBase):
    """Run with :meth:`run` until ``stop`` is set; options and callbacks: :class:`~data.streams.TradeStreamBase`."""

    venue = "okx"

    def __init__(self, url: str, symbols: Sequence[str], on_trades: Callable[[str, list[WireTrade], int], None],
                 **options: Any) -> None:
        super().__init__(symbols, on_trades, **options)
        self.url = url
        self._sent_at: dict[str, float] = {}
        self._request_id = 0
        self._last_rx = 0.0
        self._ws: ClientConnection | None = None

    async def run(self, stop: asyncio.Event) -> None:
        await self.reconnect.run(lambda: self._session(stop), stop, ended=self._mark_disconnected,
                                 stats=self.stats, log=log, name=f"okx ws {self.url}")

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
        self.stats.connected = False
        self._ws = None
        self._disconnected(self.symbols)

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
            await with_helpers(self._receive(ws), self._keepalive(ws), self._resubscribe(ws), close_on(stop, ws))

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
                   or (st is StreamState.REJECTED and self.retries.due(s, now))]
            if due:
                log.info("okx ws: subscribing again", extra={"symbols": ",".join(due)})
                await self._subscribe(ws, due)

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
                    self._handler_failed(raw)
            else:
                self._event(frame.event or "", frame)
                if frame.event == "notice" and frame.code == "64008":
                    log.info("okx ws: service upgrade notice, reconnecting now")
                    await ws.close()
                    return

    def _event(self, event: str, frame: object) -> None:
        arg = getattr(frame, "arg", None)
        symbol = arg.instId if arg is not None else ""
        if event == "subscribe" and symbol in self.state:
            self._subscribed(symbol)
        elif event == "error":
            code, msg = getattr(frame, "code", ""), getattr(frame, "msg", "")
            failed = error_symbol(msg, self.symbols)
            if failed is not None:
                self._refused(failed)
            self.stats.error(code, msg, failed or "")
            log.warning("okx ws: error event", extra={"code": code, "error": msg[:300], "symbol": failed})
        elif event == "notice":
            log.info("okx ws: notice", extra={"code": getattr(frame, "code", ""), "text": getattr(frame, "msg", "")})
