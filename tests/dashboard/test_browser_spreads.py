"""The spread page in headless Chromium on the real platform: the Binance replay serving the recorded spot and
USDⓈ-M BTCUSDT trades and books of 2024-08-08, the collector keeping both books and publishing them on the real
Redis bus, and the dashboard showing both directions' edges net of fees and the perpetual's basis.

Every figure on the page is checked against a hand computation from the prices the same row shows (and the
prices against the recorded books: each shown bid/ask is a price level the recording held)."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from data.service import BINANCE_DEPTH
from tests.conftest import REDIS_URL
from tests.dashboard.browser import console_errors, wait_for
from tests.dashboard.platform import Platform, replay_platform
from tests.dashboard.test_browser import open_page, shot

pytestmark = pytest.mark.browser
SPOT, PERP = "binance:BTC-USDT", "binance:BTC-USDT-SWAP"
FEES_BPS = 10.0 + 5.0  # Binance regular taker: spot 0.10 %, USDⓈ-M 0.05 %


def recorded_prices() -> set[float]:
    prices: set[float] = set()
    for path in BINANCE_DEPTH.values():
        with gzip.open(path, "rt") as f:
            for line in f:
                body = json.loads(line.split(" ", 1)[1])
                data = body.get("data", body)
                for key in ("b", "a", "bids", "asks"):
                    prices |= {round(float(p), 2) for p, _ in data.get(key, [])}
    return prices


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    env = {"EXCHANGE": "binance", "SYMBOLS": "BTC-USDT,BTC-USDT-SWAP", "TIMEFRAMES": "1m,5m",
           "STORE_RAW_TRADES": "false", "BOOK_SNAPSHOT_S": "2"}
    with replay_platform("tcp_dash_spreads", REDIS_URL, tmp_path_factory.mktemp("bots"), env, replay_speed=5.0,
                         bots=False) as running:
        yield running


def table(browser: WebDriver, table_id: str) -> list[list[str]]:
    """The cells of a table, read in one script (the page re-renders it every second)."""
    return browser.execute_script(  # type: ignore[no-any-return]
        "return Array.from(document.querySelectorAll(arguments[0])).map("
        "tr => Array.from(tr.querySelectorAll('td')).map(td => td.innerText.trim()))", f"#{table_id} tbody tr")


def test_the_spread_page_shows_live_edges_net_of_fees_and_the_basis(platform: Platform, browser: WebDriver) -> None:
    open_page(browser, platform, "/spreads", "#spreads-table")
    edges = wait_for(browser, lambda d: len(t := table(d, "spreads-edges")) == 2 and t, 60,
                     "the two directions of spot vs perpetual never appeared")
    recorded = recorded_prices()
    for buy, ask, sell, bid, size, gross, fees, net in edges:
        assert {buy, sell} == {SPOT, PERP}
        ask_f, bid_f = float(ask), float(bid)
        assert ask_f in recorded and bid_f in recorded
        assert float(gross) == pytest.approx((bid_f - ask_f) / ask_f * 1e4, abs=0.006)
        assert float(fees) == pytest.approx(FEES_BPS)
        assert float(net) == pytest.approx(float(gross) - FEES_BPS, abs=0.011)
        assert float(size) > 0
    [(spot, perp, spot_mid, perp_mid, basis)] = wait_for(browser, lambda d: table(d, "spreads-basis-table"), 20)
    assert (spot, perp) == (SPOT, PERP)
    assert float(basis) == pytest.approx((float(perp_mid) - float(spot_mid)) / float(spot_mid) * 1e4, abs=0.006)
    books = {row[0]: row for row in table(browser, "spreads-books-table")}
    assert set(books) == {SPOT, PERP} and all(r[4].startswith("2024-08-08 23:5") for r in books.values())
    first = [row[1:4] for row in edges]
    wait_for(browser, lambda d: [row[1:4] for row in table(d, "spreads-edges")] != first, 30,
             "the edges did not move while the replay ran")
    time.sleep(0.5)
    assert console_errors(browser) == []
    shot(browser, "spreads")
