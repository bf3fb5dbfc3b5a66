"""Important log records land in system_events, batched from a thread that a slow or dead
database cannot block."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from data.ops import metrics
from data.ops.event_log import SystemEventHandler, install_system_event_handler
from database.engine import make_engine, make_session_factory, session_scope
from database.models import SystemEvent
from database.repositories.ops import recent_system_events

DEAD_DATABASE = "postgresql://postgres@127.0.0.1:1/nothing_listens_here"
log = logging.getLogger("tests.ops.events")


@pytest.fixture(autouse=True)
def verbose_test_logger() -> Iterator[None]:
    log.setLevel(logging.DEBUG)
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, SystemEventHandler):
            root.removeHandler(handler)
            handler.close(timeout=1)


def factory_for(url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(url))


def dropped_metric() -> float:
    return metrics.REGISTRY.get_sample_value("tcp_system_events_dropped_total", {"reason": "queue_full"}) or 0.0


def stored(factory: sessionmaker[Session]) -> list[SystemEvent]:
    with session_scope(factory) as session:
        return list(reversed(recent_system_events(session, limit=10_000)))


def test_warnings_and_marked_records_are_stored_and_plain_info_is_not(db_url: str) -> None:
    factory = factory_for(db_url)
    handler = install_system_event_handler(factory, "collector", flush_interval=0.05)
    log.info("just chatter")
    log.warning("reconnecting to %s", "OKX", extra={"attempt": 3, "when": datetime(2026, 1, 1, tzinfo=UTC)})
    log.info("bot started", extra={"event": True, "bot": "ema-btc"})
    log.info("kill switch", extra={"event": "bot_halted", "component": "bot_manager", "bot": "ema-btc"})
    try:
        raise RuntimeError("socket closed")
    except RuntimeError:
        log.exception("stream failed")
    assert handler.flush(10)
    rows = stored(factory)
    assert [(r.level, r.component, r.kind, r.message) for r in rows] == [
        ("WARNING", "collector", "log", "reconnecting to OKX"),
        ("INFO", "collector", "log", "bot started"),
        ("INFO", "bot_manager", "bot_halted", "kill switch"),
        ("ERROR", "collector", "log", "stream failed"),
    ]
    assert rows[0].data["attempt"] == 3 and rows[0].data["when"] == "2026-01-01 00:00:00+00:00"
    assert rows[0].data["logger"] == "tests.ops.events"
    assert rows[2].data["bot"] == "ema-btc"
    assert "RuntimeError: socket closed" in rows[3].data["exception"]
    assert handler.written == 4 and handler.dropped == 0


def test_installing_twice_keeps_one_handler_and_a_new_component_replaces_it(sqlite_url: str) -> None:
    factory = factory_for(sqlite_url)
    first = install_system_event_handler(factory, "collector")
    assert install_system_event_handler(factory, "collector") is first
    ours = [h for h in logging.getLogger().handlers if isinstance(h, SystemEventHandler)]
    assert ours == [first]
    second = install_system_event_handler(factory, "dashboard", flush_interval=0.05)
    assert [h for h in logging.getLogger().handlers if isinstance(h, SystemEventHandler)] == [second]
    log.warning("after the switch")
    assert second.flush(10)
    assert [(r.component, r.message) for r in stored(factory)] == [("dashboard", "after the switch")]


def test_a_locked_table_does_not_block_logging_and_the_overflow_is_counted(pg_clean: str) -> None:
    factory = factory_for(pg_clean)
    handler = install_system_event_handler(factory, "writer", capacity=50, batch_size=10, flush_interval=0.05)
    dropped_before = dropped_metric()
    locker = make_engine(pg_clean).connect()
    transaction = locker.begin()
    locker.execute(text("LOCK TABLE system_events IN ACCESS EXCLUSIVE MODE"))
    try:
        log.warning("first, its insert now waits for the lock")

        def log_many() -> None:
            for i in range(300):
                log.warning("event %d", i)

        producer = threading.Thread(target=log_many)
        producer.start()
        producer.join(timeout=10)
        assert not producer.is_alive(), "logging blocked while the database was locked"
        assert handler.flush(0.3) is False  # still waiting on the lock
    finally:
        transaction.commit()
        locker.close()
    assert handler.flush(15)
    with session_scope(factory) as session:
        count = session.scalar(select(func.count()).select_from(SystemEvent))
    assert handler.dropped > 0
    assert count == handler.written == 301 - handler.dropped
    assert dropped_metric() - dropped_before == handler.dropped


def test_events_wait_while_the_database_is_down_and_are_written_with_their_own_time_once_it_returns(
        pg_clean: str) -> None:
    factory = factory_for(DEAD_DATABASE)
    handler = install_system_event_handler(factory, "collector", flush_interval=0.05, max_backoff=0.2)
    logged_at = datetime.now(UTC)
    for i in range(5):
        log.error("outage %d", i)
    assert handler.flush(0.5) is False and handler.written == 0
    factory.configure(bind=make_engine(pg_clean))  # the database comes back
    assert handler.flush(15)
    rows = stored(factory)
    assert [r.message for r in rows] == [f"outage {i}" for i in range(5)]
    assert all(abs((r.ts - logged_at).total_seconds()) < 0.5 for r in rows)
    assert handler.dropped == 0


def test_closing_during_an_outage_returns_promptly_and_logging_never_raises() -> None:
    handler = install_system_event_handler(factory_for(DEAD_DATABASE), "dashboard", flush_interval=0.05)
    log.critical("database gone")
    handler.close(timeout=0.5)
    logging.getLogger().removeHandler(handler)
    assert not handler._thread.is_alive()
    assert handler.written == 0
