"""The dashboard in real headless Chromium on a running replay: the bundled BTC-USDT tape served by
the replay server, the real collector storing candles in PostgreSQL and publishing on Redis.

Set ``DASHBOARD_SCREENSHOTS=<folder>`` to save screenshots of the live market and system pages.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from config.domain import Timeframe
from config.settings import load_settings
from database.engine import make_engine, make_session_factory, session_scope
from database.migrate import upgrade
from database.repositories.market import count_candles, get_candles
from tests.conftest import REDIS_URL, create_pg_database, drop_pg_database
from tests.dashboard.browser import chart_candles, console_errors, start_chromium, wait_for, wait_visible
from tests.dashboard.platform import Platform
from tests.dashboard.test_browser import open_page, shot

pytestmark = pytest.mark.browser
SYMBOL = "BTC-USDT"


@pytest.fixture(scope="module")
def replay_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc})", pytrace=False)
    url = create_pg_database("tcp_dash_replay")
    upgrade(url)
    prefix = f"test:{uuid.uuid4().hex[:10]}:"
    settings = load_settings({"DATABASE_URL": url, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix,
                              "BOTS_DIR": str(tmp_path_factory.mktemp("bots")), "SYMBOLS": SYMBOL,
                              "TIMEFRAMES": "1m,5m,15m,1h", "STORE_RAW_TRADES": "false"})
    engine = make_engine(url)
    running = Platform(settings, make_session_factory(engine), REDIS_URL, prefix, replay_speed=30.0)
    running.start()
    try:
        deadline = time.monotonic() + 90
        while stored(running) < 100:
            assert time.monotonic() < deadline, "the collector stored no history from the replay"
            time.sleep(0.5)
        yield running
    finally:
        running.stop()
        engine.dispose()
        drop_pg_database(url)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()


def stored(platform: Platform) -> int:
    with session_scope(platform.sessions) as session:
        return count_candles(session, "okx", SYMBOL, Timeframe.M1)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = start_chromium(1280, 900)
    yield driver
    driver.quit()


def test_the_chart_shows_the_stored_candles_and_a_live_candle_moves_while_the_replay_runs(
        replay_platform: Platform, browser: WebDriver) -> None:
    open_page(browser, replay_platform, "/", "#market-chart .main-svg")
    first = wait_for(browser, lambda d: (c := chart_candles(d, "market-chart")) and c["x"] and c, 20)
    with session_scope(replay_platform.sessions) as session:
        rows = {c.open_time_ms: c.close for c in get_candles(session, "okx", SYMBOL, Timeframe.M1)}
    settled = [(t, c) for t, c in zip(first["x"][:-3], first["close"][:-3], strict=True)]
    assert len(settled) > 50 and all(rows[int(t)] == c for t, c in settled)

    last = (first["x"][-1], first["close"][-1])
    wait_for(browser, lambda d: (c := chart_candles(d, "market-chart")) and (c["x"][-1], c["close"][-1]) != last,
             30, "the newest candle did not move while the replay ran")
    grown = wait_for(browser, lambda d: (c := chart_candles(d, "market-chart")) and c["x"][-1] > last[0] and c,
                     30, "no new candle was appended while the replay ran")
    assert grown["x"][-1] - last[0] >= 60_000
    assert console_errors(browser) == []
    shot(browser, "market", full_page=False)


def test_the_system_page_shows_the_collector_of_the_replayed_symbol(
        replay_platform: Platform, browser: WebDriver) -> None:
    open_page(browser, replay_platform, "/system", "#system-collectors")
    wait_for(browser, lambda d: f"okx.{SYMBOL}" in d.find_element(By.ID, "system-collectors").text, 30,
             "the collector's health row never appeared")
    wait_for(browser, lambda d: "writer" in d.find_element(By.ID, "system-components").text, 30)
    wait_visible(browser, "#system-collectors table")
    assert console_errors(browser) == []
    shot(browser, "system")
