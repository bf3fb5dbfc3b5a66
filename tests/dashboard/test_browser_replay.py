"""The dashboard in real headless Chromium on a running replay: the bundled BTC-USDT tape served by
the replay server, the real collector storing candles in PostgreSQL and publishing on Redis.

Set ``DASHBOARD_SCREENSHOTS=<folder>`` to save screenshots of the live market and system pages.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from config.domain import Timeframe
from database.engine import session_scope
from database.repositories.market import count_candles, get_candles
from tests.conftest import REDIS_URL
from tests.dashboard.browser import chart_candles, console_errors, wait_for, wait_visible
from tests.dashboard.platform import Platform
from tests.dashboard.platform import replay_platform as running_replay
from tests.dashboard.test_browser import open_page, shot

pytestmark = pytest.mark.browser
SYMBOL = "BTC-USDT"


@pytest.fixture(scope="module")
def replay_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    env = {"SYMBOLS": SYMBOL, "TIMEFRAMES": "1m,5m,15m,1h", "STORE_RAW_TRADES": "false"}
    with running_replay("tcp_dash_replay", REDIS_URL, tmp_path_factory.mktemp("bots"), env,
                        replay_speed=30.0) as running:
        deadline = time.monotonic() + 90
        while stored(running) < 100:
            assert time.monotonic() < deadline, "the collector stored no history from the replay"
            time.sleep(0.5)
        yield running


def stored(platform: Platform) -> int:
    with session_scope(platform.sessions) as session:
        return count_candles(session, "okx", SYMBOL, Timeframe.M1)


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
