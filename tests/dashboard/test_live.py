from __future__ import annotations

import asyncio
from dataclasses import replace

from config.domain import Timeframe
from dashboard.live import LiveCandleCache, consume_candles, market_key, plan_live_patch
from data import topics
from data.bus import InProcessBus
from data.messages import candle_to_message
from tests.dashboard.builders import EXCHANGE, SYMBOL, fixture_candles

KEY = market_key(EXCHANGE, SYMBOL, Timeframe.M1)


def test_the_cache_reports_only_what_changed_since_a_version() -> None:
    cache = LiveCandleCache()
    a, b, c = fixture_candles(3)
    b = replace(b, closed=False)
    cache.update(a)
    cache.update(b)
    first, version = cache.changes_since(KEY, 0)
    assert [x.open_time_ms for x in first] == [a.open_time_ms, b.open_time_ms]
    assert cache.changes_since(KEY, version) == ([], version)
    moved = replace(b, close=b.high, closed=False)
    cache.update(moved)
    cache.update(c)
    changed, _ = cache.changes_since(KEY, version)
    assert changed == [moved, c]


def test_a_late_update_does_not_reopen_a_closed_candle() -> None:
    cache = LiveCandleCache()
    (a,) = fixture_candles(1)
    cache.update(a)
    cache.update(replace(a, close=a.low, closed=False))
    assert cache.newer_than(KEY, 0)[0] == [a]


def test_the_cache_keeps_a_bounded_number_of_candles_per_market() -> None:
    cache = LiveCandleCache(per_market=5)
    candles = fixture_candles(12)
    for candle in candles:
        cache.update(candle)
    kept, _ = cache.newer_than(KEY, 0)
    assert kept == candles[-5:]


def test_the_patch_plan_rewrites_known_candles_appends_new_ones_and_ignores_history() -> None:
    old, a, b, c = fixture_candles(4)
    edits, times = plan_live_patch([a.open_time_ms, b.open_time_ms], [c, b, old])
    assert [(e.index, e.candle) for e in edits] == [(1, b), (None, c)]
    assert times == [a.open_time_ms, b.open_time_ms, c.open_time_ms]


def test_the_patch_plan_starts_an_empty_live_trace() -> None:
    a, b = fixture_candles(2)
    edits, times = plan_live_patch([], [b, a])
    assert [e.index for e in edits] == [None, None] and times == [a.open_time_ms, b.open_time_ms]


def test_candles_published_on_the_bus_reach_the_cache() -> None:
    async def scenario() -> list[object]:
        bus, cache, stop = InProcessBus(), LiveCandleCache(), asyncio.Event()
        task = asyncio.create_task(consume_candles(bus, cache, stop))
        await asyncio.sleep(0.05)
        a, b = fixture_candles(2)
        await bus.publish(topics.candles(EXCHANGE, SYMBOL, "1m"), candle_to_message(a))
        await bus.publish(topics.candle_updates(EXCHANGE, SYMBOL, "1m"), candle_to_message(replace(b, closed=False)))
        await bus.publish(topics.candle_updates(EXCHANGE, SYMBOL, "1m"), {"exchange": "okx"})  # malformed
        for _ in range(100):
            if cache.received >= 2 and cache.rejected >= 1:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)
        return [c.open_time_ms for c in cache.newer_than(KEY, 0)[0]] + [cache.rejected]

    a, b = fixture_candles(2)
    assert asyncio.run(scenario()) == [a.open_time_ms, b.open_time_ms, 1]
