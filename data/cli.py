"""``python main.py collect | backfill | replay | tape …`` (market data commands)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pathlib
import signal
from datetime import UTC, datetime

from config.domain import Timeframe, datetime_to_ms
from config.errors import ConfigurationError
from config.settings import Settings, get_settings

EXCHANGES = ("okx", "binance", "bybit")  # data.venues.EXCHANGES, kept here so that --help loads no venue code
PROTOCOLS = EXCHANGES


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    collect = subparsers.add_parser("collect", help="run a venue's collector until SIGINT/SIGTERM")
    collect.add_argument("--exchange", choices=EXCHANGES, help="the venue (default: EXCHANGE, okx)")
    collect.add_argument("--symbols", help="comma-separated symbols such as BTC-USDT,BTC-USDT-SWAP (default: SYMBOLS)")
    collect.add_argument("--ws-url", help="public WebSocket URL (default: MARKET_SOURCE decides)")
    collect.add_argument("--rest-url", help="REST base URL (default: MARKET_SOURCE decides)")
    collect.add_argument("--perp-ws-url", help="Binance: the USDⓈ-M WebSocket URL; Bybit: the linear one")
    collect.add_argument("--perp-rest-url", help="Binance: the USDⓈ-M REST base URL")
    collect.add_argument("--okx-ws-url", help="OKX: same as --ws-url")
    collect.add_argument("--okx-rest-url", help="OKX: same as --rest-url")
    collect.add_argument("--no-trades", action="store_true", help="do not store raw trades")
    collect.set_defaults(func=_collect)

    backfill = subparsers.add_parser("backfill", help="fetch 1m candles from OKX REST and roll them up")
    backfill.add_argument("--symbol", required=True)
    backfill.add_argument("--start", required=True, help="ISO time or date, UTC (e.g. 2026-01-01T00:00)")
    backfill.add_argument("--end", help="ISO time, UTC (default: now)")
    backfill.add_argument("--exchange", choices=EXCHANGES, help="the venue (default: EXCHANGE, okx)")
    backfill.add_argument("--rest-url", help="REST base URL (default: OKX_REST_URL, BINANCE_REST_URL or, for a "
                                             "-SWAP symbol, BINANCE_USDM_REST_URL; BYBIT_REST_URL)")
    backfill.add_argument("--okx-rest-url", help="OKX: same as --rest-url")
    backfill.set_defaults(func=_backfill)

    replay = subparsers.add_parser("replay", help="serve tapes as a venue's public WebSocket + REST (OKX v5, Binance, "
                                                "Bybit v5)")
    replay.add_argument("--protocol", choices=PROTOCOLS, default="okx",
                        help="okx, binance (symbols ending -SWAP on the USDⓈ-M endpoints under /usdm) or bybit "
                             "(-SWAP on /v5/public/linear)")
    replay.add_argument("--tape", action="append", default=[], help="CSV or CSV.gz tape (repeatable)")
    replay.add_argument("--depth", action="append", default=[], metavar="SYMBOL=FILE",
                        help="binance: a captured depth stream for SYMBOL's order book (repeatable; without "
                             "--tape the bundled Binance tapes come with their bundled depth captures)")
    replay.add_argument("--symbol", action="append", default=[],
                        help="instId for the tape at the same position (repeatable); without --tape, the "
                             "bundled demo tapes for these symbols (binance, bybit: the real bundled Binance tapes)")
    replay.add_argument("--speed", type=float, default=1.0, help="N x real time; 0 = as fast as the client reads")
    replay.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0 = any free port)")
    replay.add_argument("--loop", action="store_true", help="repeat the tape with shifted times and ids")
    replay.add_argument("--passes", type=int, help="with --loop: stop after this many passes (default: forever)")
    replay.add_argument("--history-minutes", type=int, default=0,
                        help="open the market this far into the tape (the skipped part is REST history)")
    replay.set_defaults(func=_replay)

    tape = subparsers.add_parser("tape", help="make replay tapes")
    sub = tape.add_subparsers(dest="tape_command", required=True)
    convert = sub.add_parser("convert", help="normalised Binance trade CSV -> tape")
    convert.add_argument("source")
    convert.add_argument("destination")
    convert.set_defaults(func=_tape_convert)
    synth = sub.add_parser("synth", help="1m candle CSV(.gz) -> synthetic tape")
    synth.add_argument("source")
    synth.add_argument("destination")
    synth.add_argument("--seed", type=int, default=7)
    synth.add_argument("--price-scale", type=float, default=1.0)
    synth.add_argument("--price-decimals", type=int, default=1)
    synth.add_argument("--size-decimals", type=int, default=8)
    synth.add_argument("--first-trade-id", type=int, default=1_000_000_000)
    synth.set_defaults(func=_tape_synth)


def _run_until_signal(main: object) -> int:
    """Run ``main(stop)`` with SIGINT/SIGTERM setting ``stop``."""

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        return await main(stop)  # type: ignore[operator, no-any-return]

    return asyncio.run(runner())


def _url(value: str | None, option: str, schemes: tuple[str, ...]) -> str | None:
    if value is not None and not value.startswith(schemes):
        raise ConfigurationError(f"expected a {' or '.join(s + '//' for s in schemes)} URL, got {value!r}",
                                 source=option)
    return value


async def _check_symbols(rest_url: str, symbols: tuple[str, ...], option: str, exchange: str = "okx",
                         perp_rest_url: str | None = None) -> None:
    """Refuse symbols the venue does not list (OKX ``public/instruments``, Binance ``exchangeInfo``, Bybit
    ``instruments-info``); an unreachable venue is not a reason to refuse (the collector waits for it), so then
    nothing is checked."""
    import difflib
    import logging

    from config.errors import MalformedMessageError, TemporaryError
    from data.binance.frames import BinanceRestError
    from data.bybit.frames import BybitRestError
    from data.okx.frames import OkxRestError

    listed: dict[str, list[str]] = {}  # kind -> our names of what it lists
    if exchange in ("binance", "bybit"):
        if exchange == "binance":
            from data.binance.frames import market
            from data.binance.rest import BinanceRest

            rest: object = BinanceRest(rest_url, perp_rest_url, retries=1, timeout=5.0)
        else:
            from data.bybit.frames import market  # type: ignore[assignment]
            from data.bybit.rest import BybitRest

            rest = BybitRest(rest_url, retries=1, timeout=5.0)

        async def names(symbol: str) -> tuple[str, list[str]]:
            try:
                kind = market(symbol).kind
            except ValueError as exc:
                raise ConfigurationError(str(exc), source=option) from None
            if kind not in listed:
                listed[kind] = await rest.listed_symbols(kind)  # type: ignore[attr-defined]
            return kind, listed[kind]
    else:
        from data.okx.rest import OkxRest, inst_type_of

        rest = OkxRest(rest_url, retries=1, timeout=5.0)

        async def names(symbol: str) -> tuple[str, list[str]]:
            kind = inst_type_of(symbol)
            if kind not in listed:
                listed[kind] = await rest.instrument_ids(kind)  # type: ignore[attr-defined]
            return kind, listed[kind]
    try:
        for symbol in symbols:
            kind, ids = await names(symbol)
            if symbol not in ids:
                close = difflib.get_close_matches(symbol, [s for ids in listed.values() for s in ids], n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else f" ({len(ids)} {kind} listed)"
                raise ConfigurationError(f"unknown instrument {symbol!r} on {exchange}{hint}", source=option)
    except (TemporaryError, OkxRestError, BinanceRestError, BybitRestError, MalformedMessageError) as exc:
        logging.getLogger(__name__).warning("cannot check the symbols against the instruments: %s", exc)
    finally:
        await rest.close()  # type: ignore[attr-defined]


def _collect(args: argparse.Namespace) -> int:
    from data.bus import make_bus
    from data.service import resolve_market_source, run_market_data
    from database.migrate import upgrade

    settings = get_settings()
    symbols = settings.symbols
    if args.symbols is not None:
        symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
        if not symbols:
            raise ConfigurationError(f"expected comma-separated instIds such as BTC-USDT,ETH-USDT, got "
                                     f"{args.symbols!r}", source="--symbols")
    for option in ("--ws-url", "--perp-ws-url", "--okx-ws-url"):
        _url(getattr(args, option[2:].replace("-", "_")), option, ("ws:", "wss:"))
    for option in ("--rest-url", "--perp-rest-url", "--okx-rest-url"):
        _url(getattr(args, option[2:].replace("-", "_")), option, ("http:", "https:"))
    exchange = args.exchange or settings.exchange
    if exchange != "okx" and (args.okx_ws_url or args.okx_rest_url):
        raise ConfigurationError(f"is for OKX; with --exchange {exchange} use --ws-url / --rest-url",
                                 source="--okx-ws-url" if args.okx_ws_url else "--okx-rest-url")
    try:
        Settings.check_venue_prefixes(symbols)
    except ValueError as exc:
        raise ConfigurationError(str(exc), source="--symbols") from None
    settings = settings.model_copy(update={"exchange": exchange, "symbols": symbols})
    venues = settings.venue_symbols()
    urls = [o for o in ("ws_url", "rest_url", "perp_ws_url", "perp_rest_url", "okx_ws_url", "okx_rest_url")
            if getattr(args, o)]
    if len(venues) > 1 and urls:
        raise ConfigurationError(f"symbols of {', '.join(venues)}: each venue takes its URLs from the settings "
                                 "(OKX_WS_URL, BINANCE_WS_URL...), not from the command line",
                                 source="--" + urls[0].replace("_", "-"))
    if len(venues) == 1:  # binance:BTC-USDT alone is a Binance collector
        exchange, symbols = next(iter(venues.items()))
        settings = settings.model_copy(update={"exchange": exchange, "symbols": symbols})
    if args.no_trades:
        settings = settings.model_copy(update={"store_raw_trades": False})
    upgrade(settings.effective_database_url)

    if len(venues) > 1:
        return _run_until_signal(lambda stop: _collect_venues(settings, stop))

    async def main(stop: asyncio.Event) -> int:
        source = None
        ws_url, rest_url = args.ws_url or args.okx_ws_url, args.rest_url or args.okx_rest_url
        perp_ws_url, perp_rest_url = args.perp_ws_url, args.perp_rest_url
        if ws_url is None or rest_url is None:
            source = await resolve_market_source(settings)
            ws_url, rest_url = ws_url or source.ws_url, rest_url or source.rest_url
            perp_ws_url, perp_rest_url = perp_ws_url or source.perp_ws_url, perp_rest_url or source.perp_rest_url
        try:
            await _check_symbols(rest_url, symbols, "--symbols", exchange, perp_rest_url)
        except ConfigurationError:
            if source is not None:
                await source.close()
            raise
        bus = make_bus(settings.redis_url, settings.redis_prefix)
        metrics = None
        tasks = []
        if settings.metrics_port is not None:  # as the platform: /metrics fed from the bus
            from data.ops.metrics import start_metrics_server
            from data.ops.metrics_feed import feed_metrics

            metrics = start_metrics_server(settings.metrics_port)
            tasks.append(asyncio.create_task(feed_metrics(bus, stop), name="metrics"))
        try:
            await run_market_data(settings, bus, stop, symbols=symbols, ws_url=ws_url, rest_url=rest_url,
                                  perp_ws_url=perp_ws_url, perp_rest_url=perp_rest_url)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if metrics is not None:
                metrics.stop()
            await bus.close()
            if source is not None:
                await source.close()
        return 0

    return _run_until_signal(main)


async def _collect_venues(settings: Settings, stop: asyncio.Event) -> int:
    """``collect`` with symbols of several venues: one collector each in this process (``run_venues``)."""
    from data.bus import make_bus
    from data.service import run_venues

    bus = make_bus(settings.redis_url, settings.redis_prefix)
    try:
        await run_venues(settings, bus, stop)
    finally:
        await bus.close()
    return 0


def _parse_time(text: str, option: str) -> int:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"expected an ISO date or time in UTC (2026-01-01 or 2026-01-01T12:00), got "
                                 f"{text!r}", source=option) from None
    return datetime_to_ms(value if value.tzinfo else value.replace(tzinfo=UTC))


def _backfill(args: argparse.Namespace) -> int:
    from data.backfill import backfill_range
    from data.venues import make_rest
    from database.engine import make_engine
    from database.migrate import upgrade

    settings = get_settings()
    start = _parse_time(args.start, "--start")
    end = _parse_time(args.end, "--end") if args.end else datetime_to_ms(datetime.now(UTC))
    if end <= start:
        raise ConfigurationError(f"must be after --start ({args.start}), got {args.end!r}", source="--end")
    _url(args.rest_url, "--rest-url", ("http:", "https:"))
    _url(args.okx_rest_url, "--okx-rest-url", ("http:", "https:"))
    exchange = args.exchange or settings.exchange
    rest_url = args.rest_url or args.okx_rest_url
    if rest_url is None:
        rest_url = {"okx": settings.okx_rest_url, "bybit": settings.bybit_rest_url}.get(exchange) or (
            settings.binance_usdm_rest_url if args.symbol.endswith("-SWAP") else settings.binance_rest_url)
    upgrade(settings.effective_database_url)

    async def main() -> dict[Timeframe, int]:
        await _check_symbols(rest_url, (args.symbol,), "--symbol", exchange, rest_url)
        rest = make_rest(exchange, rest_url, rest_url)
        engine = make_engine(settings.effective_database_url)
        try:
            return await backfill_range(rest, engine, args.symbol, start, end, settings.timeframes, exchange)
        finally:
            await rest.close()
            engine.dispose()

    written = asyncio.run(main())
    print(" ".join(f"{tf}={n}" for tf, n in written.items()))
    return 0


def _replay(args: argparse.Namespace) -> int:
    from data.replay.depth import read_depth_capture
    from data.replay.server import ReplayServer
    from data.replay.tape import read_tape
    from data.service import BINANCE_TAPES, binance_depth, binance_tapes, demo_funding, demo_tapes

    if args.speed < 0:
        raise ConfigurationError(f"must be >= 0 (0 = as fast as the client reads), got {args.speed:g}",
                                 source="--speed")
    if not 0 <= args.port <= 65535:
        raise ConfigurationError(f"must be a TCP port 0-65535, got {args.port}", source="--port")
    if args.tape:
        if len(args.symbol) != len(args.tape):
            raise ConfigurationError(f"give one --symbol per --tape (got {len(args.tape)} tapes, "
                                     f"{len(args.symbol)} symbols)", source="--symbol")
        tapes = {symbol: read_tape(path) for symbol, path in zip(args.symbol, args.tape, strict=True)}
        depth = {}
    elif args.protocol in ("binance", "bybit"):
        tapes = binance_tapes(args.symbol or list(BINANCE_TAPES))
        depth = binance_depth(list(tapes)) if args.protocol == "binance" else {}
    else:
        tapes = demo_tapes(args.symbol or get_settings().symbols)
        depth = {}
    if args.depth and args.protocol != "binance":
        raise ConfigurationError("order books are served on the binance protocol only", source="--depth")
    for item in args.depth:
        symbol, sep, path = item.partition("=")
        if not sep or symbol not in tapes:
            raise ConfigurationError(f"expected SYMBOL=FILE with SYMBOL one of {', '.join(tapes)}, got {item!r}",
                                     source="--depth")
        try:
            depth[symbol] = read_depth_capture(pathlib.Path(path))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(str(exc), source="--depth") from None
    funding = demo_funding(list(tapes)) if args.protocol == "okx" and not args.tape else {}

    async def main(stop: asyncio.Event) -> int:
        server = ReplayServer(tapes, speed=args.speed, loop=args.loop, port=args.port,
                              history_ms=args.history_minutes * 60_000, passes=args.passes, protocol=args.protocol,
                              depth=depth, funding=funding)
        await server.start()
        perp = {"binance": f" usdm {server.usdm_ws_url}", "bybit": f" linear {server.perp_ws_url}"}
        usdm = perp.get(args.protocol, "")
        print(f"replay: serving {','.join(tapes)} as {args.protocol} on {server.ws_url} rest {server.rest_url}{usdm}",
              flush=True)
        await stop.wait()
        await server.close()
        return 0

    return _run_until_signal(main)


def _tape_convert(args: argparse.Namespace) -> int:
    from data.replay.tape import convert_binance

    print(convert_binance(args.source, args.destination))
    return 0


def _tape_synth(args: argparse.Namespace) -> int:
    from data.replay.synth import synthesise

    print(synthesise(args.source, args.destination, seed=args.seed, price_scale=args.price_scale,
                     price_decimals=args.price_decimals, size_decimals=args.size_decimals,
                     first_trade_id=args.first_trade_id))
    return 0
