"""Host and Origin checks of the dashboard: the pure decision, then forged requests against the real
dashboard (waitress on a real socket) with a real bot runtime on the real Redis bus and PostgreSQL."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot_manager.service import BotService
from config.errors import SettingsError
from config.settings import load_settings
from dashboard.security import LOOPBACK_NAMES, RequestHeaders, allowed_hosts, host_and_port, refusal
from tests.bot_manager.builders import bot_config
from tests.dashboard.platform import Platform

LOOPBACK = LOOPBACK_NAMES


# -- the pure decision

@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8050", "localhost", "LOCALHOST:1", "[::1]", "[::1]:8050"])
def test_loopback_names_with_any_port_pass(host: str) -> None:
    assert refusal(RequestHeaders("POST", host), LOOPBACK) is None
    assert refusal(RequestHeaders("GET", host), LOOPBACK) is None


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8050", "127.0.0.1.evil.example", "localhost.evil",
                                  "[::2]:8050", "10.0.0.5:8050"])
def test_a_foreign_host_is_refused_on_every_method(host: str) -> None:
    for method in ("GET", "POST"):
        reason = refusal(RequestHeaders(method, host), LOOPBACK)
        assert reason is not None and repr(host) in reason and "DASHBOARD_ALLOWED_HOSTS" in reason


@pytest.mark.parametrize("host", [None, "", "a:b:c", "[::1", "x:port", "user@127.0.0.1", "127.0.0.1/x"])
def test_a_missing_or_malformed_host_is_refused(host: str | None) -> None:
    assert refusal(RequestHeaders("GET", host), LOOPBACK) is not None


def test_a_configured_name_passes() -> None:
    allowed = LOOPBACK | {"dash.example.com"}
    assert refusal(RequestHeaders("GET", "dash.example.com"), allowed) is None
    assert refusal(RequestHeaders("GET", "evil.example"), allowed) is not None


@pytest.mark.parametrize(("origin", "ok"), [
    ("http://127.0.0.1:8050", True), ("http://127.0.0.1:8051", False), ("http://localhost:8050", False),
    ("http://evil.example", False), ("https://evil.example:8050", False), ("null", False), ("file://", False),
    ("http://user@127.0.0.1:8050", False), ("http://[::1", False),
])
def test_an_origin_must_be_the_dashboards_own_on_every_method(origin: str, ok: bool) -> None:
    for method in ("GET", "POST", "DELETE"):
        reason = refusal(RequestHeaders(method, "127.0.0.1:8050", origin=origin), LOOPBACK)
        assert (reason is None) is ok, (method, origin, reason)


def test_default_ports_are_the_same_origin_and_the_scheme_may_differ_behind_a_tls_proxy() -> None:
    allowed = LOOPBACK | {"dash.example.com"}
    assert refusal(RequestHeaders("POST", "dash.example.com", origin="https://dash.example.com"), allowed) is None
    assert refusal(RequestHeaders("POST", "dash.example.com:443", origin="https://dash.example.com"), allowed) is None
    assert refusal(RequestHeaders("POST", "dash.example.com", origin="https://dash.example.com:8443"),
                   allowed) is not None


def test_without_origin_a_post_is_judged_by_referer_then_sec_fetch_site() -> None:
    host = "127.0.0.1:8050"
    assert refusal(RequestHeaders("POST", host, referer="http://127.0.0.1:8050/bots"), LOOPBACK) is None
    assert refusal(RequestHeaders("POST", host, referer="http://evil.example/page"), LOOPBACK) is not None
    for site, ok in (("same-origin", True), ("none", True), ("cross-site", False), ("same-site", False)):
        assert (refusal(RequestHeaders("POST", host, sec_fetch_site=site), LOOPBACK) is None) is ok, site
    # not from a browser page (curl, a script): nothing to judge, the Host check is what guards it
    assert refusal(RequestHeaders("POST", host), LOOPBACK) is None
    # a GET is not state-changing: a foreign Referer (a link from another site) is fine
    assert refusal(RequestHeaders("GET", host, referer="http://evil.example/", sec_fetch_site="cross-site"),
                   LOOPBACK) is None


def test_the_allowed_names_follow_the_settings() -> None:
    assert allowed_hosts(load_settings({})) == LOOPBACK
    listed = load_settings({"DASHBOARD_ALLOWED_HOSTS": "Dash.Example.com, [fd00::1]"})
    assert allowed_hosts(listed) == LOOPBACK | {"dash.example.com", "fd00::1"}
    bound = load_settings({"DASHBOARD_HOST": "10.0.0.5"})
    assert allowed_hosts(bound) == LOOPBACK | {"10.0.0.5"}
    assert allowed_hosts(load_settings({"DASHBOARD_HOST": "0.0.0.0"})) == {"*"}
    assert allowed_hosts(load_settings({"DASHBOARD_HOST": "0.0.0.0", "DASHBOARD_ALLOWED_HOSTS": "a.lan"})) == \
        LOOPBACK | {"a.lan"}
    assert refusal(RequestHeaders("GET", "anything.lan:1"), {"*"}) is None
    assert refusal(RequestHeaders("POST", "anything.lan:1", origin="http://evil.example"), {"*"}) is not None


@pytest.mark.parametrize("value", ["https://dash.example.com", "dash.example.com:8050", "user@x"])
def test_a_bad_allowed_hosts_value_names_the_variable(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"DASHBOARD_ALLOWED_HOSTS": value})
    assert caught.value.source == "DASHBOARD_ALLOWED_HOSTS" and repr(value) in str(caught.value)


def test_host_and_port() -> None:
    assert host_and_port("Example.COM:8050") == ("example.com", "8050")
    assert host_and_port("[::1]:80") == ("::1", "80")
    assert host_and_port("[::1]") == ("::1", "")
    assert host_and_port("[::1]x") is None and host_and_port(":80") is None


# -- forged requests against the real dashboard with a running bot

@pytest.fixture
def platform(pg_clean: str, redis_url: str, redis_prefix: str, tmp_path: Path,
             sessions: sessionmaker[Session]) -> Iterator[Platform]:
    settings = load_settings({"DATABASE_URL": pg_clean, "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix,
                              "BOTS_DIR": str(tmp_path), "TIMEFRAMES": "1m,5m"})
    running = Platform(settings, sessions, redis_url, redis_prefix)
    running.start()
    yield running
    running.stop()


def stop_callback(url: str) -> dict[str, Any]:
    """The Dash request the bots page's Stop button sends, built from the app's published dependencies."""
    with urllib.request.urlopen(url + "/_dash-dependencies", timeout=10) as response:
        dependencies = json.loads(response.read())
    action = next(d for d in dependencies if d["output"].startswith("..bots-message.children"))
    inputs = [{"id": i["id"], "property": i["property"], "value": 1 if i["id"] == "bot-action-stop" else None}
              for i in action["inputs"]]
    state = [{"id": s["id"], "property": s["property"], "value": "guarded" if s["id"] == "bot-selected" else 0}
             for s in action["state"]]
    outputs = [dict(zip(("id", "property"), part.split(".", 1), strict=True))
               for part in action["output"].strip(".").split("...")]
    return {"output": action["output"], "outputs": outputs, "inputs": inputs, "state": state,
            "changedPropIds": ["bot-action-stop.n_clicks"]}


def post(url: str, payload: dict[str, Any], headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url + "/_dash-update-component", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json", **headers}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def get_status(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_forged_requests_are_refused_and_the_bot_keeps_running(platform: Platform) -> None:
    service = BotService(platform.sessions)
    service.create_bot(bot_config(name="guarded"), start=True)
    assert service.list_bots()[0].status == "running"
    url = platform.url
    own = url.removeprefix("http://")
    payload = stop_callback(url)

    forged = [
        {"Host": "evil.example"},                                  # DNS rebinding: the page's own name
        {"Host": f"evil.example:{own.rsplit(':', 1)[1]}"},
        {"Origin": "http://evil.example"},                         # CSRF from another site
        {"Origin": "null"},
        {"Referer": "http://evil.example/attack.html"},
        {"Sec-Fetch-Site": "cross-site"},
    ]
    for headers in forged:
        status, body = post(url, payload, headers)
        assert status == 403, (headers, status, body[:200])
        assert body.startswith("forbidden: ")
        assert service.list_bots()[0].status == "running", headers
    assert get_status(url + "/", {"Host": "evil.example"}) == 403  # the page itself is not served either
    assert get_status(url + "/_dash-layout", {"Host": "evil.example"}) == 403
    assert get_status(url + "/", {}) == 200
    time.sleep(1.0)  # the bot runtime polls every 0.5 s: a stop would have been seen by now
    assert service.list_bots()[0].status == "running"

    # the same request from the dashboard's own page works: the payload really is the Stop button
    status, body = post(url, payload, {"Origin": url, "Referer": url + "/bots", "Sec-Fetch-Site": "same-origin"})
    assert status == 200, body[:300]
    assert "guarded: stopped" in body
    assert service.list_bots()[0].status == "stopped"
