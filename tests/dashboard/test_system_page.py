from __future__ import annotations

from datetime import UTC, datetime, timedelta

from config.settings import load_settings
from dashboard.context import DashboardContext
from dashboard.live import LiveCandleCache
from dashboard.pages.system import refresh
from dashboard.system_data import format_value, health_rows, mask_secrets
from database.engine import session_scope
from database.repositories.ops import add_system_event, record_health


def text(component: object) -> str:
    return str(component)


def test_collectors_components_and_events_are_shown_from_the_database(context: DashboardContext) -> None:
    now = datetime.now(UTC)
    with session_scope(context.session_factory) as session:
        record_health(session, "collector.okx.BTC-USDT", "ok",
                      {"state": "subscribed", "last_trade_ms": int(now.timestamp() * 1000) - 1500,
                       "trades_per_s": 12.5, "reconnects": 2, "gaps_backfilled": 1,
                       "malformed_frames": {"bad_json": 2, "unknown_channel": 1}})
        record_health(session, "collector.okx.ETH-USDT", "degraded", {"state": "connecting", "reconnects": 9},
                      at=now - timedelta(minutes=5))
        record_health(session, "writer", "ok", {"pending": 0, "api_key": "sk-live-123"})
        add_system_event(session, "collector", "reconnected after 3 s", level="WARNING", kind="reconnect")
    collectors, components, storage, process, events = map(text, refresh(context))
    assert "okx.BTC-USDT" in collectors and "12.50" in collectors and "s ago" in collectors
    assert "malformed frames" in collectors and "'3'" in collectors  # 2 + 1 frames, by kind
    assert "okx.ETH-USDT" in collectors and "stale" in collectors
    assert "writer" in components and "sk-live-123" not in components and "***" in components
    assert "database" in storage and "ok," in storage and "not configured" in storage
    assert "MiB" in process
    assert "reconnected after 3 s" in events and "WARNING" in events


def test_redis_health_is_measured_when_redis_is_configured(context: DashboardContext, redis_url: str) -> None:
    settings = load_settings({"DATABASE_URL": context.settings.database_url, "REDIS_URL": redis_url})
    storage = text(refresh(DashboardContext(settings, context.session_factory, LiveCandleCache()))[2])
    assert "redis" in storage and "not configured" not in storage and "down" not in storage


def test_an_unreachable_redis_is_reported_down_not_raised(context: DashboardContext) -> None:
    settings = load_settings({"DATABASE_URL": context.settings.database_url, "REDIS_URL": "redis://127.0.0.1:1/0"})
    storage = text(refresh(DashboardContext(settings, context.session_factory, LiveCandleCache()))[2])
    assert "down (ConnectionError)" in storage


def test_secrets_are_masked_at_any_depth() -> None:
    masked = mask_secrets({"token": "t", "nested": {"password": "p", "ok": 1}, "count": 2})
    assert masked == {"token": "***", "nested": {"password": "***", "ok": 1}, "count": 2}


def test_health_ages_are_measured_from_the_report_time(context: DashboardContext) -> None:
    now = datetime.now(UTC)
    with session_scope(context.session_factory) as session:
        record_health(session, "bot_manager", "ok", {}, at=now - timedelta(seconds=90))
        rows = health_rows(session, now=now)
    assert rows[0].age_s == 90 and rows[0].stale


def test_values_are_formatted_for_people() -> None:
    assert format_value("connected", True) == "yes"
    assert format_value("last_trade_ms", 1_000_000_000_000, now_ms=1_000_000_004_000) == "4.0 s ago"
    assert format_value("msgs_per_s", 1234.5) == "1,234.50"
    assert format_value("gaps", None) == "–"
    assert format_value("malformed_frames", {"bad_json": 2, "truncated": 5}) == "7"
