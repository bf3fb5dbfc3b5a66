"""The signal engine as a service on the real Redis and PostgreSQL: candles published as the
collector publishes them come back as signals on Redis and rows in the ``signals`` table, exactly
the vectorised signals of the same data; a failing strategy shows in health."""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

import pandas as pd
import pytest

from bot_manager.signal_engine import COMPONENT, SignalEngine, SignalEngineService
from config.domain import Signal, SignalType, Timeframe
from data import messages, topics
from data.bus import InProcessBus, RedisBus
from database.engine import make_engine, make_session_factory, session_scope
from database.repositories import market, ops
from database.repositories import signals as signals_repo
from strategies.base import BaseStrategy, Param
from strategies.registry import create_strategy
from tests.strategies.candles import ONE_MINUTE, frame_to_candles, load_candles

SYMBOL = "BTC-USDT-SWAP"
STORED, LAST = 1500, 2100  # rows 0..1499 are in the database at start, 1500..2099 arrive on the bus


class _Broken(BaseStrategy):
    name: ClassVar[str] = "broken"
    params_spec: ClassVar[dict[str, Param]] = {}

    def generate_signal(self, candles: pd.DataFrame) -> Signal:
        raise RuntimeError("user bug")


def _expected(strategy: BaseStrategy, frame: pd.DataFrame, source: str) -> set[tuple[str, int, str]]:
    codes = strategy.generate_signals(frame)
    return {(source, int(frame["open_time"].iloc[i]), "BUY" if codes[i] > 0 else "SELL")
            for i in range(STORED, len(frame)) if codes[i]}


async def _run(pg_url: str, redis_url: str, prefix: str) -> None:
    frame = load_candles(ONE_MINUTE).iloc[:LAST]
    candles = frame_to_candles(frame, Timeframe.M1, symbol=SYMBOL)
    db = make_engine(pg_url)
    factory = make_session_factory(db)
    with session_scope(factory) as session:
        market.upsert_candles(session, candles[:STORED])

    strategies = {"bot:trend": create_strategy("sma_cross"), "watch:rsi": create_strategy("rsi_reversion")}
    core = SignalEngine()
    for source, strategy in strategies.items():
        core.add_instance(source, strategy, "okx", SYMBOL, Timeframe.M1)
    core.add_instance("bot:broken", _Broken(), "okx", SYMBOL, Timeframe.M1)
    service = SignalEngineService(core, factory, health_interval=0.2)

    engine_bus = RedisBus(redis_url, prefix=prefix)
    collector_bus = RedisBus(redis_url, prefix=prefix)
    listener_bus = RedisBus(redis_url, prefix=prefix)
    listener = await listener_bus.subscribe(topics.pattern(topics.SIGNALS))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(engine_bus, stop))
    await asyncio.wait_for(service.ready.wait(), timeout=10)

    expected = set().union(*(_expected(s, frame, source) for source, s in strategies.items()))
    channel = topics.candles("okx", SYMBOL, Timeframe.M1)
    for i, candle in enumerate(candles[STORED:]):
        with session_scope(factory) as session:  # the collector stores, then publishes
            market.upsert_candles(session, [candle])
        await collector_bus.publish(channel, messages.candle_to_message(candle))
        if i % 100 == 0:  # a re-emitted candle must not produce a second signal
            await collector_bus.publish(channel, messages.candle_to_message(candle))

    received: list[tuple[str, dict]] = []
    deadline = asyncio.get_running_loop().time() + 30
    while len(received) < len(expected) and asyncio.get_running_loop().time() < deadline:
        item = await listener.get(timeout=1.0)
        if item is not None:
            received.append(item)
    extra = await listener.get(timeout=0.5)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    for bus in (engine_bus, collector_bus, listener_bus):
        await bus.close()

    events = [messages.signal_from_message(payload) for _, payload in received]
    assert extra is None, f"unexpected extra signal {extra}"
    assert len(expected) > 20
    assert sorted((e.source, e.candle_time_ms, e.signal_type.value) for e in events) == sorted(expected)
    assert {ch for ch, _ in received} == {topics.signals("okx", SYMBOL, Timeframe.M1)}

    with session_scope(factory) as session:
        stored = signals_repo.signals_in_range(session, "okx", SYMBOL, Timeframe.M1)
        (health,) = ops.list_health(session, COMPONENT)
    db.dispose()
    assert {(e.source, e.candle_time_ms, e.signal_type.value) for e in stored} == expected
    assert all(e.signal_type is not SignalType.HOLD for e in stored)
    assert health.status == "degraded"
    assert health.data["failed"] == 1 and health.data["instances"] == 3
    assert "'broken' failed on candle" in health.data["errors"]["bot:broken"]
    assert "RuntimeError: user bug" in health.data["errors"]["bot:broken"]
    assert health.data["candles_seen"] == (LAST - STORED) + 6


def test_candles_on_redis_become_signals_on_redis_and_in_postgresql(
    pg_clean: str, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot_manager.signal_engine")
    asyncio.run(asyncio.wait_for(_run(pg_clean, redis_url, redis_prefix), timeout=120))
    assert f"warmed up okx {SYMBOL} 1m with {STORED} candles" in caplog.text


async def _run_embedded(sqlite_url: str) -> None:
    frame = load_candles(ONE_MINUTE).iloc[:1200]
    candles = frame_to_candles(frame, Timeframe.M1, symbol=SYMBOL)
    db = make_engine(sqlite_url)
    factory = make_session_factory(db)
    strategy = create_strategy("donchian_breakout")
    core = SignalEngine()
    core.add_instance("watch:donchian", strategy, "okx", SYMBOL, Timeframe.M1)
    service = SignalEngineService(core, factory)
    bus = InProcessBus()
    listener = await bus.subscribe(topics.pattern(topics.SIGNALS))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(bus, stop))
    await asyncio.wait_for(service.ready.wait(), timeout=10)
    for candle in candles:
        await bus.publish(topics.candles("okx", SYMBOL, Timeframe.M1), messages.candle_to_message(candle))
    codes = strategy.generate_signals(frame)
    expected = {(int(frame["open_time"].iloc[i]), "BUY" if codes[i] > 0 else "SELL") for i in codes.nonzero()[0]}
    received = []
    while len(received) < len(expected):
        item = await listener.get(timeout=10)
        assert item is not None, f"only {len(received)} of {len(expected)} signals arrived"
        received.append(messages.signal_from_message(item[1]))
    for _ in range(100):  # the last candles may carry no signal: wait until all were handled
        if service.candles_seen == len(candles):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    with session_scope(factory) as session:
        stored = signals_repo.signals_in_range(session, "okx", SYMBOL, Timeframe.M1, source="watch:donchian")
        (health,) = ops.list_health(session, COMPONENT)
    db.dispose()
    assert len(expected) > 20
    assert {(e.candle_time_ms, e.signal_type.value) for e in received} == expected
    assert {(e.candle_time_ms, e.signal_type.value) for e in stored} == expected
    assert (health.status, health.data["candles_seen"]) == ("ok", 1200)


def test_the_embedded_setup_works_the_same_on_the_in_process_bus_and_sqlite(sqlite_url: str) -> None:
    asyncio.run(asyncio.wait_for(_run_embedded(sqlite_url), timeout=60))
