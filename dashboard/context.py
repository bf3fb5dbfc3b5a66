"""What every page callback needs: settings, a session factory, the live cache and the bus."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from threading import Lock
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from dashboard.books import LiveBookCache
from dashboard.live import LiveCandleCache
from data.bus import Bus
from database.engine import session_scope

if TYPE_CHECKING:
    from backtesting.service import BacktestService

T = TypeVar("T")


@dataclass
class TtlCache:
    """A tiny thread-safe memo for slow, rarely changing reads (market lists, strategy lists)."""

    seconds: float
    _values: dict[str, tuple[float, Any]] = field(default_factory=dict)
    _lock: Lock = field(default_factory=Lock)

    def get(self, key: str, compute: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            hit = self._values.get(key)
            if hit is not None and now - hit[0] < self.seconds:
                return hit[1]  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            self._values[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


@dataclass
class DashboardContext:
    settings: Settings
    session_factory: sessionmaker[Session]
    live: LiveCandleCache
    bus: Bus | None = None
    books: LiveBookCache = field(default_factory=LiveBookCache)
    backtest_workers: int = 1
    memo: TtlCache = field(default_factory=lambda: TtlCache(15.0))
    started_at: float = field(default_factory=time.time)
    _backtests: Any = field(default=None, repr=False)
    _lock: Lock = field(default_factory=Lock, repr=False)

    def backtests(self) -> BacktestService:
        """The backtest service, started on first use with ``backtest_workers`` local job slots
        (runs execute in child processes of a worker thread, never in a web request)."""
        with self._lock:
            if self._backtests is None:
                from backtesting.service import BacktestService

                self._backtests = BacktestService(self.settings.effective_database_url,
                                                  local_workers=self.backtest_workers)
            return self._backtests  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop what the context started (the local backtest worker)."""
        with self._lock:
            if self._backtests is not None:
                self._backtests.close()
                self._backtests = None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work (commit on success)."""
        with session_scope(self.session_factory) as session:
            yield session
