"""The alert watcher turns what components publish into alerts delivered to a real HTTP receiver."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from data import topics
from data.bus import RedisBus
from data.ops.alerts import AlertRules
from data.ops.notifier import RetryPolicy, WebhookNotifier
from data.ops.watch import alerts_for, watch_alerts


def test_a_halted_bot_event_becomes_one_critical_alert() -> None:
    rules = AlertRules()
    alerts = alerts_for(rules, topics.bot_events("btc"), {"bot": "btc", "kind": "halted",
                                                          "message": "max drawdown 21% > 20%"}, 0.0)
    assert [(a.kind, a.severity, a.title, a.message) for a in alerts] == [
        ("bot_halted", "critical", "Bot btc halted", "max drawdown 21% > 20%")]
    assert alerts_for(rules, topics.bot_events("btc"), {"bot": "btc", "kind": "fill"}, 0.0) == []


def test_a_collector_down_longer_than_the_delay_alerts_once_then_recovers() -> None:
    rules = AlertRules(collector_disconnect_after=30)
    channel = topics.health("collector.okx.BTC-USDT")
    assert alerts_for(rules, channel, {"status": "down"}, 0.0) == []
    assert alerts_for(rules, channel, {"status": "down"}, 29.0) == []
    first = alerts_for(rules, channel, {"status": "down"}, 31.0)
    assert [a.kind for a in first] == ["collector_disconnected"]
    assert alerts_for(rules, channel, {"status": "down"}, 40.0) == []
    assert [a.kind for a in alerts_for(rules, channel, {"status": "ok"}, 45.0)] == ["collector_recovered"]


def test_the_writer_reporting_the_database_down_raises_a_database_outage() -> None:
    rules = AlertRules(database_outage_after=5)
    channel = topics.health("writer")
    assert alerts_for(rules, channel, {"db_ok": False}, 0.0) == []
    assert [a.kind for a in alerts_for(rules, channel, {"db_ok": False}, 6.0)] == ["database_outage"]
    assert [a.kind for a in alerts_for(rules, channel, {"db_ok": True}, 7.0)] == ["database_recovered"]


def test_alerts_from_the_real_redis_bus_reach_a_local_webhook(redis_url: str, redis_prefix: str) -> None:
    received: list[dict[str, Any]] = []

    async def scenario() -> None:
        async def handle(request: web.Request) -> web.Response:
            received.append(await request.json())
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        bus = RedisBus(redis_url, prefix=redis_prefix)
        stop = asyncio.Event()
        notifier = WebhookNotifier(f"http://{host}:{port}/hook", retry=RetryPolicy(attempts=2, first_delay=0.01,
                                                                                   max_delay=0.05, timeout=2.0))
        task = asyncio.create_task(watch_alerts(bus, notifier, stop, rules=AlertRules(database_outage_after=0.2),
                                                tick=0.05))
        try:
            await asyncio.sleep(0.3)  # the watcher subscribes
            await bus.publish(topics.bot_events("eth"), {"bot": "eth", "kind": "halted", "message": "daily loss"})
            await bus.publish(topics.health("writer"), {"component": "writer", "status": "down", "db_ok": False})
            for _ in range(100):
                if len(received) >= 2:
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
            await bus.close()
            await runner.cleanup()

    asyncio.run(scenario())
    assert sorted(r["kind"] for r in received) == ["bot_halted", "database_outage"]
    assert any(r["title"] == "Bot eth halted" and r["message"] == "daily loss" for r in received)
