"""The exchanges the collector can read, and the two parts each one supplies to the collector shell: a trade
stream (a :class:`~data.streams.TradeStreamBase`) and a REST client for repairs (:class:`MarketRest`).

OKX: one public socket for every market. Binance: spot markets (``BTC-USDT``) on the spot socket and REST,
USDⓈ-M perpetuals (``BTC-USDT-SWAP``) on the futures ones (``perp_ws_url`` / ``perp_rest_url``). Bybit v5: spot
on ``/v5/public/spot``, linear perpetuals on ``/v5/public/linear`` (``perp_ws_url``), one REST base for both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from config.domain import Candle
from data.okx.frames import WireTrade

if TYPE_CHECKING:
    from data.binance.depth import BinanceBookStream
    from data.books import Book
    from data.okx.books import OkxBookStream
    from data.streams import TradeStreamBase

EXCHANGES = ("okx", "binance", "bybit")
BOOK_EXCHANGES = ("binance", "okx")  # venues whose order books the collector keeps (data.bookkeeper)


class MarketRest(Protocol):
    """What the :class:`~data.backfill.Backfiller` and the collector's clock need from a venue's REST."""

    async def server_time_ms(self) -> int: ...

    async def minute_candles(self, symbol: str, start_ms: int, end_ms: int) -> list[Candle]: ...

    async def trades_between(self, symbol: str, after_id: int, before_id: int
                             ) -> tuple[list[WireTrade], bool]: ...

    async def close(self) -> None: ...


def check_exchange(exchange: str) -> str:
    if exchange not in EXCHANGES:
        raise ValueError(f"exchange must be one of {', '.join(EXCHANGES)}, got {exchange!r}")
    return exchange


def make_rest(exchange: str, rest_url: str, perp_rest_url: str | None = None) -> MarketRest:
    if check_exchange(exchange) == "binance":
        from data.binance.rest import BinanceRest

        return BinanceRest(rest_url, perp_rest_url or rest_url)
    if exchange == "bybit":
        from data.bybit.rest import BybitRest

        return BybitRest(rest_url)
    from data.okx.rest import OkxRest

    return OkxRest(rest_url)


def make_stream(exchange: str, ws_url: str, symbols: Sequence[str],
                on_trades: Callable[[str, list[WireTrade], int], None], *, perp_ws_url: str | None = None,
                **options: object) -> TradeStreamBase:
    """The venue's trade stream; ``options`` are the shared keywords (``on_subscribed``, ``on_disconnected``,
    ``flow``, ``ping_after``, ``pong_timeout``)."""
    if check_exchange(exchange) == "binance":
        from data.binance.client import BinanceTradeStream
        from data.binance.frames import Kind

        urls = {Kind.SPOT: ws_url, **({Kind.USDM: perp_ws_url} if perp_ws_url else {})}
        return BinanceTradeStream(urls, symbols, on_trades, **options)  # type: ignore[arg-type]
    if exchange == "bybit":
        from data.bybit.client import BybitTradeStream
        from data.bybit.frames import Kind as BybitKind

        links = {BybitKind.SPOT: ws_url, **({BybitKind.LINEAR: perp_ws_url} if perp_ws_url else {})}
        return BybitTradeStream(links, symbols, on_trades, **options)  # type: ignore[arg-type]
    from data.okx.client import OkxTradeStream

    return OkxTradeStream(ws_url, symbols, on_trades, **options)  # type: ignore[arg-type]


def make_book_stream(exchange: str, ws_url: str, rest: MarketRest, symbols: Sequence[str],
                     on_book: Callable[[str, Book, int, int | None], None], *,
                     perp_ws_url: str | None = None, okx_channel: str = "books") -> BinanceBookStream | OkxBookStream:
    """The venue's order-book stream (Binance: ``rest`` fetches its snapshots; OKX: ``okx_channel`` is ``books``
    or ``books5``); only venues in :data:`BOOK_EXCHANGES`."""
    if check_exchange(exchange) not in BOOK_EXCHANGES:
        raise ValueError(f"order books are kept on {', '.join(BOOK_EXCHANGES)} only, not {exchange!r}")
    if exchange == "okx":
        from data.okx.books import OkxBookStream

        return OkxBookStream(ws_url, symbols, on_book, channel=okx_channel)
    from data.binance.depth import BinanceBookStream
    from data.binance.frames import Kind
    from data.binance.rest import BinanceRest

    assert isinstance(rest, BinanceRest)
    urls = {Kind.SPOT: ws_url, **({Kind.USDM: perp_ws_url} if perp_ws_url else {})}
    return BinanceBookStream(urls, rest, symbols, on_book)
