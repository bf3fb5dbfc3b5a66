"""Entry points other packages call: the whole collector, and where its market data comes from."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import aiohttp

from config.settings import Settings
from data.bus import Bus
from data.collector import Collector, CollectorConfig
from data.venues import BOOK_EXCHANGES

if TYPE_CHECKING:  # the replay (and pandas) load only when a replay is started
    from data.replay.depth import DepthCapture
    from data.replay.server import ReplayServer
    from data.replay.tape import Tape

log = logging.getLogger(__name__)

SAMPLES = Path(__file__).resolve().parent / "samples"
DEMO_CANDLES = SAMPLES / "okx_BTC-USDT-SWAP_1m_2026-01-01_2026-01-16.csv.gz"
DEMO_FUNDING = {"BTC-USDT-SWAP": SAMPLES / "okx_BTC-USDT-SWAP_funding_rate_2026-01-01_2026-01-15.csv"}
DEMO_HISTORY_MS = 86_400_000  # the demo market opens one day into its tape: a day of REST history
# Demo instruments synthesised from the real BTC-USDT-SWAP 1m candles: (price scale, decimals, size decimals,
# seed, first trade id). Only BTC-USDT follows the source prices; the others are the same price action
# scaled (synthetic, see data/samples/README.md). BTC-USDT-SWAP is the same source under its own name, with the
# real funding history of the fortnight (DEMO_FUNDING) on the replay's funding-rate channel.
DEMO_INSTRUMENTS: dict[str, tuple[float, int, int, int, int]] = {
    "BTC-USDT": (1.0, 1, 8, 7, 1_000_000_000),
    "BTC-USDT-SWAP": (1.0, 1, 2, 17, 4_000_000_000),
    "ETH-USDT": (0.0345, 2, 6, 11, 2_000_000_000),
    "SOL-USDT": (0.0016, 3, 4, 13, 3_000_000_000),
}


# The bundled real Binance tapes (data/samples/README.md), replayed when Binance is unreachable.
BINANCE_TAPES = {"BTC-USDT": SAMPLES / "tape_BTC-USDT_binance_spot_2024-08-08T2354.csv.gz",
                 "BTC-USDT-SWAP": SAMPLES / "tape_BTC-USDT-SWAP_binance_usdm_2024-08-08T2354.csv.gz"}
# The real depth streams (and REST snapshots) captured beside them, 23:54 -> 24:00: the replay's order books.
BINANCE_DEPTH = {"BTC-USDT": SAMPLES / "binance_spot_BTCUSDT_depth_2024-08-08T2354_2400.txt.gz",
                 "BTC-USDT-SWAP": SAMPLES / "binance_usdm_BTCUSDT_depth_2024-08-08T2354_2400.txt.gz"}


@dataclass
class MarketSource:
    """Where the collector connects: the live venue, or a replay server this process started
    (``perp_*``: Binance's USDⓈ-M endpoints, Bybit's linear socket)."""

    kind: Literal["live", "replay"]
    ws_url: str
    rest_url: str
    server: ReplayServer | None = None
    perp_ws_url: str | None = None
    perp_rest_url: str | None = None

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None


async def run_market_data(settings: Settings, bus: Bus, stop: asyncio.Event, *,
                          symbols: Sequence[str] | None = None, ws_url: str | None = None,
                          rest_url: str | None = None, perp_ws_url: str | None = None,
                          perp_rest_url: str | None = None, component_suffix: str = "") -> None:
    """Run the whole collector of ``settings.exchange`` (trade stream, candle engine, storage writer on its
    own engine from ``settings.effective_database_url``, bus publishing, REST backfill, health) until
    ``stop`` is set; then flush and return. URLs default to the settings (the live venue)."""
    live = live_source(settings)
    config = CollectorConfig(
        symbols=tuple(symbols or settings.venue_symbols().get(settings.exchange, ())),
        ws_url=ws_url or live.ws_url,
        rest_url=rest_url or live.rest_url,
        perp_ws_url=perp_ws_url or live.perp_ws_url,
        perp_rest_url=perp_rest_url or live.perp_rest_url,
        exchange=settings.exchange,
        database_url=settings.effective_database_url,
        timeframes=tuple(settings.timeframes),
        store_trades=settings.store_raw_trades,
        trade_retention_days=settings.trade_retention_days,
        durable_commits=settings.durable_commits,
        books=settings.order_books and settings.exchange in BOOK_EXCHANGES,
        market_state=settings.market_state,
        book_depth=settings.book_depth,
        book_snapshot_s=settings.book_snapshot_s,
        okx_book_channel=settings.okx_book_channel,
        component_suffix=component_suffix,
    )
    await Collector(config, bus).run(stop)


async def run_venues(settings: Settings, bus: Bus, stop: asyncio.Event,
                     on_sources: Callable[[dict[str, MarketSource]], None] | None = None) -> None:
    """Every venue of ``SYMBOLS`` in this process (``binance:BTC-USDT`` prefixes; the rest on ``EXCHANGE``): one
    collector each, on the venue or, per ``MARKET_SOURCE``, its bundled replay, sharing the bus and the
    database, until ``stop`` is set. The first venue's writer and bus report as ``writer``/``bus``, the
    others' as ``writer.<venue>``/``bus.<venue>``. ``on_sources`` is told where each venue's data comes from."""
    sources: dict[str, MarketSource] = {}
    try:
        runs = []
        for i, (venue, symbols) in enumerate(settings.venue_symbols().items()):
            venue_settings = settings.model_copy(update={"exchange": venue, "symbols": symbols})
            source = sources[venue] = await resolve_market_source(venue_settings)
            log.info("market source of %s: %s (ws=%s rest=%s)", venue, source.kind, source.ws_url, source.rest_url)
            runs.append(run_market_data(venue_settings, bus, stop, symbols=symbols, ws_url=source.ws_url,
                                        rest_url=source.rest_url, perp_ws_url=source.perp_ws_url,
                                        perp_rest_url=source.perp_rest_url,
                                        component_suffix="" if i == 0 else f".{venue}"))
        if on_sources is not None:
            on_sources(sources)
        await asyncio.gather(*runs)
    finally:
        for source in sources.values():
            await source.close()


def live_source(settings: Settings) -> MarketSource:
    """The live endpoints of ``settings.exchange``."""
    if settings.exchange == "binance":
        return MarketSource("live", settings.binance_ws_url, settings.binance_rest_url,
                            perp_ws_url=settings.binance_usdm_ws_url, perp_rest_url=settings.binance_usdm_rest_url)
    if settings.exchange == "bybit":
        return MarketSource("live", settings.bybit_ws_url, settings.bybit_rest_url,
                            perp_ws_url=settings.bybit_linear_ws_url, perp_rest_url=settings.bybit_rest_url)
    return MarketSource("live", settings.okx_ws_public_url, settings.okx_rest_url)


TIME_PATHS = {"okx": "/api/v5/public/time", "binance": "/api/v3/time", "bybit": "/v5/market/time"}


async def probe_live(rest_url: str, timeout: float = 3.0, exchange: str = "okx") -> bool:
    """True when the venue's REST answers its server-time call within ``timeout`` seconds."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(rest_url.rstrip("/") + TIME_PATHS[exchange]) as response:
                body = await response.json(content_type=None)
                ok = {"binance": "serverTime" in body, "bybit": body.get("retCode") == 0}.get(exchange,
                                                                                            body.get("code") == "0")
                return response.status == 200 and ok
    except (aiohttp.ClientError, TimeoutError, ValueError, OSError):
        return False


