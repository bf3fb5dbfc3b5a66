"""``python main.py dashboard [--host H --port P]``: the dashboard alone, reading what the other
processes write (the database, and Redis when ``REDIS_URL`` is set)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("dashboard", help="run the web dashboard alone (default http://127.0.0.1:8050)")
    parser.add_argument("--host", help="address to bind (default DASHBOARD_HOST, 127.0.0.1); "
                                       "beyond loopback a login is required")
    parser.add_argument("--port", type=int, help="port (default DASHBOARD_PORT, 8050; 0 picks a free one)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from config.settings import get_settings

    settings = get_settings()
    if args.host:
        settings = settings.model_copy(update={"dashboard_host": args.host})
    return asyncio.run(_serve(settings, args.port))


async def _serve(settings, port: int | None) -> int:  # type: ignore[no-untyped-def]
    from dashboard.server import serve_dashboard
    from data.bus import RedisBus

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    bus = RedisBus(settings.redis_url, prefix=settings.redis_prefix) if settings.redis_url else None
    try:
        await serve_dashboard(settings, bus, stop, port=port,
                              on_listening=lambda url: print(f"TCP Dashboard: {url} (Ctrl-C to stop)", flush=True))
    finally:
        if bus is not None:
            await bus.close()
    return 0
