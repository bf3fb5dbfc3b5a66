"""A local OKX v5 look-alike serving a tape: ``/ws/v5/public`` (``trades``) and the REST candle
endpoints, at N x real time, on 127.0.0.1.

One aiohttp server holds both (the WebSocket and REST must share one port, and aiohttp serves both;
the collector's *client* side uses ``websockets``). The market clock starts at the first
subscription; every connection subscribed to an instrument receives the same trades, and a
connection that joins later gets trades from the current market time on (like OKX: no history on
the socket; the gap is for REST). ``speed=0`` sends as fast as the slowest reader takes them.

Fault controls for tests: :meth:`ReplayServer.drop_connections`, :meth:`send_raw`, :meth:`stall`,
``refuse_subscriptions``, ``ack_delay`` (pushes before the subscribe ack), :meth:`fail_rest`,
:meth:`pause`/:meth:`resume`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
from aiohttp import WSMsgType, web

from data.replay import binance, bybit
from data.replay.depth import DepthCapture, DepthFeed
from data.replay.market import Feed
from data.replay.okx_books import OkxBookFeed
from data.replay.tape import Tape

log = logging.getLogger(__name__)

WS_PATH = "/ws/v5/public"
PROTOCOLS = ("okx", "binance", "bybit")
MAX_PUSH_TRADES = 100
END_PACE = 600.0  # market-clock pace after the tape's end at speed 0


@dataclass
class ReplayStats:
    connections: int = 0
    subscribe_requests: int = 0
    pings: int = 0
    rest_requests: int = 0
    trades_sent: dict[str, int] = field(default_factory=dict)
    depth_sent: dict[str, int] = field(default_factory=dict)
    depth_dropped: dict[str, int] = field(default_factory=dict)


class _Conn:
    __slots__ = ("ws", "transport", "conn_id", "symbols", "last_activity", "combined", "usdm", "depth", "funding",
                 "books", "book_ready")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None, conn_id: str,
                 now: float, *, combined: bool = False, usdm: bool = False) -> None:
        self.ws = ws
        self.transport = transport
        self.conn_id = conn_id
        self.symbols: set[str] = set()
        self.last_activity = now
        self.combined = combined  # Binance: /stream (envelopes) rather than /ws (raw events)
        self.usdm = usdm  # Binance: the USDⓈ-M endpoint
        self.depth: dict[str, str] = {}  # Binance: symbol -> the depth stream name subscribed
        self.funding: set[str] = set()  # OKX: swaps subscribed to funding-rate
        self.books: dict[str, str] = {}  # OKX: symbol -> "books" or "books5"
        self.book_ready: set[str] = set()  # OKX books: the symbols this connection has had a snapshot of


class _Runner:
    """Drives one feed's market clock and sends its trades to subscribers."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.cursor = feed.start_index
        self.anchor_wall = 0.0
        self.anchor_ts = feed.ts(feed.start_index) - 1
        self.anchored_pass = 0
        self.end_wall: float | None = None
        self.speed_zero_ms = self.anchor_ts


