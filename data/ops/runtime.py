"""Switch on a process's operations plumbing from Settings in one call."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from data.ops.event_log import SystemEventHandler, install_system_event_handler
from data.ops.metrics import MetricsServer, start_metrics_server
from data.ops.notifier import MultiNotifier, notifier_from_settings


@dataclass(slots=True)
class Operations:
    """What :func:`start_operations` switched on; ``close()`` stops it (and detaches the handler)."""

    events: SystemEventHandler | None
    metrics_server: MetricsServer | None
    notifier: MultiNotifier

    def close(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.events is not None:
            logging.getLogger().removeHandler(self.events)
            self.events.close()


def start_operations(settings: Settings, session_factory: sessionmaker[Session] | None,
                     component: str) -> Operations:
    """Install the system-event handler (when a database is given), serve ``/metrics`` on
    ``METRICS_PORT`` (loopback) when it is set, and build the notifier from the alert settings.

    Call after :func:`config.logging_setup.setup_logging`. Raises ``ConfigurationError`` for a
    half-configured Telegram channel.
    """
    notifier = notifier_from_settings(settings)
    events = install_system_event_handler(session_factory, component) if session_factory is not None else None
    server = start_metrics_server(settings.metrics_port) if settings.metrics_port is not None else None
    return Operations(events=events, metrics_server=server, notifier=notifier)
