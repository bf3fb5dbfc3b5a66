"""Alerts as values, and the pure rules that decide when one is due.

:class:`AlertRules` holds no clock and does no I/O: callers report what they saw with the time
(``now``, seconds on any monotonic clock) and send whatever alerts come back through a
:class:`data.ops.notifier.Notifier`. Rules:

* a bot whose status becomes ``halted`` (kill switch) or ``error``: one critical alert;
* a collector stream disconnected for at least ``collector_disconnect_after`` seconds: one
  error alert per outage, and a recovery alert when it reconnects after that;
* the database unreachable for at least ``database_outage_after`` seconds: the same, critical.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class AlertKind(StrEnum):
    BOT_HALTED = "bot_halted"
    COLLECTOR_DISCONNECTED = "collector_disconnected"
    COLLECTOR_RECOVERED = "collector_recovered"
    DATABASE_OUTAGE = "database_outage"
    DATABASE_RECOVERED = "database_recovered"


@dataclass(frozen=True, slots=True)
class Alert:
    """One notification. ``kind`` groups alerts (duplicates of a kind and title are rate-limited)."""

    kind: str
    severity: Severity
    title: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        return f"{self.kind}|{self.title}"


class DuplicateFilter:
    """Lets an alert through unless one with the same kind and title passed less than ``window`` s ago."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._last_sent: dict[str, float] = {}

    def allow(self, alert: Alert, now: float) -> bool:
        last = self._last_sent.get(alert.dedupe_key)
        if last is not None and now - last < self.window:
            return False
        self._last_sent[alert.dedupe_key] = now
        return True

    def forget(self, alert: Alert) -> None:
        """Let the next alert like this one through (e.g. because this one was not delivered)."""
        self._last_sent.pop(alert.dedupe_key, None)


@dataclass(slots=True)
class _Outage:
    since: float
    alerted: bool = False


class AlertRules:
    """Turns observations into alerts (see the module docstring for the rules)."""

    HALTING_STATUSES = frozenset({"halted", "error"})

    def __init__(self, collector_disconnect_after: float = 60.0, database_outage_after: float = 10.0) -> None:
        if collector_disconnect_after < 0 or database_outage_after < 0:
            raise ValueError("alert delays must be >= 0 seconds, got "
                             f"{collector_disconnect_after!r} and {database_outage_after!r}")
        self.collector_disconnect_after = collector_disconnect_after
        self.database_outage_after = database_outage_after
        self._collectors: dict[str, _Outage] = {}
        self._database: _Outage | None = None

    def bot_status_changed(self, bot: str, status: str, reason: str = "") -> Alert | None:
        """An alert when ``bot`` stopped itself (kill switch, strategy failure), else None."""
        if status not in self.HALTING_STATUSES:
            return None
        return Alert(AlertKind.BOT_HALTED, Severity.CRITICAL, f"Bot {bot} {status}",
                     reason or f"bot {bot} changed status to {status}", {"bot": bot, "status": status})

    def collector_state(self, stream: str, connected: bool, now: float) -> list[Alert]:
        """Report whether collector ``stream`` (e.g. ``okx.BTC-USDT``) is connected; returns due alerts."""
        outage = self._collectors.get(stream)
        if not connected:
            if outage is None:
                self._collectors[stream] = _Outage(since=now)
            return self.due(now)
        if outage is None:
            return self.due(now)
        del self._collectors[stream]
        alerts = self.due(now)
        if outage.alerted:
            down = now - outage.since
            alerts.append(Alert(AlertKind.COLLECTOR_RECOVERED, Severity.INFO, f"Collector {stream} reconnected",
                                f"{stream} is receiving data again after {down:.0f} s",
                                {"stream": stream, "down_seconds": round(down, 3)}))
        return alerts

    def database_state(self, reachable: bool, now: float) -> list[Alert]:
        """Report whether the database answers; returns due alerts."""
        if not reachable:
            if self._database is None:
                self._database = _Outage(since=now)
            return self.due(now)
        outage, self._database = self._database, None
        alerts = self.due(now)
        if outage is not None and outage.alerted:
            down = now - outage.since
            alerts.append(Alert(AlertKind.DATABASE_RECOVERED, Severity.INFO, "Database reachable again",
                                f"the database answers again after {down:.0f} s", {"down_seconds": round(down, 3)}))
        return alerts

    def due(self, now: float) -> list[Alert]:
        """Alerts for outages that just passed their delay (each outage alerts once). Call it periodically."""
        alerts: list[Alert] = []
        for stream, outage in self._collectors.items():
            if not outage.alerted and now - outage.since >= self.collector_disconnect_after:
                outage.alerted = True
                down = now - outage.since
                alerts.append(Alert(AlertKind.COLLECTOR_DISCONNECTED, Severity.ERROR,
                                    f"Collector {stream} disconnected",
                                    f"no connection to {stream} for {down:.0f} s",
                                    {"stream": stream, "down_seconds": round(down, 3)}))
        db = self._database
        if db is not None and not db.alerted and now - db.since >= self.database_outage_after:
            db.alerted = True
            down = now - db.since
            alerts.append(Alert(AlertKind.DATABASE_OUTAGE, Severity.CRITICAL, "Database unreachable",
                                f"the database has not answered for {down:.0f} s; writes are buffered",
                                {"down_seconds": round(down, 3)}))
        return alerts