class ReplayServer:
    """Serve tapes as OKX (``protocol="okx"``), as Binance spot + USDⓈ-M (``"binance"``, see
    :mod:`data.replay.binance`) or as Bybit v5 spot + linear (``"bybit"``, :mod:`data.replay.bybit`). ``tapes`` maps
    our symbol (``BTC-USDT``, ``BTC-USDT-SWAP``) to a tape."""

    def __init__(self, tapes: Mapping[str, Tape], *, speed: float = 1.0, loop: bool = False,
                 host: str = "127.0.0.1", port: int = 0, history_ms: int = 0, idle_timeout: float = 30.0,
                 max_push_trades: int = MAX_PUSH_TRADES, passes: int | None = None, protocol: str = "okx",
                 depth: Mapping[str, DepthCapture] | None = None,
                 funding: Mapping[str, Sequence[tuple[int, float]]] | None = None,
                 okx_books: Mapping[str, Sequence[dict[str, object]]] | None = None) -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0, got {speed}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        self.protocol = protocol
        self.speed = speed
        self.host = host
        self.idle_timeout = idle_timeout
        self.max_push_trades = max_push_trades
        self.feeds = {s: Feed(s, t, loop=loop, history_ms=history_ms, passes=passes) for s, t in tapes.items()}
        self._runners = {s: _Runner(f) for s, f in self.feeds.items()}
        unknown = set(depth or ()) - set(self.feeds)
        if unknown:
            raise ValueError(f"depth captures need a tape of the same symbol: {', '.join(sorted(unknown))}")
        if depth and protocol != "binance":
            raise ValueError("the replay serves order books on the Binance protocol only")
        self.depth_feeds = {s: DepthFeed(c, shift_ms=self.feeds[s].shift_ms) for s, c in (depth or {}).items()}
        self._depth_drops: dict[str, int] = {}
        unknown = {s for s in funding or () if s not in self.feeds or not s.endswith("-SWAP")}
        if unknown:
            raise ValueError(f"funding histories need a swap tape of the same symbol: {', '.join(sorted(unknown))}")
        # (settlement time ms, rate), oldest first: the OKX funding-rate channel's current period at each moment
        self.funding = {s: sorted(rows) for s, rows in (funding or {}).items()}
        self.funding_interval_s = 30.0  # market time between two funding-rate pushes (OKX: every 30-90 s)
        if okx_books and (protocol != "okx" or set(okx_books) - set(self.feeds)):
            raise ValueError("OKX books captures need the okx protocol and a tape of the same symbol")
        self.okx_book_feeds = {s: OkxBookFeed(s, pushes) for s, pushes in (okx_books or {}).items()}
        self._book_drops: dict[str, int] = {}
        self._requested_port = port
        self._conns: set[_Conn] = set()
        self._conn_ids = itertools.count(1)
        self._started = asyncio.Event()
        self._running = asyncio.Event()
        self._running.set()
        self._subscribers_changed = asyncio.Event()
        self._stalled_until = 0.0
        self._rest_failures: list[tuple[int, str]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._site: web.TCPSite | None = None
        self._app_runner: web.AppRunner | None = None
        self.port = 0
        self.refuse_subscriptions = False
        self.trade_history_limit: int | None = None  # REST history-trades reaches back only this many ids
        self.ack_delay = 0.0  # > 0: subscribe acks are sent this late, trade pushes start at once
        self.stats = ReplayStats(trades_sent={s: 0 for s in self.feeds}, depth_sent={s: 0 for s in self.depth_feeds},
                                 depth_dropped={s: 0 for s in self.depth_feeds})

    # ------------------------------------------------------------------ lifecycle

    @property
    def ws_url(self) -> str:
        """The public socket (Binance: the spot ``/ws``, Bybit: ``/v5/public/spot``; :attr:`perp_ws_url` is their
        perpetuals' one)."""
        path = {"binance": "/ws", "bybit": bybit.SPOT_PATH}.get(self.protocol, WS_PATH)
        return f"ws://{self.host}:{self.port}{path}"

    @property
    def usdm_ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{binance.USDM_PREFIX}/ws"

    @property
    def perp_ws_url(self) -> str | None:
        """The perpetuals' socket of a venue that has one apart (Binance USDⓈ-M, Bybit linear); OKX: None."""
        if self.protocol == "binance":
            return self.usdm_ws_url
        if self.protocol == "bybit":
            return f"ws://{self.host}:{self.port}{bybit.LINEAR_PATH}"
        return None

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> ReplayServer:
        app = web.Application()
        if self.protocol == "binance":
            binance.BinanceProtocol(self).add_routes(app)
        elif self.protocol == "bybit":
            bybit.BybitProtocol(self).add_routes(app)
        else:
            app.router.add_get(WS_PATH, self._ws_handler)
            app.router.add_get("/api/v5/market/history-candles", self._history_candles)
            app.router.add_get("/api/v5/market/candles", self._candles)
            app.router.add_get("/api/v5/public/time", self._time)
            app.router.add_get("/api/v5/market/history-trades", self._history_trades)
            app.router.add_get("/api/v5/public/instruments", self._instruments)
        self._app_runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._app_runner.setup()
        self._site = web.TCPSite(self._app_runner, self.host, self._requested_port)
        await self._site.start()
        server = self._site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        for symbol in self.feeds:
            self._tasks.append(asyncio.create_task(self._run_feed(symbol), name=f"replay {symbol}"))
        for symbol in self.depth_feeds:
            self._tasks.append(asyncio.create_task(self._run_depth(symbol), name=f"replay depth {symbol}"))
        for symbol in self.funding:
            self._tasks.append(asyncio.create_task(self._run_funding(symbol), name=f"replay funding {symbol}"))
        for symbol in self.okx_book_feeds:
            self._tasks.append(asyncio.create_task(self._run_okx_books(symbol), name=f"replay books {symbol}"))
        self._tasks.append(asyncio.create_task(self._idle_watchdog(), name="replay idle"))
        return self

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(), 1.0)
        if self._app_runner is not None:
            await self._app_runner.cleanup()

    async def __aenter__(self) -> ReplayServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ fault controls

    async def drop_connections(self) -> int:
        """Abort every WebSocket connection at the TCP level (no close frame). Returns how many."""
        conns = list(self._conns)
        for conn in conns:
            if isinstance(conn.transport, asyncio.Transport):
                conn.transport.abort()
            self._conns.discard(conn)
        self._subscribers_changed.set()
        return len(conns)

    async def send_raw(self, text: str) -> None:
        """Send ``text`` as a frame to every connection (garbage, unknown events…)."""
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await conn.ws.send_str(text)

    def stall(self, seconds: float) -> None:
        """Go silent for ``seconds``: no pushes, no pong (the market keeps moving)."""
        self._stalled_until = asyncio.get_running_loop().time() + seconds

    def fail_rest(self, times: int, code: str = "50011", status: int = 429) -> None:
        """Answer the next ``times`` REST requests with an OKX error (default: rate limited)."""
        self._rest_failures.extend([(status, code)] * times)

    def drop_depth(self, symbol: str, count: int = 1) -> None:
        """Do not send the next ``count`` depth updates of ``symbol`` (the exchange's book still applies them):
        a sequence gap for every client."""
        self._depth_drops[symbol] = self._depth_drops.get(symbol, 0) + count

    def drop_book_update(self, symbol: str, count: int = 1) -> None:
        """OKX: do not send the next ``count`` ``books`` updates of ``symbol`` (the exchange's book applies them)."""
        self._book_drops[symbol] = self._book_drops.get(symbol, 0) + count

    def pause(self) -> None:
        """Stop the market clock (nothing is sent until :meth:`resume`)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def market_ms(self, symbol: str) -> int:
        """The market time of ``symbol`` now (what REST considers complete is before it)."""
        runner = self._runners[symbol]
        if not self._started.is_set() or runner.anchor_wall == 0.0:  # its feed task has not anchored yet
            return runner.anchor_ts
        if self.speed == 0 or runner.end_wall is not None:
            return runner.speed_zero_ms
        now = asyncio.get_running_loop().time()
        return int(runner.anchor_ts + (now - runner.anchor_wall) * 1000 * self.speed)

    def position(self, symbol: str) -> int:
        """Index (across loop passes) of the next trade to send."""
        return self._runners[symbol].cursor

    # ------------------------------------------------------------------ market

    def _stalled(self) -> bool:
        return asyncio.get_running_loop().time() < self._stalled_until

    async def _run_feed(self, symbol: str) -> None:
        runner = self._runners[symbol]
        feed = runner.feed
        await self._started.wait()
        loop = asyncio.get_running_loop()
        runner.anchor_wall = loop.time()
        runner.anchor_ts = feed.ts(runner.cursor)
        while True:
            await self._running.wait()
            now = loop.time()
            if feed.exhausted(runner.cursor):
                if runner.end_wall is None:
                    runner.end_wall = now
                # After the last trade the market clock keeps the replay's pace (600x for speed 0), so REST
                # server time says the last minute is over as soon as it would be with more trades.
                pace = self.speed or END_PACE
                runner.speed_zero_ms = feed.ts(runner.cursor - 1) + 1 + int((now - runner.end_wall) * 1000 * pace)
                await asyncio.sleep(0.05)
                continue
            current_pass = runner.cursor // feed.size
            if current_pass != runner.anchored_pass:  # skip the empty days between loop passes
                runner.anchored_pass = current_pass
                runner.anchor_ts = feed.ts(runner.cursor)
                runner.anchor_wall = now
            if self.speed == 0:
                if not self._has_subscribers(symbol):
                    self._subscribers_changed.clear()
                    await self._subscribers_changed.wait()
                    continue
                end = feed.group_end(runner.cursor, runner.cursor + self.max_push_trades,
                                     self.max_push_trades, same_ts_side=False)
                end = feed.clamp(end)
                await self._deliver(symbol, runner.cursor, end)
                runner.cursor = end
                runner.speed_zero_ms = feed.ts(end) if not feed.exhausted(end) else feed.ts(end - 1) + 1
                continue
            due = runner.anchor_wall + (feed.ts(runner.cursor) - runner.anchor_ts) / 1000 / self.speed
            if due > now:
                await asyncio.sleep(min(due - now, 0.25))
                continue
            market = int(runner.anchor_ts + (now - runner.anchor_wall) * 1000 * self.speed)
            limit = feed.clamp(feed.first_index_after(runner.cursor, market))
            while runner.cursor < limit:
                end = feed.group_end(runner.cursor, limit, self.max_push_trades, same_ts_side=True)
                await self._deliver(symbol, runner.cursor, end)
                runner.cursor = end

    async def _run_depth(self, symbol: str) -> None:
        """Send ``symbol``'s depth events as the market clock passes their event time."""
        feed, trades = self.depth_feeds[symbol], self.feeds[symbol]
        passes = 1 if not trades.loop else (None if trades.end_index is None else trades.end_index // trades.size)
        end = None if passes is None else feed.size * passes
        await self._started.wait()
        index = 0
        while end is None or index < end:
            await self._running.wait()
            market = self.market_ms(symbol)
            while (end is None or index < end) and feed.ts(index) <= market:
                event = feed.event(index)
                feed.sent(index, event)
                index += 1
                if self._depth_drops.get(symbol):
                    self._depth_drops[symbol] -= 1
                    self.stats.depth_dropped[symbol] += 1
                    continue
                await self._send_depth(symbol, event)
            await asyncio.sleep(0.02)

    async def _run_okx_books(self, symbol: str) -> None:
        """Apply and send ``symbol``'s captured ``books`` pushes as the market clock passes their ``ts``."""
        feed = self.okx_book_feeds[symbol]
        await self._started.wait()
        index = 0
        while index < len(feed):
            await self._running.wait()
            market = self.market_ms(symbol)
            while index < len(feed) and feed.ts[index] <= market:
                push = feed.apply(index)
                index += 1
                dropped = push.get("action") == "update" and self._book_drops.get(symbol, 0) > 0
                if dropped:
                    self._book_drops[symbol] -= 1
                await self._send_books(symbol, feed, push, dropped)
            await asyncio.sleep(0.02)

    async def _send_books(self, symbol: str, feed: OkxBookFeed, push: dict[str, object], dropped: bool) -> None:
        if self._stalled():
            return
        ts = int(push["data"][0]["ts"])  # type: ignore[index]
        raw = None
        for conn in list(self._conns):
            channel = conn.books.get(symbol)
            if channel is None:
                continue
            if channel == "books5":
                text: str | None = feed.top5(ts)
            elif symbol in conn.book_ready:
                text = None if dropped else (raw := raw or json.dumps(push, separators=(",", ":")))
            else:
                text = feed.snapshot(ts)
                conn.book_ready.add(symbol)
            if text is not None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.send_str(text)

    async def _book_channel(self, conn: _Conn, op: str, arg: dict[str, object], req_id: object) -> bool:
        """``books``/``books5`` of a tape's symbol: acked; with a captured book a ``books`` subscriber then gets a
        snapshot of the exchange's book (at once, when the capture has started), without one nothing follows."""
        channel, symbol = arg.get("channel"), arg.get("instId")
        if channel not in ("books", "books5") or symbol not in self.feeds:
            return False
        assert isinstance(symbol, str) and isinstance(channel, str)
        if symbol not in self.okx_book_feeds:  # no recording of its book: acked, and it stays silent
            await self._reply(conn, {"event": op, "arg": {"channel": channel, "instId": symbol}}, req_id)
            return True
        conn.book_ready.discard(symbol)
        if op == "subscribe":
            conn.books[symbol] = channel
        else:
            conn.books.pop(symbol, None)
        await self._reply(conn, {"event": op, "arg": {"channel": channel, "instId": symbol}}, req_id)
        feed = self.okx_book_feeds[symbol]
        if op == "subscribe" and channel == "books" and feed.sync.ready:
            snapshot = feed.snapshot(self.market_ms(symbol))
            if snapshot is not None:
                conn.book_ready.add(symbol)
                await conn.ws.send_str(snapshot)
        return True

    def funding_push(self, symbol: str) -> str | None:
        """The ``funding-rate`` push of ``symbol`` at its market time: the period the next settlement closes,
        reported at the rate it settled at (the recorded history), or None past the history's end."""
        runner = self._runners[symbol]
        shift = runner.anchored_pass * runner.feed.shift_ms  # a later loop pass is shifted
        market = self.market_ms(symbol)
        rows = self.funding[symbol]
        i = bisect.bisect_right(rows, (market - shift, math.inf))  # the first settlement after the market time
        if i == len(rows):
            return None
        at, rate = rows[i][0] + shift, rows[i][1]
        after = rows[i + 1][0] + shift if i + 1 < len(rows) else at + 8 * 3_600_000
        item = {"instType": "SWAP", "instId": symbol, "method": "current_period", "fundingRate": repr(rate),
                "nextFundingRate": "", "fundingTime": str(at), "nextFundingTime": str(after), "ts": str(market)}
        return json.dumps({"arg": {"channel": "funding-rate", "instId": symbol}, "data": [item]},
                          separators=(",", ":"))

    async def _run_funding(self, symbol: str) -> None:
        """A ``funding-rate`` push every ``funding_interval_s`` of market time to the connections subscribed."""
        await self._started.wait()
        last = None
        while True:
            await self._running.wait()
            market = self.market_ms(symbol)
            if last is None or market - last >= self.funding_interval_s * 1000:
                last = market
                text = self.funding_push(symbol)
                for conn in list(self._conns):
                    if text is not None and symbol in conn.funding and not self._stalled():
                        with contextlib.suppress(ConnectionError, RuntimeError):
                            await conn.ws.send_str(text)
            await asyncio.sleep(0.05)

    async def _send_depth(self, symbol: str, event: dict[str, object]) -> None:
        if self._stalled():
            return
        self.stats.depth_sent[symbol] += 1
        raw: str | None = None
        for conn in list(self._conns):
            stream = conn.depth.get(symbol)
            if stream is None or conn.ws.closed:
                continue
            if conn.combined:
                text = orjson.dumps({"stream": stream, "data": event}).decode()
            else:
                raw = raw or orjson.dumps(event).decode()
                text = raw
            try:
                await conn.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                self._conns.discard(conn)

    def _has_subscribers(self, symbol: str) -> bool:
        return any(symbol in c.symbols for c in self._conns)

    async def _deliver(self, symbol: str, start: int, end: int) -> None:
        """Trades ``[start, end)`` of ``symbol`` to its subscribers: one OKX or Bybit push, or one Binance frame
        each."""
        if self.protocol == "okx":
            await self._send(symbol, self.feeds[symbol].push(start, end), end - start)
        elif self.protocol == "bybit":
            linear = symbol.endswith("-SWAP")
            text = self.feeds[symbol].bybit_push(start, end, bybit.venue_symbol(symbol), linear=linear)
            await self._send(symbol, text, end - start)
        else:
            await self._send_binance(symbol, start, end)

    async def _send(self, symbol: str, text: str, trades: int) -> None:
        await self._fan_out(symbol, trades, lambda conn: (text,))

    async def _send_binance(self, symbol: str, start: int, end: int) -> None:
        feed = self.feeds[symbol]
        frames: dict[bool, list[str]] = {}  # built once per framing (raw /ws, combined /stream)

        def frames_for(conn: _Conn) -> list[str]:
            texts = frames.get(conn.combined)
            if texts is None:
                texts = frames[conn.combined] = feed.binance_frames(
                    start, end, binance.venue_symbol(symbol), usdm=symbol.endswith("-SWAP"), combined=conn.combined)
            return texts

        await self._fan_out(symbol, end - start, frames_for)

    async def _fan_out(self, symbol: str, trades: int, frames_for: Callable[[_Conn], Sequence[str]]) -> None:
        """Send ``frames_for(conn)`` to every connection subscribed to ``symbol`` (nothing while stalled)."""
        if self._stalled():
            return
        self.stats.trades_sent[symbol] += trades
        now = asyncio.get_running_loop().time()
        for conn in list(self._conns):
            if symbol in conn.symbols and not conn.ws.closed:
                try:
                    for text in frames_for(conn):
                        await conn.ws.send_str(text)
                    conn.last_activity = now
                except (ConnectionError, RuntimeError):
                    self._conns.discard(conn)

    async def _idle_watchdog(self) -> None:
        """OKX closes a connection that has neither subscribed nor been pushed anything for 30 s."""
        while self.protocol == "okx":
            await asyncio.sleep(min(self.idle_timeout / 4, 1.0))
            now = asyncio.get_running_loop().time()
            for conn in list(self._conns):
                if now - conn.last_activity > self.idle_timeout:
                    self._conns.discard(conn)
                    with contextlib.suppress(Exception):
                        await conn.ws.close(code=4000, message=b"idle")

    # ------------------------------------------------------------------ WebSocket

    async def _ws_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, compress=False)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        conn = self._open_conn(ws, request.transport)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                if self._stalled():
                    continue
                conn.last_activity = loop.time()
                if msg.data == "ping":
                    self.stats.pings += 1
                    await ws.send_str("pong")
                    continue
                await self._handle_request(conn, msg.data)
        finally:
            self._conns.discard(conn)
            self._subscribers_changed.set()
        return ws

    def _open_conn(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None, *,
                   combined: bool = False, usdm: bool = False) -> _Conn:
        conn = _Conn(ws, transport, f"{next(self._conn_ids):08x}", asyncio.get_running_loop().time(),
                     combined=combined, usdm=usdm)
        self._conns.add(conn)
        self.stats.connections += 1
        return conn

    async def _handle_request(self, conn: _Conn, text: str) -> None:
        try:
            request = json.loads(text)
            op, args = request["op"], request["args"]
            if not isinstance(args, list):
                raise TypeError("args must be a list")
        except (ValueError, KeyError, TypeError):
            await self._reply(conn, {"event": "error", "code": "60012", "msg": f"Invalid request: {text}"})
            return
        req_id = request.get("id")
        if op not in ("subscribe", "unsubscribe"):
            await self._reply(conn, {"event": "error", "code": "60019", "msg": f"Invalid op: {op}"}, req_id)
            return
        self.stats.subscribe_requests += 1
        for arg in args:
            channel = arg.get("channel") if isinstance(arg, dict) else None
            symbol = arg.get("instId") if isinstance(arg, dict) else None
            if not self.refuse_subscriptions and await self._state_channel(conn, op, arg, req_id):
                continue
            if self.refuse_subscriptions or channel != "trades" or symbol not in self.feeds:
                await self._reply(conn, {"event": "error", "code": "60018",
                                         "msg": f"Wrong URL or channel:{channel},instId:{symbol} doesn't exist"},
                                  req_id)
                continue
            if op == "subscribe":
                conn.symbols.add(symbol)
            else:
                conn.symbols.discard(symbol)
            ack = {"event": op, "arg": {"channel": "trades", "instId": symbol}}
            if op == "subscribe" and self.ack_delay > 0:  # pushes flow at once; the ack comes late
                self._tasks.append(asyncio.create_task(self._late_reply(conn, ack, req_id, self.ack_delay)))
                continue
            await self._reply(conn, ack, req_id)
        self._subscribers_changed.set()
        if conn.symbols or conn.books or conn.funding:  # the market opens at the first subscription
            self._started.set()

    async def _state_channel(self, conn: _Conn, op: str, arg: object, req_id: object) -> bool:
        """``funding-rate``/``open-interest`` of a swap tape and ``liquidation-orders`` by ``instType``: acked
        (True) as OKX does. Funding pushes come from the recorded history when the replay has one; open interest
        and liquidations have no recording behind them, so those subscriptions stay silent."""
        if not isinstance(arg, dict):
            return False
        if await self._book_channel(conn, op, arg, req_id):
            return True
        channel, symbol = arg.get("channel"), arg.get("instId")
        if channel == "liquidation-orders" and arg.get("instType") in ("SWAP", "FUTURES", "MARGIN", "OPTION"):
            await self._reply(conn, {"event": op, "arg": {"channel": channel, "instType": arg["instType"]}}, req_id)
            return True
        if channel in ("funding-rate", "open-interest") and symbol in self.feeds and str(symbol).endswith("-SWAP"):
            if channel == "funding-rate":
                (conn.funding.add if op == "subscribe" else conn.funding.discard)(symbol)
            await self._reply(conn, {"event": op, "arg": {"channel": channel, "instId": symbol}}, req_id)
            return True
        return False

    async def _late_reply(self, conn: _Conn, body: dict[str, object], req_id: object, delay: float) -> None:
        await asyncio.sleep(delay)
        with contextlib.suppress(Exception):
            await self._reply(conn, body, req_id)

    async def _reply(self, conn: _Conn, body: dict[str, object], req_id: object = None) -> None:
        if req_id is not None:
            body = {"id": req_id, **body}
        body["connId"] = conn.conn_id
        await conn.ws.send_str(json.dumps(body, separators=(",", ":")))

    # ------------------------------------------------------------------ REST

    def _rest_error(self) -> web.Response | None:
        self.stats.rest_requests += 1
        if self._rest_failures:
            status, code = self._rest_failures.pop(0)
            return web.json_response({"code": code, "msg": "Too Many Requests" if code == "50011" else "error",
                                      "data": []}, status=status)
        return None

    async def _history_candles(self, request: web.Request) -> web.Response:
        return self._candle_reply(request, include_forming=False)

    async def _candles(self, request: web.Request) -> web.Response:
        return self._candle_reply(request, include_forming=True)

    def _paging(self, request: web.Request, only: tuple[str, str, str], max_limit: int
                ) -> web.Response | tuple[str, int | None, int | None, int]:
        """``instId, after, before, limit`` of a paged REST request, or the OKX error reply (``only``: the one
        value a parameter may have, and the message otherwise)."""
        failure = self._rest_error()
        if failure is not None:
            return failure
        q = request.query
        symbol = q.get("instId", "")
        if symbol not in self.feeds:
            return web.json_response({"code": "51001", "msg": "Instrument ID does not exist", "data": []})
        name, value, message = only
        if q.get(name, value) != value:
            return web.json_response({"code": "51000", "msg": message, "data": []})
        try:
            after = int(q["after"]) if q.get("after") else None
            before = int(q["before"]) if q.get("before") else None
            limit = max(1, min(int(q.get("limit", "100")), max_limit))
        except ValueError:
            return web.json_response({"code": "51000", "msg": "Parameter error", "data": []})
        return symbol, after, before, limit

    def _candle_reply(self, request: web.Request, *, include_forming: bool) -> web.Response:
        parsed = self._paging(request, ("bar", "1m", "Parameter bar error (replay serves 1m)"), 300)
        if isinstance(parsed, web.Response):
            return parsed
        symbol, after, before, limit = parsed
        rows = [bar.okx_row(confirmed) for bar, confirmed in
                self.feeds[symbol].history(self.market_ms(symbol), after=after, before=before, limit=limit,
                                           include_forming=include_forming)]
        return web.json_response({"code": "0", "msg": "", "data": rows})

    async def _history_trades(self, request: web.Request) -> web.Response:
        """``history-trades`` with ``type=1``: pages by tradeId (``after``: older than, ``before``: newer
        than), newest first, at most 100; ``trade_history_limit`` keeps only that many trades back."""
        parsed = self._paging(request, ("type", "1", "Parameter type error (replay pages by tradeId)"), 100)
        if isinstance(parsed, web.Response):
            return parsed
        symbol, after, before, limit = parsed
        feed = self.feeds[symbol]
        market = self.market_ms(symbol)
        if self.trade_history_limit is not None:
            newest = feed.history_trades(market, limit=1)
            if newest:
                floor = int(newest[0]["tradeId"]) - self.trade_history_limit
                before = floor if before is None else max(before, floor)
        rows = feed.history_trades(market, after=after, before=before, limit=limit)
        return web.json_response({"code": "0", "msg": "", "data": rows})

    async def _instruments(self, request: web.Request) -> web.Response:
        """``public/instruments`` for the tapes' symbols (``instType`` required; ``-SWAP`` ids are SWAP)."""
        failure = self._rest_error()
        if failure is not None:
            return failure
        inst_type = request.query.get("instType", "")
        if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
            return web.json_response({"code": "51000", "msg": "Parameter instType error", "data": []})
        wanted = request.query.get("instId")
        rows = []
        for symbol in self.feeds:
            kind = "SWAP" if symbol.endswith("-SWAP") else "SPOT"
            if kind == inst_type and wanted in (None, symbol):
                base, quote = symbol.split("-")[:2] if "-" in symbol else (symbol, "")
                rows.append({"instId": symbol, "instType": kind, "baseCcy": base, "quoteCcy": quote,
                             "state": "live"})
        return web.json_response({"code": "0", "msg": "", "data": rows})

    async def _time(self, request: web.Request) -> web.Response:
        failure = self._rest_error()
        if failure is not None:
            return failure
        symbol = next(iter(self.feeds))
        return web.json_response({"code": "0", "msg": "", "data": [{"ts": str(self.market_ms(symbol))}]})
