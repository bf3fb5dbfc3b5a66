"""Collector health: one report per symbol (``collector.okx.<SYMBOL>``), ``writer`` and ``bus``,
written to ``component_health`` (and published on ``health.<component>``) every few seconds.
System events (outages, gaps repaired, rejected instruments) go to ``system_events``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from data import topics
from data.bus import Bus
from database.engine import make_session_factory, session_scope
from database.repositories.ops import add_system_event, record_health

log = logging.getLogger(__name__)

Report = dict[str, tuple[str, dict[str, Any]]]  # component -> (status, data)


def collector_component(exchange: str, symbol: str) -> str:
    return f"collector.{exchange}.{symbol}"


class HealthReporter:
    """Calls ``build()`` every ``interval`` seconds and stores/publishes the reports it returns."""

    def __init__(self, engine: Engine, bus: Bus, build: Callable[[float], Report], *, interval: float = 5.0,
                 source: str = "collector") -> None:
        self._factory = make_session_factory(engine)
        self.bus = bus
        self.build = build
        self.interval = interval
        self.source = source
        self._events: deque[tuple[str, str, str, dict[str, Any]]] = deque(maxlen=1000)

    def event(self, component: str, level: str, message: str, data: dict[str, Any] | None = None) -> None:
        """Queue a system event (written with the next report; kept while the database is down)."""
        self._events.append((component, level, message, data or {}))

    async def run(self, stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            now = time.monotonic()
            await self.report(now - last)
            last = now

    async def report(self, elapsed: float, final_status: str | None = None) -> None:
        reports = self.build(max(elapsed, 1e-6))
        if final_status is not None:
            reports = {k: (final_status, {**v[1], "stopped": True}) for k, v in reports.items()}
        events = list(self._events)

        def write() -> None:
            with session_scope(self._factory) as session:
                for component, (status, data) in reports.items():
                    record_health(session, component, status, data)
                for component, level, message, data in events:
                    add_system_event(session, component, message, level=level, kind="collector", data=data)

        try:
            await asyncio.to_thread(write)
            for _ in events:
                self._events.popleft()
        except Exception as exc:  # noqa: BLE001 - the database may be down; the writer reports that
            log.debug("health: could not store report", extra={"error": str(exc)[:200]})
        for component, (status, data) in reports.items():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.bus.publish(topics.health(component),
                                                        {"component": component, "status": status, **data}), 1.0)
