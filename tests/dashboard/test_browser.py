"""What a person does, in real headless Chromium, against the real PostgreSQL and Redis.

One platform (dashboard + bot runtime on a Redis bus) and one browser serve the whole module.
The database holds 3 000 real OKX 1m candles; later candles are written and published on the bus
as the collector would. Set ``DASHBOARD_SCREENSHOTS=<folder>`` to save a screenshot of each page.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from backtesting.service import BacktestService
from bot_manager.service import BotService
from config.settings import load_settings
from database.engine import make_engine, make_session_factory
from database.migrate import upgrade
from tests.conftest import REDIS_URL, create_pg_database, drop_pg_database
from tests.dashboard.browser import (
    chart_candles,
    console_errors,
    wait_dash_idle,
    wait_for,
    wait_visible,
)
from tests.dashboard.builders import fixture_candles, seed_candles
from tests.dashboard.platform import Platform, redis_client

pytestmark = pytest.mark.browser
SEEDED = 3_000
CANDLES = fixture_candles(SEEDED + 400)
SHOTS = os.environ.get("DASHBOARD_SCREENSHOTS")


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    url = create_pg_database("tcp_dash_browser")
    upgrade(url)
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="module")
def platform(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    client = redis_client(REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex[:10]}:"
    settings = load_settings({"DATABASE_URL": database, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix,
                              "BOTS_DIR": str(tmp_path_factory.mktemp("bots")), "TIMEFRAMES": "1m,5m,15m,1h"})
    engine = make_engine(database)
    sessions = make_session_factory(engine)
    seed_candles(sessions, CANDLES[:SEEDED])
    running = Platform(settings, sessions, REDIS_URL, prefix)
    running.start()
    yield running
    running.stop()
    engine.dispose()
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def open_page(browser: WebDriver, platform: Platform, path: str, ready_css: str) -> None:
    browser.get(platform.url + path)
    wait_visible(browser, ready_css)
    wait_dash_idle(browser)


def shot(browser: WebDriver, name: str, full_page: bool = True) -> None:
    """Save a screenshot of the whole page (when DASHBOARD_SCREENSHOTS names a folder)."""
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    width, height = browser.get_window_size()["width"], browser.get_window_size()["height"]
    if full_page:
        page = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(width, min(max(page + 140, height), 2400))
    time.sleep(1.0)  # let the charts follow the new size
    browser.save_screenshot(str(Path(SHOTS) / f"{name}.png"))
    browser.set_window_size(width, height)


def drawn(browser: WebDriver) -> dict:
    return wait_for(browser, lambda d: (c := chart_candles(d, "market-chart")) and c["x"] and c,
                    message="the market chart never drew candles")


def set_text(browser: WebDriver, element_id: str, text: str) -> None:
    """Replace an input's text the way a person does (select all, type), so React sees it."""
    element = browser.find_element(By.ID, element_id)
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.DELETE)
    element.send_keys(text)


def text_of(browser: WebDriver, element_id: str) -> str:
    return browser.find_element(By.ID, element_id).text


def test_every_page_loads_without_console_errors(platform: Platform, browser: WebDriver) -> None:
    pages = (("/", "#market-chart .main-svg", "market"), ("/bots", "#bots-table", "bots"),
             ("/backtests", "#bt-runs-table", "backtests"), ("/system", "#system-collectors", "system"))
    for path, ready, name in pages:
        open_page(browser, platform, path, ready)
        if path == "/":
            drawn(browser)
        assert console_errors(browser) == [], f"console errors on {path}"
        shot(browser, name, full_page=path != "/")


