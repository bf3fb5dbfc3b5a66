"""Prometheus metrics: every metric of the platform is defined here, in one registry.

Other packages never create metrics; they call the small ``record_*`` / ``set_*`` / ``observe_*``
functions below, so names, labels and units stay in one place (docs/observability.md has the table).
``start_metrics_server`` exposes ``REGISTRY`` on ``http://HOST:PORT/metrics``.

Rates such as trades per second are not stored: Prometheus derives them, e.g.
``rate(tcp_trades_received_total[1m])``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# Seconds from a trade's exchange timestamp to its candle being stored / published. Closed
# candles are written when the next period starts, so the upper buckets cover a full minute.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class LagStage(StrEnum):
    WRITTEN = "written"
    PUBLISHED = "published"


TRADES_RECEIVED = Counter(
    "tcp_trades_received", "Public trades received from the exchange.", ["exchange", "symbol"], registry=REGISTRY)
CANDLES_WRITTEN = Counter(
    "tcp_candles_written", "Candles upserted into the database.", ["timeframe"], registry=REGISTRY)
CANDLES_PUBLISHED = Counter(
    "tcp_candles_published", "Closed candles published on the bus.", ["timeframe"], registry=REGISTRY)
BUS_BACKLOG = Gauge(
    "tcp_bus_backlog", "Messages waiting to be sent on the bus (Redis outage backlog).", ["bus"],
    registry=REGISTRY)
CANDLE_LAG = Histogram(
    "tcp_candle_lag_seconds", "Seconds from the last trade's exchange time to its candle being written or "
    "published.", ["stage"], buckets=LAG_BUCKETS, registry=REGISTRY)
RECONNECTS = Counter(
    "tcp_reconnects", "Reconnections of a connection (exchange WebSocket, Redis, database).", ["component"],
    registry=REGISTRY)
MALFORMED_FRAMES = Counter(
    "tcp_malformed_frames", "Exchange messages that could not be parsed, by kind.", ["kind"], registry=REGISTRY)
GAPS_BACKFILLED = Counter(
    "tcp_gaps_backfilled", "Candle gaps filled from the exchange's REST history.", ["symbol", "timeframe"],
    registry=REGISTRY)
CANDLES_BACKFILLED = Counter(
    "tcp_backfilled_candles", "Candles written by backfill.", ["symbol", "timeframe"], registry=REGISTRY)
BOTS_BY_STATUS = Gauge(
    "tcp_bots", "Bots by status.", ["status"], registry=REGISTRY)
FILLS = Counter(
    "tcp_fills", "Paper fills.", ["bot", "side"], registry=REGISTRY)
ERRORS = Counter(
    "tcp_errors", "Errors handled (logged and survived), by component.", ["component"], registry=REGISTRY)
DATABASE_OUTAGE = Gauge(
    "tcp_database_outage", "1 while the database is unreachable, else 0.", registry=REGISTRY)
SYSTEM_EVENTS_WRITTEN = Counter(
    "tcp_system_events_written", "Log records stored in the system_events table.", registry=REGISTRY)
SYSTEM_EVENTS_DROPPED = Counter(
    "tcp_system_events_dropped", "Log records not stored in system_events (queue full or rejected).",
    ["reason"], registry=REGISTRY)
ALERTS = Counter(
    "tcp_alerts", "Alerts handled by a notifier, by channel and outcome (sent, failed, suppressed).",
    ["channel", "outcome"], registry=REGISTRY)


_bot_statuses_seen: set[str] = set()


def record_trades(exchange: str, symbol: str, count: int = 1) -> None:
    """Count ``count`` trades received for ``symbol``."""
    TRADES_RECEIVED.labels(exchange, symbol).inc(count)


def record_candles_written(timeframe: str, count: int = 1) -> None:
    CANDLES_WRITTEN.labels(str(timeframe)).inc(count)


def record_candles_published(timeframe: str, count: int = 1) -> None:
    CANDLES_PUBLISHED.labels(str(timeframe)).inc(count)


def set_bus_backlog(size: int, bus: str = "redis") -> None:
    BUS_BACKLOG.labels(bus).set(size)


def observe_candle_lag(stage: LagStage | str, seconds: float) -> None:
    """Record the delay from a trade's exchange timestamp to its candle being written or published."""
    CANDLE_LAG.labels(LagStage(stage).value).observe(max(seconds, 0.0))


def record_reconnect(component: str) -> None:
    RECONNECTS.labels(component).inc()


def record_malformed_frame(kind: str) -> None:
    MALFORMED_FRAMES.labels(kind).inc()


def record_gap_backfilled(symbol: str, timeframe: str, candles: int) -> None:
    """Count one filled gap and the ``candles`` it brought back."""
    GAPS_BACKFILLED.labels(symbol, str(timeframe)).inc()
    CANDLES_BACKFILLED.labels(symbol, str(timeframe)).inc(candles)


def set_bots_by_status(counts: Mapping[str, int]) -> None:
    """Replace the bot counts; statuses seen before but absent from ``counts`` drop to 0."""
    for status in _bot_statuses_seen - set(counts):
        BOTS_BY_STATUS.labels(status).set(0)
    for status, count in counts.items():
        BOTS_BY_STATUS.labels(str(status)).set(count)
        _bot_statuses_seen.add(str(status))


def record_fill(bot: str, side: str) -> None:
    FILLS.labels(bot, str(side)).inc()


def record_error(component: str) -> None:
    ERRORS.labels(component).inc()


def set_database_outage(active: bool) -> None:
    DATABASE_OUTAGE.set(1 if active else 0)


@dataclass(slots=True)
class MetricsServer:
    """A running ``/metrics`` endpoint; ``stop()`` shuts it down and frees the port."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self, timeout: float = 5.0) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)


def start_metrics_server(port: int, host: str = "127.0.0.1",
                         registry: CollectorRegistry = REGISTRY) -> MetricsServer:
    """Serve ``registry`` on ``http://host:port/metrics`` from a daemon thread (port 0 = any free port).

    Binds to loopback unless told otherwise: the endpoint has no authentication.
    """
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(host=host, port=int(server.server_port), _server=server, _thread=thread)