def demo_tapes(symbols: Sequence[str]) -> dict[str, Tape]:
    """Tapes synthesised from the bundled real candles for the requested demo instruments."""
    from data.replay.synth import synthesise_tape

    tapes = {}
    for symbol in symbols:
        spec = DEMO_INSTRUMENTS.get(symbol)
        if spec is None:
            log.warning("replay: no demo tape for %s (have %s)", symbol, ", ".join(DEMO_INSTRUMENTS))
            continue
        scale, decimals, size_decimals, seed, first_id = spec
        tapes[symbol] = synthesise_tape(DEMO_CANDLES, seed=seed, price_scale=scale, price_decimals=decimals,
                                        size_decimals=size_decimals, first_trade_id=first_id)
    if not tapes:
        tapes["BTC-USDT"] = synthesise_tape(DEMO_CANDLES)
    return tapes


def binance_tapes(symbols: Sequence[str]) -> dict[str, Tape]:
    """The bundled real Binance tapes of the requested symbols (both when none of them has one)."""
    from data.replay.tape import read_tape

    wanted = [s for s in symbols if s in BINANCE_TAPES] or list(BINANCE_TAPES)
    missing = [s for s in symbols if s not in BINANCE_TAPES]
    if missing:
        log.warning("replay: no Binance tape for %s (have %s)", ", ".join(missing), ", ".join(BINANCE_TAPES))
    return {s: read_tape(BINANCE_TAPES[s]) for s in wanted}