def test_the_market_chart_shows_stored_candles_and_a_live_candle_moves(platform: Platform, browser: WebDriver) -> None:
    open_page(browser, platform, "/", "#market-chart .main-svg")
    chart = drawn(browser)
    stored = {c.open_time_ms: c.close for c in CANDLES[:SEEDED]}
    assert chart["x"][-1] == CANDLES[SEEDED - 1].open_time_ms
    assert all(stored[int(t)] == close for t, close in zip(chart["x"], chart["close"], strict=True))
    shown = len(chart["x"])

    forming = CANDLES[SEEDED]
    first = replace(forming, high=forming.open, low=forming.open, close=forming.open, volume=0.01)
    platform.publish_update(first)
    wait_for(browser, lambda d: chart_candles(d, "market-chart")["x"][-1] == forming.open_time_ms, 10,
             "the forming candle did not appear")
    platform.publish_update(forming)  # the same candle, later in its minute
    wait_for(browser, lambda d: chart_candles(d, "market-chart")["close"][-1] == forming.close, 10,
             "the forming candle did not move")
    nxt = CANDLES[SEEDED + 1]
    platform.publish_update(nxt)
    after = wait_for(browser, lambda d: (c := chart_candles(d, "market-chart"))["x"][-1] == nxt.open_time_ms and c, 10,
                     "the next candle was not appended")
    assert len(after["x"]) == shown + 2 and after["close"][-2] == forming.close
    assert console_errors(browser) == []


def bot_json(name: str, **changes: object) -> str:
    config: dict[str, object] = {
        "name": name, "exchange": "okx", "symbol": CANDLES[0].symbol, "timeframe": "1m", "strategy": "sma_cross",
        "params": {"fast": 2, "slow": 3}, "starting_balance": 10000,
        "sizing": {"method": "equity_fraction", "fraction_pct": 50}, "lot_size": "0.0001", "price_tick": "0.1",
    }
    config.update(changes)
    return json.dumps(config)


def test_a_bot_created_and_started_in_the_ui_trades_and_stop_stops_it(platform: Platform, browser: WebDriver) -> None:
    service = BotService(platform.sessions)
    open_page(browser, platform, "/bots", "#bots-table")
    set_text(browser, "bot-config-editor", bot_json("ui_bot"))
    browser.find_element(By.ID, "bot-create-start").click()
    wait_for(browser, lambda d: "ui_bot created and started" in text_of(d, "bot-config-feedback"), 15,
             "no confirmation that the bot was created")
    assert [(b.name, b.status) for b in service.list_bots()] == [("ui_bot", "running")]

    platform.feed(CANDLES[SEEDED:SEEDED + 120], interval=0.05)
    deadline = time.monotonic() + 90
    while not service.bot_detail("ui_bot").fills:
        assert time.monotonic() < deadline, "the bot made no trade on 120 candles"
        time.sleep(0.5)
    wait_for(browser, lambda d: "ui_bot" in text_of(d, "bots-table") and "running" in text_of(d, "bots-table").lower(),
             15)
    browser.find_element(By.LINK_TEXT, "Fills").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#bot-fills tbody tr")) > 0, 20,
             "the fills table stayed empty")
    browser.find_element(By.LINK_TEXT, "Price, fills, signals").click()
    shot(browser, "bots")

    browser.find_element(By.ID, "bot-action-stop").click()
    wait_for(browser, lambda d: "ui_bot: stopped" in text_of(d, "bots-message"), 15, "stop was not confirmed")
    assert service.list_bots()[0].status == "stopped"
    assert console_errors(browser) == []


def test_invalid_bot_json_shows_the_field_error_and_creates_nothing(platform: Platform, browser: WebDriver) -> None:
    service = BotService(platform.sessions)
    before = [b.name for b in service.list_bots()]
    open_page(browser, platform, "/bots", "#bots-table")
    set_text(browser, "bot-config-editor", bot_json("bad_bot", risk={"stop_loss_pct": -1}))
    browser.find_element(By.ID, "bot-create").click()
    feedback = wait_for(browser, lambda d: (t := text_of(d, "bot-config-feedback")) and "risk.stop_loss_pct" in t and t,
                        15, "no field error shown")
    assert "greater than 0" in feedback
    assert "is-invalid" in browser.find_element(By.ID, "bot-config-editor").get_attribute("class")
    assert [b.name for b in service.list_bots()] == before


