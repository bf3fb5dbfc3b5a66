from __future__ import annotations

from database.engine import make_engine, make_session_factory, session_scope
from database.repositories import ops


def test_health_report_is_replaced_and_events_are_listed_newest_first(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        ops.record_health(s, "collector.okx.BTC-USDT", "ok", {"msgs_per_s": 10})
        ops.record_health(s, "collector.okx.BTC-USDT", "degraded", {"msgs_per_s": 0})
        ops.add_system_event(s, "collector", "connected")
        ops.add_system_event(s, "writer", "database down", level="ERROR", kind="outage")
    with session_scope(factory) as s:
        health = ops.list_health(s, "collector.")
        events = ops.recent_system_events(s)
        errors = ops.recent_system_events(s, min_level="ERROR")
    engine.dispose()
    assert [(h.component, h.status, h.data) for h in health] == [
        ("collector.okx.BTC-USDT", "degraded", {"msgs_per_s": 0})]
    assert [e.message for e in events] == ["database down", "connected"]
    assert [e.component for e in errors] == ["writer"]
