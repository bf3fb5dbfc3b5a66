"""OKX REST market data: paginated 1m ``history-candles`` and ``history-trades`` with a rate limit and
retries, server time."""

from __future__ import annotations

import asyncio
import logging

import orjson

from config.domain import Candle, Side
from config.errors import MalformedMessageError
from data.http import PacedGet
from data.okx.frames import OkxRestError, WireTrade, parse_candle_rows

log = logging.getLogger(__name__)

HISTORY_CANDLES = "/api/v5/market/history-candles"
SERVER_TIME = "/api/v5/public/time"
HISTORY_TRADES = "/api/v5/market/history-trades"
INSTRUMENTS = "/api/v5/public/instruments"
PAGE_LIMIT = 100  # OKX documents 100 (2026: 300); 100 is safe everywhere
RATE_LIMITED = {"50011", "50013", "50001"}


class OkxRest:
    """Public REST calls. ``requests_per_second`` spaces requests (OKX: 20 per 2 s per IP)."""

    def __init__(self, base_url: str, *, requests_per_second: float = 9.0, timeout: float = 10.0,
                 retries: int = 5, retry_base: float = 0.5) -> None:
        self.base_url = base_url.rstrip("/")
        self._retries = retries
        self._retry_base = retry_base
        self._http = PacedGet("OKX", requests_per_second=requests_per_second, timeout=timeout, retries=retries,
                              retry_base=retry_base)

    @property
    def requests(self) -> int:
        return self._http.requests

    async def close(self) -> None:
        await self._http.close()

    async def _get(self, path: str, params: dict[str, str]) -> bytes:
        return await self._http(self.base_url + path, params)

    async def server_time_ms(self) -> int:
        body = await self._get(SERVER_TIME, {})
        try:
            return int(orjson.loads(body)["data"][0]["ts"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise MalformedMessageError("bad_rest_body", f"server time body {body[:200]!r}") from exc

    async def history_page(self, symbol: str, *, after: int | None = None, before: int | None = None,
                           limit: int = PAGE_LIMIT) -> list[Candle]:
        """One page of confirmed 1m candles (oldest first) with ``before < open < after``."""
        params = {"instId": symbol, "bar": "1m", "limit": str(limit)}
        if after is not None:
            params["after"] = str(after)
        if before is not None:
            params["before"] = str(before)
        for attempt in range(self._retries + 1):
            body = await self._get(HISTORY_CANDLES, params)
            try:
                return parse_candle_rows(body, symbol)
            except OkxRestError as exc:
                if exc.code not in RATE_LIMITED or attempt == self._retries:
                    raise
                await asyncio.sleep(self._retry_base * 2 ** attempt)
        raise AssertionError("unreachable")

    async def minute_candles(self, symbol: str, start_ms: int, end_ms: int) -> list[Candle]:
        """Confirmed 1m candles with ``start_ms <= open < end_ms``, oldest first (pages newest first)."""
        out: dict[int, Candle] = {}
        after = end_ms
        while after > start_ms:
            page = await self.history_page(symbol, after=after)
            if not page:
                break
            for c in page:
                if start_ms <= c.open_time_ms < end_ms:
                    out[c.open_time_ms] = c
            oldest = page[0].open_time_ms
            if oldest >= after:  # a server that ignores ``after`` would loop forever
                break
            after = oldest
        return [out[t] for t in sorted(out)]

    async def history_trades_page(self, symbol: str, *, after: int | None = None,
                                  limit: int = PAGE_LIMIT) -> list[WireTrade]:
        """One page of ``history-trades`` (``type=1``: trade ids older than ``after``), newest first."""
        params = {"instId": symbol, "type": "1", "limit": str(limit)}
        if after is not None:
            params["after"] = str(after)
        body = await self._get(HISTORY_TRADES, params)
        try:
            reply = orjson.loads(body)
            if reply.get("code") != "0":
                raise OkxRestError(str(reply.get("code")), str(reply.get("msg"))[:200])
            return [WireTrade(tradeId=int(r["tradeId"]), px=float(r["px"]), sz=float(r["sz"]), side=Side(r["side"]),
                              ts=int(r["ts"])) for r in reply["data"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MalformedMessageError("bad_rest_body", f"history-trades body {body[:200]!r}") from exc

    async def trades_between(self, symbol: str, after_id: int, before_id: int) -> tuple[list[WireTrade], bool]:
        """Trades with ``after_id < tradeId < before_id``, oldest first, and whether REST reached back to
        ``after_id`` (False: its history ends before the gap's start, the rest is lost)."""
        out: list[WireTrade] = []
        cursor = before_id
        while True:
            page = await self.history_trades_page(symbol, after=cursor)
            if not page:
                break
            oldest = min(t.tradeId for t in page)
            out.extend(t for t in page if after_id < t.tradeId < before_id)
            if oldest <= after_id:
                out.sort(key=lambda t: t.tradeId)
                return out, True
            if oldest >= cursor:  # a server that ignores ``after`` would loop forever
                break
            cursor = oldest
        out.sort(key=lambda t: t.tradeId)
        return out, False

    async def instrument_ids(self, inst_type: str) -> list[str]:
        """The ``instId`` of every instrument of ``inst_type`` (``SPOT``, ``SWAP``…) the venue lists."""
        body = await self._get(INSTRUMENTS, {"instType": inst_type})
        try:
            reply = orjson.loads(body)
            if reply.get("code") != "0":
                raise OkxRestError(str(reply.get("code")), str(reply.get("msg"))[:200])
            return [str(r["instId"]) for r in reply["data"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MalformedMessageError("bad_rest_body", f"instruments body {body[:200]!r}") from exc


def inst_type_of(symbol: str) -> str:
    """OKX's instType for an instId by its shape: ``-SWAP`` perpetuals, ``-YYMMDD`` futures, else spot."""
    parts = symbol.split("-")
    if parts[-1] == "SWAP":
        return "SWAP"
    if len(parts) == 3 and parts[-1].isdigit():
        return "FUTURES"
    if len(parts) == 5:
        return "OPTION"
    return "SPOT"
