"""Build the dashboard and serve it with waitress in a thread, beside the asyncio components.

``serve_dashboard`` is what ``python main.py`` runs; ``python main.py dashboard`` runs it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import dash
from sqlalchemy.orm import Session, sessionmaker

from config.domain import Timeframe
from config.settings import Settings
from dashboard.app import build_app
from dashboard.auth import install_basic_auth, require_credentials
from dashboard.books import consume_books, poll_books
from dashboard.context import DashboardContext
from dashboard.live import LiveCandleCache, consume_candles
from dashboard.security import allowed_hosts, install_request_guard
from data.bus import Bus
from database.engine import make_engine, make_session_factory, session_scope
from database.repositories.market import get_candles

log = logging.getLogger(__name__)
CONTEXT_KEY = "tcp_dashboard"
DB_POLL_SECONDS = 2.0


def create_app(settings: Settings, *, bus: Bus | None = None,
               session_factory: sessionmaker[Session] | None = None) -> dash.Dash:
    """The Dash app for ``settings``.

    Raises :class:`~config.errors.ConfigurationError` naming ``DASHBOARD_USERNAME`` or
    ``DASHBOARD_PASSWORD`` when the app is bound beyond loopback without credentials.
    """
    credentials = require_credentials(settings)
    if session_factory is None:
        session_factory = make_session_factory(make_engine(settings.effective_database_url))
    context = DashboardContext(settings, session_factory, LiveCandleCache(), bus)
    app = build_app(context)
    install_request_guard(app.server, allowed_hosts(settings))  # Host/Origin first, then the login
    if credentials is not None:
        install_basic_auth(app.server, *credentials)
    app.server.extensions[CONTEXT_KEY] = context
    return app


def app_context(app: dash.Dash) -> DashboardContext:
    """The :class:`DashboardContext` behind an app made by :func:`create_app`."""
    return app.server.extensions[CONTEXT_KEY]  # type: ignore[no-any-return]


class WsgiServer:
    """waitress serving a WSGI app from a background thread, stoppable from any thread."""

    def __init__(self, wsgi_app: Any, host: str, port: int, threads: int = 8) -> None:
        from waitress.server import create_server

        self._server = create_server(wsgi_app, host=host, port=port, threads=threads, ident="tcp-dashboard",
                                     clear_untrusted_proxy_headers=True)
        self._thread = threading.Thread(target=self._server.run, name="dashboard-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        host = self._server.effective_host  # type: ignore[attr-defined]
        return f"http://{'[' + host + ']' if ':' in str(host) else host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listening socket and open connections, then let the worker threads finish."""
        server = self._server

        def close_all() -> None:
            for channel in list(server._map.values()):  # type: ignore[attr-defined]
                channel.close()

        if self._thread.is_alive():
            server.trigger.pull_trigger(close_all)  # type: ignore[attr-defined]
            self._thread.join(timeout)
        server.task_dispatcher.shutdown(timeout=timeout)  # type: ignore[attr-defined]

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


async def serve_dashboard(settings: Settings, bus: Bus | None, stop: asyncio.Event, *,
                          session_factory: sessionmaker[Session] | None = None, port: int | None = None,
                          on_listening: Callable[[str], None] | None = None) -> None:
    """Serve the dashboard until ``stop`` is set.

    The web server runs in a thread; this coroutine copies candle updates and book tops from ``bus`` into the
    app's live caches (or, without a bus, polls the database for the markets being watched and the newest
    book snapshots).
    ``port`` overrides ``DASHBOARD_PORT`` (0 picks a free port); ``on_listening`` receives the URL.
    """
    app = create_app(settings, bus=bus, session_factory=session_factory)
    context = app_context(app)
    server = WsgiServer(app.server, settings.dashboard_host, settings.dashboard_port if port is None else port)
    server.start()
    log.info("dashboard listening on %s", server.url)
    if on_listening is not None:
        on_listening(server.url)
    feed = consume_candles(bus, context.live, stop) if bus is not None else poll_database(context, stop)
    books = consume_books(bus, context.books, stop) if bus is not None else poll_books(context, stop)
    tasks = [asyncio.create_task(feed, name="dashboard-live"), asyncio.create_task(books, name="dashboard-books")]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(context.close)
        log.info("dashboard stopped")


async def poll_database(context: DashboardContext, stop: asyncio.Event, interval: float = DB_POLL_SECONDS) -> None:
    """Without a bus: refresh the newest stored candles of the markets charts have asked for."""
    while not stop.is_set():
        for exchange, symbol, timeframe in context.live.watched():
            try:
                candles = await asyncio.to_thread(_latest, context, exchange, symbol, Timeframe(timeframe))
            except Exception as exc:  # noqa: BLE001 - the database may be restarting; try again later
                log.warning("dashboard: polling candles of %s %s failed: %s", symbol, timeframe, exc)
                continue
            for candle in candles:
                context.live.update(candle)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def _latest(context: DashboardContext, exchange: str, symbol: str, timeframe: Timeframe) -> list[Any]:
    with session_scope(context.session_factory) as session:
        return get_candles(session, exchange, symbol, timeframe, limit=2)
