"""The live candle cache: the bus consumer writes it in the event loop, Dash callbacks read it from
web threads, and :func:`plan_live_patch` turns its changes into in-place chart edits."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from config.domain import Candle, Timeframe
from data import topics
from data.bus import Bus
from data.messages import candle_from_message

log = logging.getLogger(__name__)

MarketKey = tuple[str, str, str]
"""(exchange, symbol, timeframe value)."""


def market_key(exchange: str, symbol: str, timeframe: Timeframe | str) -> MarketKey:
    return (exchange, symbol, Timeframe(timeframe).value)


@dataclass
class _Market:
    candles: dict[int, Candle]
    changed_at: dict[int, int]
    version: int = 0


class LiveCandleCache:
    """The newest candles per market (forming and recently closed), thread-safe.

    Every change bumps the market's ``version``; readers ask for the candles changed after the
    version they last saw, so a missed poll only makes the next answer longer.
    """

    def __init__(self, per_market: int = 500) -> None:
        self._per_market = per_market
        self._lock = threading.Lock()
        self._markets: dict[MarketKey, _Market] = {}
        self.received = 0
        self.rejected = 0
        self.last_received_at: float | None = None
        self._watched: dict[MarketKey, float] = {}

    def watch(self, key: MarketKey) -> None:
        """Note that a chart shows ``key`` (the database poller refreshes only watched markets)."""
        with self._lock:
            self._watched[key] = time.monotonic()

    def watched(self, within_s: float = 120.0) -> list[MarketKey]:
        cutoff = time.monotonic() - within_s
        with self._lock:
            return sorted(k for k, at in self._watched.items() if at >= cutoff)

    def update(self, candle: Candle) -> None:
        key = market_key(candle.exchange, candle.symbol, candle.timeframe)
        with self._lock:
            market = self._markets.setdefault(key, _Market({}, {}))
            current = market.candles.get(candle.open_time_ms)
            self.received += 1
            self.last_received_at = time.time()
            if current is not None and current.closed and not candle.closed:
                return  # a late update of a candle that has already closed
            market.version += 1
            market.candles[candle.open_time_ms] = candle
            market.changed_at[candle.open_time_ms] = market.version
            if len(market.candles) > self._per_market:
                for open_time in sorted(market.candles)[: len(market.candles) - self._per_market]:
                    del market.candles[open_time]
                    del market.changed_at[open_time]

    def version(self, key: MarketKey) -> int:
        with self._lock:
            market = self._markets.get(key)
            return market.version if market else 0

    def changes_since(self, key: MarketKey, version: int) -> tuple[list[Candle], int]:
        """Candles changed after ``version`` (ascending by open time) and the current version."""
        with self._lock:
            market = self._markets.get(key)
            if market is None or market.version <= version:
                return [], market.version if market else 0
            changed = [market.candles[t] for t, v in market.changed_at.items() if v > version]
            return sorted(changed, key=lambda c: c.open_time_ms), market.version

    def newer_than(self, key: MarketKey, open_time_ms: int) -> tuple[list[Candle], int]:
        """Candles with ``open_time_ms >= open_time_ms`` and the current version."""
        with self._lock:
            market = self._markets.get(key)
            if market is None:
                return [], 0
            rows = [c for t, c in market.candles.items() if t >= open_time_ms]
            return sorted(rows, key=lambda c: c.open_time_ms), market.version

    def markets(self) -> list[MarketKey]:
        with self._lock:
            return sorted(self._markets)


async def consume_candles(bus: Bus, cache: LiveCandleCache, stop: asyncio.Event) -> None:
    """Copy closed and forming candles from the bus into ``cache`` until ``stop`` is set."""
    await copy_from_bus(bus, (topics.pattern(topics.CANDLE_UPDATES), topics.pattern(topics.CANDLES)),
                        lambda message: cache.update(candle_from_message(message)), cache, stop, "candle")


class _Counts(Protocol):
    rejected: int


async def copy_from_bus(bus: Bus, patterns: Sequence[str], accept: Callable[[dict[str, Any]], None],
                        counts: _Counts, stop: asyncio.Event, what: str) -> None:
    """Hand every message on ``patterns`` to ``accept`` until ``stop`` is set; a malformed one (``accept``
    raises ``KeyError``/``TypeError``/``ValueError``) is counted in ``counts.rejected``, logged and skipped."""
    subscription = await bus.subscribe(*patterns)
    try:
        while not stop.is_set():
            item = await subscription.get(timeout=0.25)
            if item is None:
                continue
            channel, message = item
            try:
                accept(message)
            except (KeyError, TypeError, ValueError) as exc:
                counts.rejected += 1
                log.warning("dashboard: ignored a malformed %s on %s: %s", what, channel, exc)
    finally:
        await subscription.close()


# ---------------------------------------------------------------------------- chart patch plan


@dataclass(frozen=True, slots=True)
class LiveEdit:
    """Write ``candle`` at ``index`` of the live traces, or append it when ``index`` is ``None``."""

    index: int | None
    candle: Candle


def plan_live_patch(live_times: Sequence[int], candles: Sequence[Candle]) -> tuple[list[LiveEdit], list[int]]:
    """Edits that bring the chart's live traces (open times ``live_times``) up to ``candles``.

    A candle already in the live traces is rewritten in place, a newer one appended, an older one
    (part of the history arrays) ignored. Returns the edits and the new list of open times.
    """
    times = list(live_times)
    position = {t: i for i, t in enumerate(times)}
    edits: list[LiveEdit] = []
    for candle in sorted(candles, key=lambda c: c.open_time_ms):
        t = candle.open_time_ms
        if t in position:
            edits.append(LiveEdit(position[t], candle))
        elif not times or t > times[-1]:
            position[t] = len(times)
            times.append(t)
            edits.append(LiveEdit(None, candle))
    return edits, times
