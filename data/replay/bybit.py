"""The replay's Bybit v5 face: the spot and linear public sockets and the REST market calls the collector uses,
served from the same tapes and market clock as the OKX face (:mod:`data.replay.server`).

Sockets ``/v5/public/spot`` and ``/v5/public/linear`` (a symbol ending ``-SWAP`` is a linear market). Requests
``{"req_id":...,"op":"subscribe"|"unsubscribe","args":[topics]}`` are answered ``{"success":true,"ret_msg":"",
"conn_id":...,"req_id":...,"op":...}`` (spot: ``ret_msg`` is the op, and at most 10 args); ``{"op":"ping"}`` is
answered ``ret_msg:"pong"``. A topic of a market the replay has no tape of fails the request (``success:false``,
``ret_msg`` naming it; the wording is the replay's). ``publicTrade.<symbol>`` pushes the tape's trades, up to
``max_push_trades`` a push, oldest first; ``tickers``, ``orderbook.<depth>``, ``liquidation`` and
``allLiquidation`` of a tape's market are accepted and stay silent (nothing recorded behind them).

REST: ``/v5/market/kline`` (interval ``1`` only; newest first, the forming minute included, as Bybit does),
``/v5/market/recent-trade`` (the newest trades: spot at most 60, linear 1 000), ``/v5/market/time``,
``/v5/market/instruments-info``. Errors use Bybit's shape (``{"retCode":10001,"retMsg":...}``, HTTP 200);
:meth:`ReplayServer.fail_rest` answers HTTP 429 with ``retCode`` 10006.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from data.replay.market import bybit_exec_id

if TYPE_CHECKING:
    from data.replay.server import ReplayServer, _Conn

SPOT_PATH = "/v5/public/spot"
LINEAR_PATH = "/v5/public/linear"
KLINE_LIMIT = 1000
RECENT_LIMIT = {False: (60, 60), True: (500, 1000)}  # (default, most) trades
SPOT_MAX_ARGS = 10
SILENT_TOPICS = ("tickers", "orderbook", "liquidation", "allLiquidation")


def venue_symbol(symbol: str) -> str:
    return "".join(symbol.split("-")[:2])


class BybitProtocol:
    """Routes of one :class:`~data.replay.server.ReplayServer` speaking Bybit v5."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        # (linear, BTCUSDT) -> our symbol, for the tapes this replay holds
        self.names = {(s.endswith("-SWAP"), venue_symbol(s)): s for s in server.feeds}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(SPOT_PATH, self._socket(linear=False))
        app.router.add_get(LINEAR_PATH, self._socket(linear=True))
        app.router.add_get("/v5/market/kline", self._rest(self._kline))
        app.router.add_get("/v5/market/recent-trade", self._rest(self._recent_trades))
        app.router.add_get("/v5/market/time", self._rest(self._time))
        app.router.add_get("/v5/market/instruments-info", self._rest(self._instruments))

    # ------------------------------------------------------------------ WebSocket

    def _socket(self, *, linear: bool):  # noqa: ANN202 - an aiohttp handler
        async def handler(request: web.Request) -> web.WebSocketResponse:
            server = self.server
            ws = web.WebSocketResponse(autoping=True, heartbeat=None, compress=False)
            await ws.prepare(request)
            loop = asyncio.get_running_loop()
            conn = server._open_conn(ws, request.transport, usdm=linear)
            try:
                async for msg in ws:
                    if msg.type != WSMsgType.TEXT or server._stalled():
                        continue
                    conn.last_activity = loop.time()
                    await self._request(conn, msg.data)
            finally:
                server._conns.discard(conn)
                server._subscribers_changed.set()
            return ws
        return handler

    async def _answer(self, conn: _Conn, op: str, req_id: object, ok: bool, msg: str | None = None) -> None:
        body: dict[str, object] = {"success": ok, "ret_msg": msg if msg is not None else ("" if conn.usdm else op),
                                   "conn_id": conn.conn_id}
        if req_id is not None:
            body["req_id"] = req_id
        body["op"] = op
        await conn.ws.send_str(json.dumps(body, separators=(",", ":")))

    async def _request(self, conn: _Conn, text: str) -> None:
        server = self.server
        try:
            request = json.loads(text)
            op = request["op"]
            args = request.get("args", [])
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                raise TypeError("args must be a list of topics")
        except (ValueError, KeyError, TypeError) as exc:
            await self._answer(conn, "subscribe", None, False, f"error:invalid request: {exc}")
            return
        req_id = request.get("req_id")
        if op == "ping":
            server.stats.pings += 1
            await self._answer(conn, "ping", req_id, True, "pong")
            return
        if op not in ("subscribe", "unsubscribe"):
            await self._answer(conn, str(op), req_id, False, f"error:unknown op {op!r}")
            return
        server.stats.subscribe_requests += 1
        if not conn.usdm and len(args) > SPOT_MAX_ARGS:
            await self._answer(conn, op, req_id, False, f"error:args size >{SPOT_MAX_ARGS}")
            return
        unknown = [a for a in args if self._market(conn, a) is None]
        if server.refuse_subscriptions or unknown:
            await self._answer(conn, op, req_id, False, f"error:handler not found,topic:{','.join(unknown or args)}")
            return
        for topic in args:
            symbol = self._market(conn, topic)
            if topic.startswith("publicTrade."):
                (conn.symbols.add if op == "subscribe" else conn.symbols.discard)(symbol)  # type: ignore[arg-type]
        await self._answer(conn, op, req_id, True)
        server._subscribers_changed.set()
        if conn.symbols:
            server._started.set()

    def _market(self, conn: _Conn, topic: str) -> str | None:
        """Our symbol of a topic this socket serves (``publicTrade.BTCUSDT``, ``orderbook.50.BTCUSDT``...)."""
        channel, _, rest = topic.partition(".")
        if channel != "publicTrade" and channel not in SILENT_TOPICS:
            return None
        return self.names.get((conn.usdm, rest.rpartition(".")[2]))

    # ------------------------------------------------------------------ REST

    def _rest(self, call):  # noqa: ANN001, ANN202 - an aiohttp handler around ``call``
        async def handler(request: web.Request) -> web.Response:
            server = self.server
            server.stats.rest_requests += 1
            if server._rest_failures:
                status, _ = server._rest_failures.pop(0)
                return self._reply(None, status=status, code=10006, msg="Too many visits!")
            try:
                return call(request)
            except ValueError as exc:
                return self._reply(None, code=10001, msg=f"params error: {exc}")
        return handler

    def _reply(self, result: object, *, status: int = 200, code: int = 0, msg: str = "OK") -> web.Response:
        time_ms = self.server.market_ms(next(iter(self.server.feeds)))
        return web.json_response({"retCode": code, "retMsg": msg, "result": result if result is not None else {},
                                  "retExtInfo": {}, "time": time_ms}, status=status)

    def _symbol(self, request: web.Request) -> tuple[str, bool] | web.Response:
        category = request.query.get("category", "")
        if category not in ("spot", "linear"):
            return self._reply(None, code=10001, msg="params error: category (the replay serves spot, linear)")
        linear = category == "linear"
        symbol = self.names.get((linear, request.query.get("symbol", "")))
        if symbol is None:
            return self._reply(None, code=10001, msg="params error: symbol invalid")
        return symbol, linear

    def _kline(self, request: web.Request) -> web.Response:
        found = self._symbol(request)
        if isinstance(found, web.Response):
            return found
        symbol, linear = found
        q = request.query
        if q.get("interval") != "1":
            return self._reply(None, code=10001, msg="params error: interval (the replay serves 1)")
        limit = max(1, min(int(q.get("limit", "200")), KLINE_LIMIT))
        start = int(q["start"]) if q.get("start") else None
        end = int(q["end"]) if q.get("end") else None
        bars = self.server.feeds[symbol].history(self.server.market_ms(symbol),
                                                 after=None if end is None else end + 1,
                                                 before=None if start is None else start - 1,
                                                 limit=limit, include_forming=True)
        rows = [bar.bybit_row() for bar, _ in bars]  # newest first, like Bybit
        return self._reply({"category": q["category"], "symbol": q["symbol"], "list": rows})

    def _recent_trades(self, request: web.Request) -> web.Response:
        found = self._symbol(request)
        if isinstance(found, web.Response):
            return found
        symbol, linear = found
        default, most = RECENT_LIMIT[linear]
        limit = max(1, min(int(request.query.get("limit", default)), most))
        rows = self.server.feeds[symbol].history_trades(self.server.market_ms(symbol), limit=limit)
        venue = request.query["symbol"]
        out = [{"execId": bybit_exec_id(int(r["tradeId"])) if linear else r["tradeId"], "symbol": venue,
                "price": r["px"], "size": r["sz"], "side": "Buy" if r["side"] == "buy" else "Sell",
                "time": r["ts"], "isBlockTrade": False} for r in rows]
        return self._reply({"category": request.query["category"], "list": out})

    def _time(self, request: web.Request) -> web.Response:
        ms = self.server.market_ms(next(iter(self.server.feeds)))
        return self._reply({"timeSecond": str(ms // 1000), "timeNano": str(ms * 1_000_000)})

    def _instruments(self, request: web.Request) -> web.Response:
        category = request.query.get("category", "")
        if category not in ("spot", "linear"):
            return self._reply(None, code=10001, msg="params error: category (the replay serves spot, linear)")
        rows = []
        for (linear, name), symbol in self.names.items():
            if linear == (category == "linear"):
                base, quote = symbol.split("-")[:2]
                rows.append({"symbol": name, "status": "Trading", "baseCoin": base, "quoteCoin": quote,
                             **({"contractType": "LinearPerpetual"} if linear else {})})
        return self._reply({"category": category, "list": rows})
