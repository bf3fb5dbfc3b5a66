"""The replay's Binance face: spot and USDⓈ-M public sockets and the REST market-data calls the collector
uses, served from the same tapes and market clock as the OKX face (:mod:`data.replay.server`).

Sockets: ``/ws`` and ``/stream`` (spot; raw events and combined-stream envelopes, ``/stream?streams=a/b``
subscribes at connect), and the same under :data:`USDM_PREFIX` for USDⓈ-M. Requests ``SUBSCRIBE``,
``UNSUBSCRIBE`` and ``LIST_SUBSCRIPTIONS`` are answered ``{"result":...,"id":N}``; a request that is not
one of them, or has no integer id, gets ``{"code":2,"msg":"Invalid request: ..."}``. A stream of an
unknown market is accepted and stays silent, as on Binance. A symbol ending ``-SWAP`` is served on the
USDⓈ-M endpoints (its frames carry ``"X":"MARKET"``), the others on spot.

Order books (when the server has a depth capture of the market, :mod:`data.replay.depth`): the streams
``<pair>@depth`` and ``<pair>@depth@<speed>`` all send the captured events (the capture's update rate, whatever
the speed asked), and REST ``depth`` (``limit``, default 100 spot / 500 USDⓈ-M, at most 5000 / 1000) answers
the exchange's book at the market time.

REST (``/api/v3`` spot, ``/fapi/v1`` USDⓈ-M): ``klines`` (1m only, oldest first, the forming minute
included as Binance does), ``historicalTrades`` (``fromId``), ``time``, ``exchangeInfo``, ``depth``. Errors use
Binance's shape: ``{"code":-1121,"msg":"Invalid symbol."}`` with HTTP 400; :meth:`ReplayServer.fail_rest`
answers 429 with code -1003.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from data.replay.server import ReplayServer, _Conn

USDM_PREFIX = "/usdm"
KLINE_LIMIT = 1000
TRADE_LIMIT = 1000
_API = {False: "/api/v3", True: "/fapi/v1"}
DEPTH_STREAMS = ("depth", "depth@100ms", "depth@0ms", "depth@250ms", "depth@500ms", "depth@1000ms")
DEPTH_LIMIT = {False: (100, 5000), True: (500, 1000)}  # (default, most) levels per side


def venue_symbol(symbol: str) -> str:
    """Binance's name of one of ours: ``BTC-USDT`` and ``BTC-USDT-SWAP`` are both ``BTCUSDT``."""
    return "".join(symbol.split("-")[:2])


