"""The pure alert rules: when a kill switch, a collector outage or a database outage alerts."""

from __future__ import annotations

import pytest

from data.ops.alerts import Alert, AlertKind, AlertRules, DuplicateFilter, Severity


def kinds(alerts: list[Alert]) -> list[str]:
    return [a.kind for a in alerts]


def test_a_halted_bot_alerts_critically_and_a_running_one_does_not() -> None:
    rules = AlertRules()
    alert = rules.bot_status_changed("ema-btc", "halted", "drawdown 21% > max 20%")
    assert alert == Alert(AlertKind.BOT_HALTED, Severity.CRITICAL, "Bot ema-btc halted", "drawdown 21% > max 20%",
                          {"bot": "ema-btc", "status": "halted"})
    assert rules.bot_status_changed("ema-btc", "running") is None
    assert rules.bot_status_changed("ema-btc", "stopped") is None
    assert rules.bot_status_changed("rsi-eth", "error").kind == AlertKind.BOT_HALTED  # type: ignore[union-attr]


def test_a_short_disconnect_is_silent_and_a_long_one_alerts_once_then_recovers() -> None:
    rules = AlertRules(collector_disconnect_after=30)
    assert rules.collector_state("okx.BTC-USDT", False, now=100) == []
    assert rules.collector_state("okx.BTC-USDT", True, now=120) == []  # 20 s blip: nothing
    assert rules.collector_state("okx.BTC-USDT", False, now=200) == []
    assert rules.due(now=229) == []
    [alert] = rules.due(now=230)
    assert (alert.kind, alert.severity, alert.data) == (
        AlertKind.COLLECTOR_DISCONNECTED, Severity.ERROR, {"stream": "okx.BTC-USDT", "down_seconds": 30})
    assert rules.due(now=500) == []  # one alert per outage
    assert rules.collector_state("okx.BTC-USDT", False, now=501) == []  # still down, not a new outage
    [recovered] = rules.collector_state("okx.BTC-USDT", True, now=600)
    assert (recovered.kind, recovered.data["down_seconds"]) == (AlertKind.COLLECTOR_RECOVERED, 400)


def test_streams_are_tracked_separately() -> None:
    rules = AlertRules(collector_disconnect_after=10)
    rules.collector_state("okx.BTC-USDT", False, now=0)
    rules.collector_state("okx.ETH-USDT", False, now=5)
    assert [a.data["stream"] for a in rules.due(now=12)] == ["okx.BTC-USDT"]
    recovered = rules.collector_state("okx.BTC-USDT", True, now=14)  # ETH is due at 15, not yet
    assert [(a.kind, a.data["stream"]) for a in recovered] == [(AlertKind.COLLECTOR_RECOVERED, "okx.BTC-USDT")]
    assert [a.data["stream"] for a in rules.due(now=15)] == ["okx.ETH-USDT"]


def test_database_outage_alerts_after_its_delay_and_recovery_follows() -> None:
    rules = AlertRules(database_outage_after=10)
    assert rules.database_state(False, now=0) == []
    assert rules.database_state(False, now=9.9) == []
    assert kinds(rules.database_state(False, now=10)) == [AlertKind.DATABASE_OUTAGE]
    assert rules.database_state(False, now=20) == []
    assert kinds(rules.database_state(True, now=25)) == [AlertKind.DATABASE_RECOVERED]
    assert rules.database_state(True, now=26) == []


def test_an_outage_shorter_than_the_delay_never_claims_a_recovery() -> None:
    rules = AlertRules(database_outage_after=10)
    rules.database_state(False, now=0)
    assert rules.database_state(True, now=3) == []


def test_a_zero_delay_alerts_on_the_first_report_and_negative_delays_are_refused() -> None:
    assert kinds(AlertRules(database_outage_after=0).database_state(False, now=1)) == [AlertKind.DATABASE_OUTAGE]
    with pytest.raises(ValueError, match="-1"):
        AlertRules(collector_disconnect_after=-1)


def test_duplicates_of_the_same_kind_and_title_wait_for_the_window() -> None:
    duplicates = DuplicateFilter(window=60)
    halted = Alert("bot_halted", Severity.CRITICAL, "Bot a halted", "x")
    assert duplicates.allow(halted, now=0)
    assert not duplicates.allow(halted, now=59)
    assert duplicates.allow(Alert("bot_halted", Severity.CRITICAL, "Bot b halted", "x"), now=59)
    assert duplicates.allow(halted, now=61)
    duplicates.forget(halted)
    assert duplicates.allow(halted, now=62)
