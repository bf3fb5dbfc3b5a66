"""Fixtures of the dashboard tests: a seeded PostgreSQL database and a dashboard context on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from sqlalchemy.orm import Session, sessionmaker

from config.domain import Candle
from config.settings import Settings, load_settings
from dashboard.context import DashboardContext
from dashboard.live import LiveCandleCache
from database.engine import make_engine, make_session_factory
from tests.dashboard.browser import start_chromium
from tests.dashboard.builders import fixture_candles, seed_candles

SEEDED = 3_000


@pytest.fixture
def sessions(pg_clean: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(pg_clean)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def seeded(sessions: sessionmaker[Session]) -> list[Candle]:
    """3 000 real 1m candles (and their 5m/15m/1h roll-ups) stored in PostgreSQL."""
    candles = fixture_candles(SEEDED)
    seed_candles(sessions, candles)
    return candles


@pytest.fixture
def settings(pg_clean: str) -> Settings:
    return load_settings({"DATABASE_URL": pg_clean, "TIMEFRAMES": "1m,5m,15m,1h"})


@pytest.fixture
def context(settings: Settings, sessions: sessionmaker[Session]) -> DashboardContext:
    return DashboardContext(settings, sessions, LiveCandleCache())


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium per test module (1280 x 900)."""
    driver = start_chromium(1280, 900)
    yield driver
    driver.quit()
