"""The alert watcher: the I/O shell around :class:`data.ops.alerts.AlertRules`.

It listens on the bus to what the components already publish — ``health.*`` (collector streams,
the storage writer) and ``bot_events.*`` (a bot ``halted`` by its kill switch) — feeds the rules,
and sends the alerts they return through a notifier. Listening on the bus rather than reading
the database means a database outage is still reported while the database is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from data import topics
from data.bus import Bus
from data.ops.alerts import Alert, AlertRules
from data.ops.notifier import Notifier

log = logging.getLogger(__name__)

COLLECTOR_PREFIX = "collector."
WRITER = "writer"


def alerts_for(rules: AlertRules, channel: str, message: dict[str, Any], now: float) -> list[Alert]:
    """What one bus message means for the rules (pure apart from the rules' own state)."""
    if channel.startswith(topics.HEALTH + "."):
        component = channel[len(topics.HEALTH) + 1:]
        if component.startswith(COLLECTOR_PREFIX):
            connected = message.get("status") != "down" and not message.get("stopped", False)
            if message.get("stopped"):
                return rules.due(now)
            return rules.collector_state(component[len(COLLECTOR_PREFIX):], connected, now)
        if (component == WRITER or component.startswith(WRITER + ".")) and "db_ok" in message:
            return rules.database_state(bool(message["db_ok"]), now)
        return rules.due(now)
    if channel.startswith(topics.BOT_EVENTS + ".") and message.get("kind") == "halted":
        alert = rules.bot_status_changed(str(message.get("bot", channel.split(".", 1)[1])), "halted",
                                         str(message.get("message", "")))
        return [alert] if alert is not None else []
    return []


async def watch_alerts(bus: Bus, notifier: Notifier, stop: asyncio.Event, *, rules: AlertRules | None = None,
                       tick: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
    """Run until ``stop`` is set: bus messages -> rules -> notifier (which never raises)."""
    rules = rules or AlertRules()
    subscription = await bus.subscribe(topics.all_of(topics.HEALTH), topics.all_of(topics.BOT_EVENTS))
    try:
        while not stop.is_set():
            item = await subscription.get(timeout=tick)
            now = clock()
            alerts = rules.due(now) if item is None else alerts_for(rules, item[0], item[1], now)
            for alert in alerts:
                log.info("alert due: %s", alert.title, extra={"alert": str(alert.kind)})
                await notifier.send(alert)
    finally:
        with contextlib.suppress(Exception):
            await subscription.close()
