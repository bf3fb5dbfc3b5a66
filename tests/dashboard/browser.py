"""Headless Debian Chromium through Selenium, for the browser tests and the screenshot script."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
T = TypeVar("T")


def start_chromium(width: int = 1280, height: int = 900) -> webdriver.Chrome:
    """A fresh headless Chromium (own profile, no network services, console log captured)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--window-size={width},{height}",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='tcp-chromium-')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def wait_for(driver: webdriver.Chrome, condition: Callable[[webdriver.Chrome], T], timeout: float = 20.0,
             message: str = "") -> T:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message)


def wait_visible(driver: webdriver.Chrome, css: str, timeout: float = 20.0) -> Any:
    return WebDriverWait(driver, timeout).until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)),
                                                f"nothing visible matches {css!r}")


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """Console messages of level SEVERE since the last call (favicon noise included: there is none)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait_dash_idle(driver: webdriver.Chrome, timeout: float = 20.0) -> None:
    """Wait until Dash has no callback in flight (the renderer's loading flag is gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = driver.execute_script("return document.querySelector('[data-dash-is-loading=\"true\"]') !== null")
        if not busy:
            return
        time.sleep(0.1)
    raise TimeoutError(f"Dash still busy after {timeout} s")


def chart_candles(driver: webdriver.Chrome, graph_id: str) -> dict[str, Any]:
    """The candles Plotly has drawn in the graph ``graph_id`` (history + live traces, decoded)."""
    return driver.execute_script(
        """
        var gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
        if (!gd || !gd._fullData) { return null; }
        var out = {x: [], close: [], traces: gd._fullData.length};
        gd._fullData.filter(function (t) { return t.type === 'candlestick'; }).forEach(function (t) {
            for (var i = 0; i < t.close.length; i++) { out.x.push(Number(t.x[i])); out.close.push(Number(t.close[i])); }
        });
        return out;
        """,
        graph_id,
    )
