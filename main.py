"""TCP Dashboard command line.

``python main.py`` runs the whole platform (collector, strategy engine, bots, dashboard);
``python main.py --help`` lists the subcommands. Each package registers its own subcommands.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from config.errors import ConfigurationError

# Packages that add subcommands through a ``register(subparsers)`` function in their ``cli`` module.
COMMAND_MODULES = (
    "database.cli",
    "data.cli",
    "strategies.cli",
    "bot_manager.cli",
    "backtesting.cli",
    "dashboard.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description="TCP Dashboard: OKX market data, strategies, paper-trading bots, backtests, dashboard. "
        "Without a subcommand, runs the whole platform.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = subparsers.add_parser("run", help="run the whole platform (the default without a subcommand)")
    run.set_defaults(func=_run_platform)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def _run_platform(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_platform())


async def _platform() -> int:
    """The whole platform in one process: collector, signal engine + bots, dashboard.

    SIGINT/SIGTERM set one stop event; every component then flushes and returns.
    """
    import asyncio
    import logging
    import signal

    from bot_manager.arbitrage_config import load_arbitrage_folder
    from bot_manager.config import load_bot_folder, load_portfolio
    from bot_manager.runtime import run_bots
    from bot_manager.signal_engine import SignalEngineService
    from bot_manager.watchers import build_signal_engine, load_watchers
    from config.settings import get_settings
    from dashboard.server import serve_dashboard
    from data.bus import make_bus
    from data.ops.metrics_feed import feed_metrics
    from data.ops.runtime import start_operations
    from data.ops.watch import watch_alerts
    from data.service import MarketSource, run_venues
    from database.engine import make_engine, make_session_factory
    from database.migrate import upgrade

    log = logging.getLogger("platform")
    settings = get_settings()
    watchers = []
    if settings.bots_dir.is_dir():  # a bad bot file stops everything before anything starts
        load_bot_folder(settings.bots_dir)
        load_arbitrage_folder(settings.bots_dir)
        load_portfolio(settings.bots_dir)
        watchers = load_watchers(settings.bots_dir)
    upgrade(settings.effective_database_url)
    ops_engine = make_engine(settings.effective_database_url)
    operations = start_operations(settings, make_session_factory(ops_engine), "platform")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    bus = make_bus(settings.redis_url, settings.redis_prefix)
    resolved: asyncio.Future[dict[str, MarketSource]] = loop.create_future()
    tasks = {
        asyncio.create_task(run_venues(settings, bus, stop, on_sources=resolved.set_result), name="collectors"),
        asyncio.create_task(run_bots(settings, bus, stop), name="bots"),
        asyncio.create_task(serve_dashboard(settings, bus, stop), name="dashboard"),
        asyncio.create_task(watch_alerts(bus, operations.notifier, stop), name="alerts"),
    }
    if settings.metrics_port is not None:
        tasks.add(asyncio.create_task(feed_metrics(bus, stop, make_session_factory(ops_engine)), name="metrics"))
    if watchers:
        signal_service = SignalEngineService(build_signal_engine(watchers), make_session_factory(ops_engine))
        tasks.add(asyncio.create_task(signal_service.run(bus, stop), name="signal-engine"))
    failed = 0
    try:
        await asyncio.wait([resolved, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if resolved.done():
            kinds = ", ".join(f"{venue} {source.kind}" for venue, source in resolved.result().items())
            print(f"TCP Dashboard running: http://{settings.dashboard_host}:{settings.dashboard_port} "
                  f"(market source: {kinds}); Ctrl-C to stop", flush=True)
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                failed = 1
                log.error("component %s failed: %r", task.get_name(), task.exception())
                stop.set()
        stop.set()
        await asyncio.wait(tasks, timeout=15)
    finally:
        await bus.close()
        log.info("platform stopped")
        operations.close()
        ops_engine.dispose()
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from config.logging_setup import setup_logging
        from config.settings import get_settings

        settings = get_settings()
        setup_logging(settings.log_level, settings.log_dir)
        if args.command is None:
            args = parser.parse_args(["run", *(argv or [])])
        return int(args.func(args) or 0)
    except ConfigurationError as exc:
        from config.redact import redact

        print(redact(f"error: {exc}"), file=sys.stderr)
        return 2
    except Exception as exc:
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

        from config.redact import mask_url, redact

        if isinstance(exc, ArgumentError | NoSuchModuleError | ValueError) and _from_database_url(exc):
            url = mask_url(get_settings().effective_database_url)
            print(redact(f"error: DATABASE_URL: cannot use the database URL {url}: {exc}; expected "
                         "postgresql://user:password@host:port/db or sqlite:///path"), file=sys.stderr)
            return 2
        if not isinstance(exc, OperationalError):
            import traceback

            print(redact("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
            return 1
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc).splitlines()[0]
        url = mask_url(get_settings().effective_database_url)
        print(redact(f"error: DATABASE_URL: cannot use the database at {url}: {reason}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _from_database_url(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while SQLAlchemy parsed the database URL or loaded its dialect."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "make_engine":
            return True
        tb = tb.tb_next
    return False


if __name__ == "__main__":
    sys.exit(main())
