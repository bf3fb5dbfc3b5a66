"""Bybit v5 REST market data for the collector's repairs: 1m klines, recent trades, server time, instruments, for
spot (``category=spot``) and linear perpetuals (``category=linear``) on one base URL, routed by our symbol's name.

Same duties as :class:`data.okx.rest.OkxRest` and :class:`data.binance.rest.BinanceRest`: requests spaced below
the venue's limit (600 per 5 s per IP), retries with back-off on a network error or HTTP 429 / 5xx; a
``retCode`` 10006 (rate limit) is a :class:`~config.errors.TemporaryError` too. Klines page backwards
(``end``, newest first).

**Stream gaps.** Bybit has no trade history by id: ``recent-trade`` returns only the newest trades (spot 60,
linear 1 000). :meth:`BybitRest.trades_between` reads the fill times back from the synthetic ids
(:func:`data.bybit.frames.id_time`) and returns the recent trades filled strictly between them; it says the gap
is complete only when REST still reached back to the gap's start. The trades of the gap's first and last
milliseconds are not fetched again (which of them the stream had, the ids cannot tell).
"""

from __future__ import annotations

from config.domain import Candle
from data.bybit.frames import (
    Kind,
    id_time,
    market,
    next_id,
    parse_instruments,
    parse_klines,
    parse_recent_trades,
    parse_server_time,
)
from data.http import PacedGet
from data.okx.frames import WireTrade

KLINE = "/v5/market/kline"
RECENT_TRADES = "/v5/market/recent-trade"
TIME = "/v5/market/time"
INSTRUMENTS = "/v5/market/instruments-info"
KLINE_LIMIT = 1000
RECENT_LIMIT = {Kind.SPOT: 60, Kind.LINEAR: 1000}
MINUTE_MS = 60_000


class BybitRest:
    """Public REST calls on ``base_url`` (``https://api.bybit.com``; a replay serves the same paths)."""

    def __init__(self, base_url: str, *, requests_per_second: float = 10.0, timeout: float = 10.0,
                 retries: int = 5, retry_base: float = 0.5) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = PacedGet("Bybit", requests_per_second=requests_per_second, timeout=timeout, retries=retries,
                              retry_base=retry_base)

    @property
    def requests(self) -> int:
        return self._http.requests

    async def close(self) -> None:
        await self._http.close()

    async def _get(self, path: str, params: dict[str, str]) -> bytes:
        return await self._http(self.base_url + path, params)

    async def server_time_ms(self) -> int:
        return parse_server_time(await self._get(TIME, {}))

    async def minute_candles(self, symbol: str, start_ms: int, end_ms: int) -> list[Candle]:
        """Complete 1m candles with ``start_ms <= open < end_ms``, oldest first."""
        m = market(symbol)
        now = await self.server_time_ms()
        out: dict[int, Candle] = {}
        cursor = end_ms - 1
        while cursor >= start_ms:
            page = parse_klines(await self._get(KLINE, {"category": m.kind.value, "symbol": m.venue_symbol,
                                                        "interval": "1", "start": str(start_ms),
                                                        "end": str(cursor), "limit": str(KLINE_LIMIT)}),
                                symbol, server_ms=now)
            for c in page:
                if start_ms <= c.open_time_ms < end_ms:
                    out[c.open_time_ms] = c
            if not page or page[0].open_time_ms > cursor:  # nothing more (or a server ignoring end)
                break
            cursor = page[0].open_time_ms - 1
            if len(page) < KLINE_LIMIT - 1:  # a short page (the forming minute may be left out) is the last
                break
        return [out[t] for t in sorted(out)]

    async def trades_between(self, symbol: str, after_id: int, before_id: int) -> tuple[list[WireTrade], bool]:
        """The recent trades filled after ``after_id``'s millisecond and before ``before_id``'s, with synthetic
        ids between the two, oldest first; and whether REST still reached back to the gap's start."""
        m = market(symbol)
        after_ms, before_ms = id_time(after_id), id_time(before_id)
        rows = parse_recent_trades(await self._get(RECENT_TRADES, {"category": m.kind.value,
                                                                   "symbol": m.venue_symbol,
                                                                   "limit": str(RECENT_LIMIT[m.kind])}))
        out: list[WireTrade] = []
        last = after_id
        for r in rows:
            if after_ms < r.ts_ms < before_ms:
                last = next_id(r.ts_ms, last)
                if last >= before_id:
                    break
                out.append(WireTrade(last, r.price, r.size, r.side, r.ts_ms, symbol))
        complete = bool(rows) and rows[0].ts_ms <= after_ms
        return out, complete

    async def listed_symbols(self, kind: Kind) -> list[str]:
        """Our names (``BTC-USDT``, ``BTC-USDT-SWAP``) of the markets trading in ``kind``'s category."""
        return parse_instruments(await self._get(INSTRUMENTS, {"category": kind.value}), kind)
