"""What the components publish reaches the Prometheus endpoint."""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from data import topics
from data.bus import InProcessBus
from data.ops.metrics import REGISTRY, start_metrics_server
from data.ops.metrics_feed import MetricsFeed, feed_metrics


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_cumulative_health_counters_become_increments_once() -> None:
    feed = MetricsFeed()
    before = _value("tcp_trades_received_total", exchange="okx", symbol="FEED-USDT")
    channel = topics.health("collector.okx.FEED-USDT")
    feed.on_message(channel, {"trades": 100, "reconnects": 0, "malformed_frames": {}})  # first report: baseline
    feed.on_message(channel, {"trades": 130, "reconnects": 0, "malformed_frames": {}})
    feed.on_message(channel, {"trades": 130, "reconnects": 0, "malformed_frames": {}})
    assert _value("tcp_trades_received_total", exchange="okx", symbol="FEED-USDT") - before == 30


def test_the_metrics_endpoint_shows_fills_candles_and_the_database_outage() -> None:
    server = start_metrics_server(0)

    async def scenario() -> None:
        bus = InProcessBus()
        stop = asyncio.Event()
        task = asyncio.create_task(feed_metrics(bus, stop))
        await asyncio.sleep(0.05)
        await bus.publish(topics.fills("feed_bot"), {"bot": "feed_bot", "side": "buy"})
        await bus.publish(topics.candles("okx", "FEED-USDT", "1m"), {"timeframe": "1m"})
        await bus.publish(topics.health("writer"), {"db_ok": False, "candles_written": 5, "lag_ms": 20})
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(task, 5)

    try:
        fills_before = _value("tcp_fills_total", bot="feed_bot", side="buy")
        asyncio.run(scenario())
        text = urllib.request.urlopen(server.url, timeout=5).read().decode()
    finally:
        server.stop()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("tcp_fills_total", (("bot", "feed_bot"), ("side", "buy")))] == fills_before + 1
    assert samples[("tcp_database_outage", ())] == 1.0
    assert samples[("tcp_candles_published_total", (("timeframe", "1m"),))] >= 1