def test_a_backtest_launched_in_the_ui_completes_and_shows_its_metrics(platform: Platform, browser: WebDriver) -> None:
    open_page(browser, platform, "/backtests", "#bt-runs-table")
    set_text(browser, "bt-params", json.dumps({"fast": 5, "slow": 20}))
    browser.find_element(By.ID, "bt-launch").click()
    queued = wait_for(browser, lambda d: re.search(r"backtest #(\d+) queued", text_of(d, "bt-form-feedback")), 15,
                      "the backtest was not queued")
    run_id = int(queued.group(1))
    wait_for(browser, lambda d: "total return" in text_of(d, "bt-detail"), 180, "the run never showed its metrics")
    wait_for(browser, lambda d: d.execute_script(
        "return Array.from(document.querySelectorAll('#bt-detail .js-plotly-plot')).some(function (gd) {"
        " return (gd._fullData || []).some(function (t) { return t.type === 'candlestick' && t.x.length > 0; })"
        " && (gd._fullData || []).some(function (t) { return t.name === 'long entries'; }); })"), 30,
        "the trades were not drawn on the candles")
    assert f"#{run_id} backtest" in text_of(browser, "bt-detail")
    service = BacktestService(platform.settings.effective_database_url, local_workers=0)
    try:
        run = service.get_run(run_id)
        assert run is not None and run.status == "done" and run.metrics["trades"] > 0
        assert f"{run.metrics['total_return'] * 100:,.2f} %" in text_of(browser, "bt-detail")
    finally:
        service.close()
    assert console_errors(browser) == []
    shot(browser, "backtests")


def test_invalid_backtest_input_shows_an_error_and_queues_nothing(platform: Platform, browser: WebDriver) -> None:
    service = BacktestService(platform.settings.effective_database_url, local_workers=0)
    try:
        before = len(service.list_runs(limit=1000))
        open_page(browser, platform, "/backtests", "#bt-runs-table")
        set_text(browser, "bt-params", json.dumps({"fast": 50, "slow": 10}))
        browser.find_element(By.ID, "bt-launch").click()
        wait_for(browser, lambda d: "must be smaller than slow" in text_of(d, "bt-form-feedback"), 15)
        set_text(browser, "bt-params", "{not json")
        browser.find_element(By.ID, "bt-launch").click()
        wait_for(browser, lambda d: "invalid JSON" in text_of(d, "bt-form-feedback"), 15)
        assert len(service.list_runs(limit=1000)) == before
    finally:
        service.close()


def test_the_theme_switch_and_a_tablet_width(platform: Platform, browser: WebDriver) -> None:
    open_page(browser, platform, "/", "#market-chart .main-svg")
    drawn(browser)
    browser.find_element(By.CSS_SELECTOR, "label[for='theme-switch']").click()
    wait_for(browser, lambda d: d.execute_script("return document.documentElement.dataset.bsTheme") == "light", 30)
    wait_for(browser, lambda d: d.execute_script(
        "return document.querySelector('#market-chart .js-plotly-plot').layout.paper_bgcolor") == "#ffffff", 30,
        "the chart did not follow the theme")
    shot(browser, "market_light", full_page=False)
    browser.find_element(By.CSS_SELECTOR, "label[for='theme-switch']").click()
    browser.set_window_size(820, 1180)
    try:
        wait_visible(browser, "#navbar-toggler")
        wait_for(browser, lambda d: d.execute_script("return document.documentElement.scrollWidth") <= 820, 30,
                 "the page does not fit a tablet's width")
        drawn(browser)
        shot(browser, "market_tablet", full_page=False)
    finally:
        browser.set_window_size(1280, 900)
    assert console_errors(browser) == []
