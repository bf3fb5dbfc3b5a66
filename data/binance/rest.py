"""Binance REST market data for the collector's repairs: 1m klines, historical trades, server time,
exchange info, for spot (``/api/v3``) and USDⓈ-M (``/fapi/v1``), routed by our symbol's name.

Same duties as :class:`data.okx.rest.OkxRest` (the :class:`~data.backfill.Backfiller` uses either):
requests spaced below the venue's weight limit, retries with back-off on a network error, HTTP 429 /
418 / 5xx. Binance pages forwards (``startTime`` / ``fromId``, oldest first), OKX backwards.
"""

from __future__ import annotations

import logging

from config.domain import Candle
from data.binance.frames import (
    DepthSnapshot,
    Kind,
    market,
    parse_depth_snapshot,
    parse_historical_trades,
    parse_klines,
    parse_server_time,
    parse_symbols,
)
from data.http import PacedGet
from data.okx.frames import WireTrade

log = logging.getLogger(__name__)

PATHS = {
    Kind.SPOT: {"klines": "/api/v3/klines", "trades": "/api/v3/historicalTrades", "time": "/api/v3/time",
                "info": "/api/v3/exchangeInfo", "depth": "/api/v3/depth"},
    Kind.USDM: {"klines": "/fapi/v1/klines", "trades": "/fapi/v1/historicalTrades", "time": "/fapi/v1/time",
                "info": "/fapi/v1/exchangeInfo", "depth": "/fapi/v1/depth"},
}
KLINE_LIMIT = 1000  # both APIs: at most 1000 rows a page (klines weigh 2-5 by limit; trades 25 / 20)
TRADE_LIMIT = 1000
MINUTE_MS = 60_000


class BinanceRest:
    """Public REST calls; ``spot_url`` and ``usdm_url`` are the two bases (``https://api.binance.com``,
    ``https://fapi.binance.com``; a replay serves both on one port)."""

    def __init__(self, spot_url: str, usdm_url: str | None = None, *, requests_per_second: float = 8.0,
                 timeout: float = 10.0, retries: int = 5, retry_base: float = 0.5) -> None:
        self.bases = {Kind.SPOT: spot_url.rstrip("/"), Kind.USDM: (usdm_url or spot_url).rstrip("/")}
        self._http = PacedGet("Binance", requests_per_second=requests_per_second, timeout=timeout, retries=retries,
                              retry_base=retry_base, retry_statuses=frozenset({418, 429}))

    @property
    def requests(self) -> int:
        return self._http.requests

    async def close(self) -> None:
        await self._http.close()

    async def _get(self, kind: Kind, what: str, params: dict[str, str]) -> bytes:
        return await self._http(self.bases[kind] + PATHS[kind][what], params)

    async def server_time_ms(self, kind: Kind = Kind.SPOT) -> int:
        return parse_server_time(await self._get(kind, "time", {}))

    async def depth_snapshot(self, symbol: str, limit: int = 1000) -> DepthSnapshot:
        """The book snapshot the depth stream is sequenced against (``lastUpdateId``, levels as sent)."""
        m = market(symbol)
        return parse_depth_snapshot(await self._get(m.kind, "depth", {"symbol": m.venue_symbol,
                                                                      "limit": str(limit)}))

    async def minute_candles(self, symbol: str, start_ms: int, end_ms: int) -> list[Candle]:
        """Complete 1m candles with ``start_ms <= open < end_ms``, oldest first."""
        m = market(symbol)
        now = await self.server_time_ms(m.kind)
        out: dict[int, Candle] = {}
        cursor = start_ms
        while cursor < end_ms:
            body = await self._get(m.kind, "klines", {"symbol": m.venue_symbol, "interval": "1m",
                                                     "startTime": str(cursor), "endTime": str(end_ms - 1),
                                                     "limit": str(KLINE_LIMIT)})
            page = parse_klines(body, symbol, server_ms=now)
            for c in page:
                if start_ms <= c.open_time_ms < end_ms:
                    out[c.open_time_ms] = c
            if not page or page[-1].open_time_ms < cursor:  # nothing more (or a server ignoring startTime)
                break
            cursor = page[-1].open_time_ms + MINUTE_MS
        return [out[t] for t in sorted(out)]

    async def trades_between(self, symbol: str, after_id: int, before_id: int) -> tuple[list[WireTrade], bool]:
        """Trades with ``after_id < id < before_id``, oldest first, and whether REST still had the first of
        them (False: the venue's history starts later, the trades before it are lost)."""
        m = market(symbol)
        out: list[WireTrade] = []
        cursor = after_id + 1
        complete = True
        while cursor < before_id:
            limit = min(TRADE_LIMIT, before_id - cursor)
            page = parse_historical_trades(
                await self._get(m.kind, "trades", {"symbol": m.venue_symbol, "fromId": str(cursor),
                                                   "limit": str(limit)}), symbol)
            if not page:
                complete = False
                break
            if cursor == after_id + 1 and page[0].tradeId > cursor:
                complete = False  # the oldest trade REST still has is newer than the gap's start
            out.extend(t for t in page if after_id < t.tradeId < before_id)
            newest = page[-1].tradeId
            if newest < cursor:  # a server that ignores fromId would loop forever
                break
            cursor = newest + 1
        return out, complete

    async def listed_symbols(self, kind: Kind) -> list[str]:
        """Our names (``BTC-USDT``, ``BTC-USDT-SWAP``) of the markets trading on ``kind``'s API."""
        return parse_symbols(await self._get(kind, "info", {}), kind)