def binance_depth(symbols: Sequence[str]) -> dict[str, DepthCapture]:
    """The bundled real Binance depth captures of ``symbols`` (those that have one)."""
    from data.replay.depth import read_depth_capture

    return {s: read_depth_capture(BINANCE_DEPTH[s]) for s in symbols if s in BINANCE_DEPTH}


def demo_funding(symbols: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """The bundled real funding settlements of the demo swaps among ``symbols``: ``(time ms, rate)``."""
    import csv

    out = {}
    for symbol in symbols:
        if symbol in DEMO_FUNDING:
            with DEMO_FUNDING[symbol].open(newline="") as f:
                out[symbol] = [(int(row["ts_ms"]), float(row["funding_rate"])) for row in csv.DictReader(f)]
    return out


async def start_demo_replay(settings: Settings, symbols: Sequence[str] | None = None) -> MarketSource:
    """Start the bundled replay in this process (looping, ``settings.replay_speed``), speaking the protocol
    of ``settings.exchange``: OKX serves tapes synthesised from real candles, Binance the real Binance tapes (and
    depth), Bybit the same real Binance tapes in Bybit's framing (no Bybit trade tape is bundled)."""
    from data.replay.server import ReplayServer

    okx = settings.exchange == "okx"
    wanted = symbols or settings.venue_symbols().get(settings.exchange, ())
    tapes = await asyncio.to_thread(demo_tapes if okx else binance_tapes, wanted)
    depth = await asyncio.to_thread(binance_depth, tapes) if settings.exchange == "binance" else {}
    funding = await asyncio.to_thread(demo_funding, tapes) if okx else {}
    history = DEMO_HISTORY_MS if okx else 0
    protocol = settings.exchange
    server = ReplayServer(tapes, speed=settings.replay_speed, loop=True, port=settings.replay_port,
                          history_ms=history, protocol=protocol, depth=depth, funding=funding)
    try:
        await server.start()
    except OSError:
        log.warning("replay: port %s busy, using a free port", settings.replay_port)
        await server.close()
        server = ReplayServer(tapes, speed=settings.replay_speed, loop=True, port=0, history_ms=history,
                              protocol=protocol, depth=depth, funding=funding)
        await server.start()
    log.info("replay: serving %s as %s on %s (speed %sx)", ",".join(tapes), protocol, server.ws_url,
             settings.replay_speed)
    return MarketSource("replay", server.ws_url, server.rest_url, server, perp_ws_url=server.perp_ws_url,
                        perp_rest_url=None if okx else server.rest_url)


async def resolve_market_source(settings: Settings) -> MarketSource:
    """MARKET_SOURCE: ``live`` = the venue (``EXCHANGE``); ``replay`` = bundled replay; ``auto`` = the venue
    if its REST answers within ~3 s, else the bundled replay. Call :meth:`MarketSource.close` when done."""
    live = live_source(settings)
    if settings.market_source == "live":
        return live
    if settings.market_source == "auto" and await probe_live(live.rest_url, exchange=settings.exchange):
        log.info("market source: live %s at %s", settings.exchange, live.rest_url)
        return live
    if settings.market_source == "auto":
        log.info("market source: %s unreachable, using the bundled replay", settings.exchange)
    return await start_demo_replay(settings)