class BinanceProtocol:
    """Routes of one :class:`~data.replay.server.ReplayServer` speaking Binance."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        # (usdm, BTCUSDT) -> our symbol, for the tapes this replay holds
        self.names = {(s.endswith("-SWAP"), venue_symbol(s)): s for s in server.feeds}

    def add_routes(self, app: web.Application) -> None:
        for usdm, prefix in ((False, ""), (True, USDM_PREFIX)):
            app.router.add_get(f"{prefix}/ws", self._socket(usdm, combined=False))
            app.router.add_get(f"{prefix}/stream", self._socket(usdm, combined=True))
            api = _API[usdm]
            app.router.add_get(f"{api}/klines", self._rest(usdm, self._klines))
            app.router.add_get(f"{api}/historicalTrades", self._rest(usdm, self._trades))
            app.router.add_get(f"{api}/time", self._rest(usdm, self._time))
            app.router.add_get(f"{api}/exchangeInfo", self._rest(usdm, self._info))
            app.router.add_get(f"{api}/depth", self._rest(usdm, self._depth))

    # ------------------------------------------------------------------ WebSocket

    def _socket(self, usdm: bool, *, combined: bool):  # noqa: ANN202 - an aiohttp handler
        async def handler(request: web.Request) -> web.WebSocketResponse:
            return await self._serve(request, usdm, combined)
        return handler

    async def _serve(self, request: web.Request, usdm: bool, combined: bool) -> web.WebSocketResponse:
        server = self.server
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, compress=False)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        conn = server._open_conn(ws, request.transport, combined=combined, usdm=usdm)
        streams: set[str] = set()
        if combined and request.query.get("streams"):
            self._change(conn, streams, request.query["streams"].split("/"), add=True)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT or server._stalled():
                    continue
                conn.last_activity = loop.time()
                await self._request(conn, streams, msg.data)
        finally:
            server._conns.discard(conn)
            server._subscribers_changed.set()
        return ws

    async def _request(self, conn: _Conn, streams: set[str], text: str) -> None:
        server = self.server
        try:
            request = json.loads(text)
            method, req_id = request["method"], request["id"]
            params = request.get("params", [])
            if type(req_id) is not int or not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                raise TypeError("id must be an integer and params a list of stream names")
            if method not in ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS"):
                raise ValueError(f"unknown method {method!r}")
        except (ValueError, KeyError, TypeError) as exc:
            await conn.ws.send_str(json.dumps({"code": 2, "msg": f"Invalid request: {exc}"}))
            return
        server.stats.subscribe_requests += 1
        if method == "LIST_SUBSCRIPTIONS":
            await conn.ws.send_str(json.dumps({"result": sorted(streams), "id": req_id}))
            return
        if server.refuse_subscriptions:
            await conn.ws.send_str(json.dumps({"code": 2, "msg": "Invalid request: subscriptions refused",
                                               "id": req_id}))
            return
        self._change(conn, streams, params, add=method == "SUBSCRIBE")
        await conn.ws.send_str(json.dumps({"result": None, "id": req_id}))

    def _change(self, conn: _Conn, streams: set[str], names: list[str], *, add: bool) -> None:
        for name in names:
            (streams.add if add else streams.discard)(name)
            pair, _, channel = name.partition("@")
            symbol = self.names.get((conn.usdm, pair.upper()))
            if symbol is None:
                continue  # Binance accepts any well-formed stream name; ours stay silent
            if channel == "trade":
                (conn.symbols.add if add else conn.symbols.discard)(symbol)
            elif channel in DEPTH_STREAMS and symbol in self.server.depth_feeds:
                if add:
                    conn.depth[symbol] = name
                else:
                    conn.depth.pop(symbol, None)
        self.server._subscribers_changed.set()
        if conn.symbols or conn.depth:
            self.server._started.set()

    # ------------------------------------------------------------------ REST

    def _rest(self, usdm: bool, call):  # noqa: ANN001, ANN202 - an aiohttp handler around ``call``
        async def handler(request: web.Request) -> web.Response:
            server = self.server
            server.stats.rest_requests += 1
            if server._rest_failures:
                status, _ = server._rest_failures.pop(0)
                return web.json_response({"code": -1003, "msg": "Too many requests."}, status=status)
            try:
                return call(request, usdm)
            except ValueError as exc:
                return web.json_response({"code": -1100, "msg": f"Illegal characters in parameter: {exc}"},
                                         status=400)
        return handler

    def _symbol(self, request: web.Request, usdm: bool) -> str | web.Response:
        symbol = self.names.get((usdm, request.query.get("symbol", "")))
        if symbol is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        return symbol

    def _klines(self, request: web.Request, usdm: bool) -> web.Response:
        symbol = self._symbol(request, usdm)
        if isinstance(symbol, web.Response):
            return symbol
        q = request.query
        if q.get("interval") != "1m":
            return web.json_response({"code": -1120, "msg": "Invalid interval (the replay serves 1m)."},
                                     status=400)
        limit = max(1, min(int(q.get("limit", "500")), KLINE_LIMIT))
        start = int(q["startTime"]) if q.get("startTime") else None
        end = int(q["endTime"]) if q.get("endTime") else None
        feed = self.server.feeds[symbol]
        bars = [bar for bar, _ in feed.history(self.server.market_ms(symbol),
                                               after=None if end is None else end + 1,
                                               before=None if start is None else start - 1,
                                               limit=1 << 30, include_forming=True)]
        bars.sort(key=lambda b: b.open_ms)
        bars = bars[:limit] if start is not None else bars[-limit:]
        return web.json_response([b.binance_row() for b in bars])

    def _trades(self, request: web.Request, usdm: bool) -> web.Response:
        symbol = self._symbol(request, usdm)
        if isinstance(symbol, web.Response):
            return symbol
        q = request.query
        limit = max(1, min(int(q.get("limit", "500")), TRADE_LIMIT))
        from_id = int(q["fromId"]) if q.get("fromId") else None
        server = self.server
        rows = server.feeds[symbol].trades_from(server.market_ms(symbol), from_id, limit)
        return web.json_response(rows)

    def _depth(self, request: web.Request, usdm: bool) -> web.Response:
        symbol = self._symbol(request, usdm)
        if isinstance(symbol, web.Response):
            return symbol
        feed = self.server.depth_feeds.get(symbol)
        if feed is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol (the replay has no book of it)."},
                                     status=400)
        default, most = DEPTH_LIMIT[usdm]
        limit = int(request.query.get("limit", default))
        if not 1 <= limit <= most:
            return web.json_response({"code": -1100, "msg": f"limit must be 1..{most}"}, status=400)
        return web.json_response(feed.snapshot(limit, self.server.market_ms(symbol)))

    def _time(self, request: web.Request, usdm: bool) -> web.Response:
        server = self.server
        symbols = [s for s in server.feeds if s.endswith("-SWAP") == usdm] or list(server.feeds)
        return web.json_response({"serverTime": server.market_ms(symbols[0])})

    def _info(self, request: web.Request, usdm: bool) -> web.Response:
        rows = []
        for (is_usdm, name), symbol in self.names.items():
            if is_usdm == usdm:
                base, quote = symbol.split("-")[:2]
                rows.append({"symbol": name, "status": "TRADING", "baseAsset": base, "quoteAsset": quote,
                             **({"contractType": "PERPETUAL"} if usdm else {})})
        return web.json_response({"timezone": "UTC", "serverTime": 0, "symbols": rows})

