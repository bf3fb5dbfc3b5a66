"""Entry points other packages call: the whole collector, and where its market data comes from."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import aiohttp

from config.settings import Settings
from data.bus import Bus
from data.collector import Collector, CollectorConfig

if TYPE_CHECKING:  # the replay (and pandas) load only when a replay is started
    from data.replay.server import ReplayServer
    from data.replay.tape import Tape

log = logging.getLogger(__name__)

SAMPLES = Path(__file__).resolve().parent / "samples"
DEMO_CANDLES = SAMPLES / "okx_BTC-USDT-SWAP_1m_2026-01-01_2026-01-16.csv.gz"
DEMO_HISTORY_MS = 86_400_000  # the demo market opens one day into its tape: a day of REST history
# Demo instruments synthesised from the real BTC-USDT-SWAP 1m candles: (price scale, decimals, size decimals,
# seed, first trade id). Only BTC-USDT follows the source prices; the others are the same price action
# scaled (synthetic, see data/samples/README.md).
DEMO_INSTRUMENTS: dict[str, tuple[float, int, int, int, int]] = {
    "BTC-USDT": (1.0, 1, 8, 7, 1_000_000_000),
    "ETH-USDT": (0.0345, 2, 6, 11, 2_000_000_000),
    "SOL-USDT": (0.0016, 3, 4, 13, 3_000_000_000),
}


@dataclass
class MarketSource:
    """Where the collector connects: live OKX, or a replay server this process started."""

    kind: Literal["live", "replay"]
    ws_url: str
    rest_url: str
    server: ReplayServer | None = None

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None


async def run_market_data(settings: Settings, bus: Bus, stop: asyncio.Event, *,
                          symbols: Sequence[str] | None = None, ws_url: str | None = None,
                          rest_url: str | None = None) -> None:
    """Run the whole collector (OKX client, candle engine, storage writer on its own engine from
    ``settings.effective_database_url``, bus publishing, REST backfill, health) until ``stop`` is
    set; then flush and return. URLs default to the settings (live OKX)."""
    config = CollectorConfig(
        symbols=tuple(symbols or settings.symbols),
        ws_url=ws_url or settings.okx_ws_public_url,
        rest_url=rest_url or settings.okx_rest_url,
        database_url=settings.effective_database_url,
        timeframes=tuple(settings.timeframes),
        store_trades=settings.store_raw_trades,
        trade_retention_days=settings.trade_retention_days,
        durable_commits=settings.durable_commits,
    )
    await Collector(config, bus).run(stop)


async def probe_live(rest_url: str, timeout: float = 3.0) -> bool:
    """True when OKX REST answers ``/api/v5/public/time`` within ``timeout`` seconds."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(rest_url.rstrip("/") + "/api/v5/public/time") as response:
                body = await response.json(content_type=None)
                return response.status == 200 and body.get("code") == "0"
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


async def start_demo_replay(settings: Settings, symbols: Sequence[str] | None = None) -> MarketSource:
    """Start the bundled replay in this process (looping, ``settings.replay_speed``)."""
    from data.replay.server import ReplayServer

    tapes = await asyncio.to_thread(demo_tapes, symbols or settings.symbols)
    server = ReplayServer(tapes, speed=settings.replay_speed, loop=True, port=settings.replay_port,
                          history_ms=DEMO_HISTORY_MS)
    try:
        await server.start()
    except OSError:
        log.warning("replay: port %s busy, using a free port", settings.replay_port)
        await server.close()
        server = ReplayServer(tapes, speed=settings.replay_speed, loop=True, port=0, history_ms=DEMO_HISTORY_MS)
        await server.start()
    log.info("replay: serving %s on %s (speed %sx)", ",".join(tapes), server.ws_url, settings.replay_speed)
    return MarketSource("replay", server.ws_url, server.rest_url, server)


async def resolve_market_source(settings: Settings) -> MarketSource:
    """MARKET_SOURCE: ``live`` = OKX; ``replay`` = bundled replay; ``auto`` = OKX if its REST answers
    within ~3 s, else the bundled replay. Call :meth:`MarketSource.close` when done."""
    live = MarketSource("live", settings.okx_ws_public_url, settings.okx_rest_url)
    if settings.market_source == "live":
        return live
    if settings.market_source == "auto" and await probe_live(settings.okx_rest_url):
        log.info("market source: live OKX at %s", settings.okx_rest_url)
        return live
    if settings.market_source == "auto":
        log.info("market source: OKX unreachable, using the bundled replay")
    return await start_demo_replay(settings)
