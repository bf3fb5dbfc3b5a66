from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import replace

import pytest

from config.errors import ConfigurationError
from config.settings import Settings, load_settings
from dashboard.server import app_context, create_app, serve_dashboard
from data import topics
from data.bus import RedisBus
from data.messages import candle_to_message
from tests.dashboard.builders import fixture_candles


def remote(settings: Settings, **extra: str) -> Settings:
    env = {"DATABASE_URL": settings.database_url, "DASHBOARD_HOST": "0.0.0.0", **extra}
    return load_settings(env)


def test_beyond_loopback_the_dashboard_refuses_to_start_without_a_username(settings: Settings) -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_app(remote(settings))
    assert caught.value.source == "DASHBOARD_USERNAME" and "DASHBOARD_USERNAME" in str(caught.value)


def test_beyond_loopback_the_dashboard_refuses_to_start_without_a_password(settings: Settings) -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_app(remote(settings, DASHBOARD_USERNAME="trader"))
    assert caught.value.source == "DASHBOARD_PASSWORD"


def test_beyond_loopback_every_request_needs_the_login(settings: Settings) -> None:
    app = create_app(remote(settings, DASHBOARD_USERNAME="trader", DASHBOARD_PASSWORD="s3cret-pass"))
    client = app.server.test_client()
    assert client.get("/").status_code == 401
    assert client.get("/_dash-layout").status_code == 401
    wrong = b64encode(b"trader:nope").decode()
    assert client.get("/", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    right = b64encode(b"trader:s3cret-pass").decode()
    response = client.get("/", headers={"Authorization": f"Basic {right}"})
    assert response.status_code == 200 and b"TCP Dashboard" in response.data


def test_on_loopback_no_login_is_asked(settings: Settings) -> None:
    assert create_app(settings).server.test_client().get("/").status_code == 200


def test_no_secret_is_rendered_on_any_page(settings: Settings, seeded: object) -> None:
    secrets = {"DASHBOARD_USERNAME": "trader", "DASHBOARD_PASSWORD": "pw-never-shown",
               "TELEGRAM_BOT_TOKEN": "tg-token-never-shown", "TCP_SECRET_KEY": "key-never-shown"}
    app = create_app(remote(settings, **secrets))
    auth = {"Authorization": "Basic " + b64encode(b"trader:pw-never-shown").decode()}
    client = app.server.test_client()
    bodies = [client.get("/", headers=auth).data, client.get("/_dash-layout", headers=auth).data]
    for path in ("/", "/bots", "/backtests", "/system"):
        payload = {"output": "page-content.children", "outputs": {"id": "page-content", "property": "children"},
                   "inputs": [{"id": "url", "property": "pathname", "value": path}], "changedPropIds": ["url.pathname"]}
        response = client.post("/_dash-update-component", json=payload, headers=auth)
        assert response.status_code == 200, response.data[:300]
        bodies.append(response.data)
    for body in bodies:
        for secret in ("pw-never-shown", "tg-token-never-shown", "key-never-shown"):
            assert secret.encode() not in body


SYSTEM_OUTPUTS = ("system-collectors", "system-components", "system-storage", "system-process", "system-events")


def system_page(url: str) -> str:
    """The System page's panels, as the browser's refresh callback receives them."""
    payload = {"output": ".." + "...".join(f"{i}.children" for i in SYSTEM_OUTPUTS) + "..",
               "outputs": [{"id": i, "property": "children"} for i in SYSTEM_OUTPUTS],
               "inputs": [{"id": "system-interval", "property": "n_intervals", "value": 1}],
               "changedPropIds": ["system-interval.n_intervals"]}
    request = urllib.request.Request(url + "/_dash-update-component", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def test_serve_dashboard_serves_feeds_the_live_cache_from_the_bus_and_stops_cleanly(
        settings: Settings, redis_url: str, redis_prefix: str) -> None:
    urls: list[str] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    candle = replace(fixture_candles(1)[0], closed=False)

    async def run() -> None:
        bus = RedisBus(redis_url, prefix=redis_prefix)
        server = asyncio.create_task(serve_dashboard(settings, bus, stop, port=0, on_listening=urls.append))
        while not urls:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # let the dashboard's subscription reach Redis
        await bus.publish(topics.candle_updates("okx", candle.symbol, "1m"), candle_to_message(candle))
        await asyncio.wait_for(server, 30)
        await bus.close()

    thread = threading.Thread(target=lambda: loop.run_until_complete(run()), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not urls:
            assert time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.05)
        with urllib.request.urlopen(urls[0] + "/", timeout=10) as response:
            assert response.status == 200
        while not re.search(r'"live candles received".{0,200}?"children":"1"', system_page(urls[0])):
            assert time.monotonic() < deadline, "the published candle never reached the live cache"
            time.sleep(0.1)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
    assert not thread.is_alive()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(urls[0] + "/", timeout=2)


def test_the_app_context_is_reachable_from_the_app(settings: Settings) -> None:
    app = create_app(settings)
    assert app_context(app).settings is settings
