"""Store important log records in the ``system_events`` table (what the System page lists).

A record is important when it is WARNING or above, or when it carries ``extra={"event": True}``
(stored with kind ``log``) or ``extra={"event": "<kind>"}`` (e.g. ``"bot_halted"``). ``extra=
{"component": "..."}`` overrides the handler's component for that record.

``emit`` only puts a small dict on a bounded queue; a daemon thread writes batches through
:func:`database.repositories.ops.add_system_event`. A slow or unreachable database therefore never
blocks or breaks logging: while it is down the writer retries the pending batch with backoff, the
queue fills, and further records are dropped and counted (``dropped`` and the
``tcp_system_events_dropped_total`` metric). Records logged by the writer thread itself and by
SQLAlchemy are never queued, so an outage cannot feed on itself.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from config.logging_setup import record_extras
from config.redact import redact
from data.ops import metrics
from database.engine import session_scope
from database.repositories.ops import add_system_event

log = logging.getLogger(__name__)

_LEVEL_WIDTH, _COMPONENT_WIDTH, _KIND_WIDTH = 8, 64, 32
_MESSAGE_LIMIT = 8_000
_IGNORED_LOGGER_PREFIXES = ("sqlalchemy", __name__)


@dataclass(frozen=True, slots=True)
class _Event:
    ts: datetime
    level: str
    component: str
    kind: str
    message: str
    data: dict[str, Any]


def _json_safe(value: object) -> object:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def is_event(record: logging.LogRecord, min_level: int = logging.WARNING) -> bool:
    """True when ``record`` belongs in ``system_events``."""
    return record.levelno >= min_level or bool(getattr(record, "event", False))


def to_event(record: logging.LogRecord, component: str) -> _Event:
    """The row stored for ``record`` (pure: no I/O)."""
    extras = record_extras(record)
    marker = extras.pop("event", None)
    kind = marker if isinstance(marker, str) and marker else "log"
    component = str(extras.pop("component", None) or component)
    data: dict[str, Any] = {"logger": record.name, "where": f"{record.module}.{record.funcName}:{record.lineno}"}
    data.update({key: _json_safe(value) for key, value in extras.items()})
    message = redact(record.getMessage())
    if record.exc_info and record.exc_info[0] is not None:
        data["exception"] = redact(logging.Formatter().formatException(record.exc_info))[-_MESSAGE_LIMIT:]
    return _Event(
        ts=datetime.fromtimestamp(record.created, UTC),
        level=record.levelname[:_LEVEL_WIDTH],
        component=component[:_COMPONENT_WIDTH],
        kind=kind[:_KIND_WIDTH],
        message=message[:_MESSAGE_LIMIT],
        data=data,
    )


class SystemEventHandler(logging.Handler):
    """A logging handler that stores important records in ``system_events`` from a background thread."""

    def __init__(self, session_factory: sessionmaker[Session], component: str, *, capacity: int = 10_000,
                 batch_size: int = 200, flush_interval: float = 0.5, max_backoff: float = 30.0,
                 min_level: int = logging.WARNING) -> None:
        super().__init__(level=logging.NOTSET)
        self.session_factory = session_factory
        self.component = component
        self.min_level = min_level
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[_Event] = queue.Queue(maxsize=capacity)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_backoff = max_backoff
        self._pending: list[_Event] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"system-events-{component}", daemon=True)
        self._thread.start()

    # -- logging side (must never block or raise)

    def emit(self, record: logging.LogRecord) -> None:
        if not is_event(record, self.min_level) or record.name.startswith(_IGNORED_LOGGER_PREFIXES):
            return
        if record.thread == self._thread.ident:
            return
        try:
            self._queue.put_nowait(to_event(record, self.component))
        except queue.Full:
            self._count_dropped("queue_full")
        except Exception:  # noqa: BLE001 - a logging handler must not raise
            self.handleError(record)

    def _count_dropped(self, reason: str, count: int = 1) -> None:
        with self.lock:  # type: ignore[union-attr]  # the handler's RLock: emit already holds it
            self.dropped += count
        metrics.SYSTEM_EVENTS_DROPPED.labels(reason).inc(count)

    # -- writer thread

    def _run(self) -> None:
        backoff = 0.0
        while not (self._stop.is_set() and not self._pending and self._queue.empty()):
            if not self._pending:
                self._fill_pending()
                continue
            if backoff and self._stop.wait(backoff):
                return
            backoff = self._write_pending(backoff)

    def _fill_pending(self) -> None:
        try:
            self._pending.append(self._queue.get(timeout=self._flush_interval))
        except queue.Empty:
            return
        while len(self._pending) < self._batch_size:
            try:
                self._pending.append(self._queue.get_nowait())
            except queue.Empty:
                break

    def _write_pending(self, backoff: float) -> float:
        """Write the pending batch; returns the next backoff (0 once the batch is done with)."""
        try:
            with session_scope(self.session_factory) as session:
                for event in self._pending:
                    add_system_event(session, event.component, event.message, level=event.level,
                                     kind=event.kind, data=event.data, ts=event.ts)
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, OperationalError) or exc.connection_invalidated:
                log.debug("system events: database unavailable, %d waiting", len(self._pending))
                return min(max(backoff * 2, 0.25), self._max_backoff)
            log.debug("system events: database rejected a batch of %d: %s", len(self._pending), exc)
            self._count_dropped("rejected", len(self._pending))
        except Exception as exc:  # noqa: BLE001 - the writer thread must survive anything
            log.debug("system events: batch of %d failed: %s", len(self._pending), exc)
            self._count_dropped("rejected", len(self._pending))
        else:
            self.written += len(self._pending)
            metrics.SYSTEM_EVENTS_WRITTEN.inc(len(self._pending))
        for _ in self._pending:
            self._queue.task_done()
        self._pending = []
        return 0.0

    # -- lifecycle

    def flush(self, timeout: float = 1.0) -> bool:  # type: ignore[override]
        """Wait up to ``timeout`` seconds until every queued record is stored or dropped; True if so."""
        with self._queue.all_tasks_done:
            return self._queue.all_tasks_done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout)

    def close(self, timeout: float = 2.0) -> None:  # type: ignore[override]
        """Store what is queued (waiting at most ``timeout`` seconds), then stop the writer thread."""
        if self._thread.is_alive():
            self.flush(timeout)
            self._stop.set()
            self._thread.join(timeout)
        super().close()


_install_lock = threading.Lock()


def install_system_event_handler(session_factory: sessionmaker[Session], component: str,
                                 **options: Any) -> SystemEventHandler:
    """Attach a :class:`SystemEventHandler` to the root logger and return it.

    Idempotent: calling it again with the same factory and component returns the installed handler;
    with different ones, the old handler is flushed, closed and replaced. ``options`` go to
    :class:`SystemEventHandler` (``capacity``, ``batch_size``, ``flush_interval``, ``max_backoff``,
    ``min_level``).
    """
    root = logging.getLogger()
    with _install_lock:
        for handler in list(root.handlers):
            if isinstance(handler, SystemEventHandler):
                if handler.session_factory is session_factory and handler.component == component:
                    return handler
                root.removeHandler(handler)
                handler.close()
        handler = SystemEventHandler(session_factory, component, **options)
        root.addHandler(handler)
        return handler
