"""Notifiers against real local HTTP servers standing in for Telegram and a webhook receiver."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from config.errors import ConfigurationError
from config.settings import load_settings
from data.ops.alerts import Alert, Severity
from data.ops.notifier import (
    LogNotifier,
    MultiNotifier,
    RetryPolicy,
    TelegramNotifier,
    WebhookNotifier,
    notifier_from_settings,
)

TOKEN = "123456:AAE-secret-token-value"
FAST = RetryPolicy(attempts=3, first_delay=0.01, max_delay=0.05, timeout=2.0)
HALTED = Alert("bot_halted", Severity.CRITICAL, "Bot ema-btc halted", "drawdown 21% > 20%", {"bot": "ema-btc"})


@dataclass
class FakeServer:
    """Answers POSTs with scripted (status, json body, delay) replies, then 200; records every request."""

    script: list[tuple[int, dict[str, Any], float]] = field(default_factory=list)
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.path, await request.json()))
        status, body, delay = self.script.pop(0) if self.script else (200, {"ok": True, "result": {}}, 0.0)
        if delay:
            await asyncio.sleep(delay)
        if status == 307:
            raise web.HTTPTemporaryRedirect(request.path)
        return web.json_response(body, status=status)


async def with_server(server: FakeServer, body: Callable[[], Awaitable[None]]) -> None:
    app = web.Application()
    app.router.add_post("/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)  # the stand-in's own log is not ours
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.url = f"http://{host}:{port}"
    try:
        await asyncio.wait_for(body(), timeout=20)
    finally:
        await runner.cleanup()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog: pytest.LogCaptureFixture):  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    yield
    leaked = [r for r in caplog.get_records("call") if TOKEN in r.getMessage() or TOKEN in str(r.__dict__)]
    assert not leaked, "the Telegram token appeared in the log"


def test_telegram_receives_the_message_for_the_configured_chat() -> None:
    server = FakeServer()

    async def body() -> None:
        assert await TelegramNotifier(TOKEN, "-100200", server.url, retry=FAST).send(HALTED) is True

    asyncio.run(with_server(server, body))
    [(path, payload)] = server.received
    assert path == f"/bot{TOKEN}/sendMessage"
    assert payload["chat_id"] == "-100200"
    assert payload["text"] == "[CRITICAL] Bot ema-btc halted\ndrawdown 21% > 20%"


def test_server_errors_and_rate_limits_are_retried_until_delivered() -> None:
    server = FakeServer(script=[(500, {"ok": False}, 0.0),
                                (429, {"ok": False, "parameters": {"retry_after": 0.01}}, 0.0)])

    async def body() -> None:
        assert await TelegramNotifier(TOKEN, "1", server.url, retry=FAST).send(HALTED) is True

    asyncio.run(with_server(server, body))
    assert len(server.received) == 3


def test_a_rejected_request_is_not_retried_and_does_not_raise() -> None:
    server = FakeServer(script=[(400, {"ok": False, "description": "Bad Request: chat not found"}, 0.0)])

    async def body() -> None:
        assert await TelegramNotifier(TOKEN, "1", server.url, retry=FAST).send(HALTED) is False

    asyncio.run(with_server(server, body))
    assert len(server.received) == 1


def test_an_unreachable_or_slow_receiver_gives_up_after_the_retries_without_raising(
        caplog: pytest.LogCaptureFixture) -> None:
    slow = FakeServer(script=[(200, {}, 1.0), (200, {}, 1.0)])

    async def body() -> None:
        policy = RetryPolicy(attempts=2, first_delay=0.01, timeout=0.2)
        assert await TelegramNotifier(TOKEN, "1", closed_port_url(), retry=policy).send(HALTED) is False
        assert await WebhookNotifier(slow.url + "/hook", retry=policy).send(HALTED) is False

    asyncio.run(with_server(slow, body))
    assert len(slow.received) == 2
    failures = [r for r in caplog.records if r.getMessage().startswith("alert delivery failed")]
    assert [(r.channel, r.attempt) for r in failures] == [  # type: ignore[attr-defined]
        ("telegram", 1), ("telegram", 2), ("webhook", 1), ("webhook", 2)]


def test_a_duplicate_within_the_window_is_suppressed_but_a_failed_one_is_not() -> None:
    server = FakeServer(script=[(400, {}, 0.0)])
    clock = [1000.0]

    async def body() -> None:
        hook = WebhookNotifier(server.url + "/hook", retry=FAST, dedupe_window=60, clock=lambda: clock[0])
        assert await hook.send(HALTED) is False  # rejected: does not start the window
        assert await hook.send(HALTED) is True
        clock[0] += 59
        assert await hook.send(HALTED) is False  # suppressed, not sent
        other = Alert("bot_halted", Severity.CRITICAL, "Bot rsi-eth halted", "x")
        assert await hook.send(other) is True
        clock[0] += 2
        assert await hook.send(HALTED) is True

    asyncio.run(with_server(server, body))
    assert [p["title"] for _, p in server.received] == [
        "Bot ema-btc halted", "Bot ema-btc halted", "Bot rsi-eth halted", "Bot ema-btc halted"]


def test_the_webhook_gets_the_alert_as_json() -> None:
    server = FakeServer()

    async def body() -> None:
        assert await WebhookNotifier(server.url + "/alerts", retry=FAST).send(HALTED) is True

    asyncio.run(with_server(server, body))
    [(path, payload)] = server.received
    assert path == "/alerts"
    assert {k: payload[k] for k in ("kind", "severity", "title", "message", "data", "text")} == {
        "kind": "bot_halted", "severity": "critical", "title": "Bot ema-btc halted",
        "message": "drawdown 21% > 20%", "data": {"bot": "ema-btc"},
        "text": "Bot ema-btc halted: drawdown 21% > 20%"}
    assert payload["ts"].endswith("+00:00")


def test_settings_build_every_configured_channel_and_one_failing_channel_spares_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    telegram = FakeServer(script=[(503, {}, 0.0)] * 3)
    hook = FakeServer()

    async def body() -> None:
        settings = load_settings({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": "42",
                                  "TELEGRAM_API_URL": telegram.url, "ALERT_WEBHOOK_URL": hook.url + "/hook"})
        notifier = notifier_from_settings(settings, retry=FAST)
        assert [type(n) for n in notifier.notifiers] == [LogNotifier, TelegramNotifier, WebhookNotifier]
        assert TOKEN not in repr(notifier.notifiers[1])
        assert await notifier.send(HALTED) is True

    async def both() -> None:
        await with_server(hook, body)

    asyncio.run(with_server(telegram, both))
    assert len(telegram.received) == 3 and len(hook.received) == 1
    [logged] = [r for r in caplog.records if getattr(r, "event", None) == "alert"]
    assert (logged.levelno, logged.getMessage()) == (logging.CRITICAL, "ALERT Bot ema-btc halted: drawdown 21% > 20%")


def test_without_channels_alerts_are_only_logged_and_half_a_telegram_setup_is_refused() -> None:
    notifier = notifier_from_settings(load_settings({}))
    assert [type(n) for n in notifier.notifiers] == [LogNotifier]
    assert asyncio.run(notifier.send(HALTED)) is True
    with pytest.raises(ConfigurationError, match="^TELEGRAM_CHAT_ID: is required"):
        notifier_from_settings(load_settings({"TELEGRAM_BOT_TOKEN": TOKEN}))
    with pytest.raises(ConfigurationError, match="^TELEGRAM_BOT_TOKEN: is required"):
        notifier_from_settings(load_settings({"TELEGRAM_CHAT_ID": "42"}))


def test_a_multi_notifier_reports_failure_when_no_remote_channel_delivered() -> None:
    async def body() -> None:
        dead = WebhookNotifier(closed_port_url(), retry=RetryPolicy(attempts=1, timeout=1))
        assert await MultiNotifier([LogNotifier(), dead]).send(HALTED) is False

    asyncio.run(body())


def test_an_error_that_quotes_the_request_url_is_logged_without_the_token(
        caplog: pytest.LogCaptureFixture) -> None:
    server = FakeServer(script=[(307, {}, 0.0)] * 20)  # a redirect loop: aiohttp's error quotes the URL

    async def body() -> None:
        notifier = TelegramNotifier(TOKEN, "1", server.url, retry=RetryPolicy(attempts=1, timeout=5))
        assert await notifier.send(HALTED) is False

    asyncio.run(with_server(server, body))
    [failure] = [r for r in caplog.records if r.getMessage().startswith("alert delivery failed")]
    assert "/bot<TELEGRAM_BOT_TOKEN>/sendMessage" in failure.getMessage()
