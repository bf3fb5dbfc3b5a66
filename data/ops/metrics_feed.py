"""Feeds the Prometheus metrics from what the components already publish.

The collector, writer and bus report cumulative counters in their health messages
(``health.*`` on the bus); closed candles and paper fills travel on ``candles.*`` and ``fills.*``.
This shell turns them into metric increments (deltas of the cumulative counters), so the hot paths
carry no metrics code. Bots by status come from the bot manager's health row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from data import topics
from data.bus import Bus
from data.ops import metrics
from database.engine import session_scope
from database.repositories.ops import list_health

log = logging.getLogger(__name__)


class MetricsFeed:
    """Pure apart from the metric calls: one bus message in, metric updates out."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def _delta(self, key: str, total: Any) -> int:
        if not isinstance(total, (int, float)):
            return 0
        previous = self._last.get(key)
        self._last[key] = float(total)
        if previous is None or total < previous:  # first report, or the reporter restarted
            return int(total) if previous is not None else 0
        return int(total - previous)

    def on_message(self, channel: str, message: dict[str, Any]) -> None:
        kind, _, rest = channel.partition(".")
        if kind == topics.CANDLES:
            metrics.record_candles_published(str(message.get("timeframe", "?")))
        elif kind == topics.FILLS:
            metrics.record_fill(str(message.get("bot", rest)), str(message.get("side", "?")))
        elif kind == topics.HEALTH:
            self._health(rest, message)

    def _health(self, component: str, data: dict[str, Any]) -> None:
        if component.startswith("collector."):
            _, exchange, symbol = (component.split(".", 2) + ["", ""])[:3]
            if n := self._delta(f"trades:{component}", data.get("trades")):
                metrics.record_trades(exchange, symbol, n)
            if n := self._delta(f"gaps:{component}", data.get("gaps_backfilled")):
                metrics.record_gap_backfilled(symbol, "1m", n)
            # reconnects and malformed frames are per connection, repeated in every symbol's report
            for _ in range(self._delta(f"reconnects:{exchange}", data.get("reconnects"))):
                metrics.record_reconnect("exchange_ws")
            for frame_kind, count in (data.get("malformed_frames") or {}).items():
                for _ in range(self._delta(f"malformed:{exchange}:{frame_kind}", count)):
                    metrics.record_malformed_frame(str(frame_kind))
        elif component == "writer" or component.startswith("writer."):  # writer.<venue>: a second collector
            if n := self._delta(f"candles_written:{component}", data.get("candles_written")):
                metrics.record_candles_written("all", n)
            if isinstance(data.get("lag_ms"), (int, float)):
                metrics.observe_candle_lag(metrics.LagStage.WRITTEN, float(data["lag_ms"]) / 1000)
            if "db_ok" in data:
                metrics.set_database_outage(not data["db_ok"])
        elif component == "bus" or component.startswith("bus."):
            if isinstance(data.get("backlog"), int):
                metrics.set_bus_backlog(data["backlog"], bus=str(data.get("kind", "bus")))
            for _ in range(self._delta(f"reconnects:{component}", data.get("reconnects"))):
                metrics.record_reconnect("redis")

    @staticmethod
    def bots_by_status(data: dict[str, Any]) -> None:
        counts = data.get("by_status")
        if isinstance(counts, dict):
            metrics.set_bots_by_status({str(k): int(v) for k, v in counts.items()})


async def feed_metrics(bus: Bus, stop: asyncio.Event, session_factory: sessionmaker[Session] | None = None,
                       *, bots_every: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
    """Run until ``stop``: bus messages -> metrics; every ``bots_every`` s, bots by status from the database."""
    feed = MetricsFeed()
    subscription = await bus.subscribe(topics.pattern(topics.CANDLES), topics.all_of(topics.FILLS),
                                       topics.all_of(topics.HEALTH))
    next_bots = clock()
    try:
        while not stop.is_set():
            item = await subscription.get(timeout=1.0)
            if item is not None:
                feed.on_message(*item)
            if session_factory is not None and clock() >= next_bots:
                next_bots = clock() + bots_every
                with contextlib.suppress(Exception):  # the database may be down; the writer reports that
                    rows = await asyncio.to_thread(_bot_manager_health, session_factory)
                    for row in rows:
                        feed.bots_by_status(row)
    finally:
        with contextlib.suppress(Exception):
            await subscription.close()


def _bot_manager_health(session_factory: sessionmaker[Session]) -> list[dict[str, Any]]:
    with session_scope(session_factory) as session:
        return [dict(row.data or {}) for row in list_health(session, "bot_manager")]
