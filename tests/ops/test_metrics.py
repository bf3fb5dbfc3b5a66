"""The /metrics endpoint serves every platform metric; the helpers move the right series."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from data.ops import metrics
from data.ops.metrics import LagStage, MetricsServer, start_metrics_server

DOCS = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    handle = start_metrics_server(0)
    yield handle
    handle.stop()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        body = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def delta(before: dict, after: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_helpers_are_visible_over_http_with_the_documented_names(server: MetricsServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}/metrics" and server.port > 0
    before = scrape(server.url)
    metrics.record_trades("okx", "BTC-USDT", 5)
    metrics.record_trades("okx", "ETH-USDT")
    metrics.record_candles_written("1m", 3)
    metrics.record_candles_published("1m")
    metrics.set_bus_backlog(42)
    metrics.observe_candle_lag(LagStage.WRITTEN, 0.03)
    metrics.observe_candle_lag("published", 2.0)
    metrics.record_reconnect("collector.okx")
    metrics.record_malformed_frame("bad_json")
    metrics.record_gap_backfilled("BTC-USDT", "1m", 17)
    metrics.record_fill("ema-btc", "buy")
    metrics.record_error("bot_manager")
    metrics.set_database_outage(True)
    after = scrape(server.url)

    assert delta(before, after, "tcp_trades_received_total", exchange="okx", symbol="BTC-USDT") == 5
    assert delta(before, after, "tcp_trades_received_total", exchange="okx", symbol="ETH-USDT") == 1
    assert delta(before, after, "tcp_candles_written_total", timeframe="1m") == 3
    assert delta(before, after, "tcp_candles_published_total", timeframe="1m") == 1
    assert after[("tcp_bus_backlog", (("bus", "redis"),))] == 42
    assert delta(before, after, "tcp_candle_lag_seconds_count", stage="written") == 1
    assert delta(before, after, "tcp_candle_lag_seconds_bucket", stage="written", le="0.05") == 1
    assert delta(before, after, "tcp_candle_lag_seconds_bucket", stage="written", le="0.025") == 0
    assert delta(before, after, "tcp_candle_lag_seconds_sum", stage="published") == pytest.approx(2.0)
    assert delta(before, after, "tcp_reconnects_total", component="collector.okx") == 1
    assert delta(before, after, "tcp_malformed_frames_total", kind="bad_json") == 1
    assert delta(before, after, "tcp_gaps_backfilled_total", symbol="BTC-USDT", timeframe="1m") == 1
    assert delta(before, after, "tcp_backfilled_candles_total", symbol="BTC-USDT", timeframe="1m") == 17
    assert delta(before, after, "tcp_fills_total", bot="ema-btc", side="buy") == 1
    assert delta(before, after, "tcp_errors_total", component="bot_manager") == 1
    assert after[("tcp_database_outage", ())] == 1
    assert ("process_resident_memory_bytes", ()) in after  # the process collector is registered too
    metrics.set_database_outage(False)
    assert scrape(server.url)[("tcp_database_outage", ())] == 0


def test_bot_counts_are_replaced_and_vanished_statuses_drop_to_zero(server: MetricsServer) -> None:
    metrics.set_bots_by_status({"running": 3, "halted": 1})
    metrics.set_bots_by_status({"running": 2, "stopped": 2})
    values = scrape(server.url)
    assert {status: values[("tcp_bots", (("status", status),))] for status in ("running", "halted", "stopped")} \
        == {"running": 2, "halted": 0, "stopped": 2}


def test_a_negative_lag_is_clamped_and_an_unknown_stage_is_refused() -> None:
    before = metrics.REGISTRY.get_sample_value("tcp_candle_lag_seconds_bucket", {"stage": "written", "le": "0.005"})
    metrics.observe_candle_lag("written", -0.2)  # exchange clock ahead of ours
    after = metrics.REGISTRY.get_sample_value("tcp_candle_lag_seconds_bucket", {"stage": "written", "le": "0.005"})
    assert (after or 0) - (before or 0) == 1
    with pytest.raises(ValueError):
        metrics.observe_candle_lag("stored", 1.0)


def test_a_stopped_server_frees_its_port() -> None:
    handle = start_metrics_server(0)
    url = handle.url
    assert scrape(url)
    handle.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


def test_every_platform_metric_is_in_the_documentation_table() -> None:
    documented = set(re.findall(r"^\| `(tcp_\w+)`", DOCS.read_text(), flags=re.MULTILINE))
    exposed = {f"{family.name}_total" if family.type == "counter" else family.name
               for family in metrics.REGISTRY.collect() if family.name.startswith("tcp_")}
    assert len(exposed) >= 15
    assert documented == exposed
