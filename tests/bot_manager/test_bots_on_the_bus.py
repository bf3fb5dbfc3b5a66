"""Bots driven by real OKX candles on the real Redis bus and PostgreSQL, checked by hand computation."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from bot_manager.runtime import run_bots
from config.domain import Candle, datetime_to_ms
from config.settings import load_settings
from data import messages, topics
from data.bus import RedisBus
from database.engine import session_scope
from database.models import Bot, ComponentHealth, Fill, Order, SignalRow
from strategies.registry import create_strategy
from tests.bot_manager.builders import bot_config, hand_computed_fills, load_candles, sessions_for, store_candles

WARMUP = 300
TOTAL = 1100


async def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(predicate):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def run_on_the_bus(db_url: str, redis_url: str, prefix: str, bots_dir: Path, candles: list[Candle],
                         warmup: int) -> None:
    """Store ``warmup`` candles, start the bot runtime, then publish + store the rest as the collector
    does, and wait until every bot processed the last one."""
    sessions = sessions_for(db_url)
    store_candles(sessions, candles[:warmup])
    settings = load_settings({"DATABASE_URL": db_url, "REDIS_URL": redis_url, "REDIS_PREFIX": prefix,
                              "BOTS_DIR": str(bots_dir)})
    bus = RedisBus(redis_url, prefix=prefix)
    stop = asyncio.Event()
    task = asyncio.create_task(run_bots(settings, bus, stop, poll_interval=0.2))

    def manager_ready() -> bool:
        with session_scope(sessions) as session:
            return session.get(ComponentHealth, "bot_manager") is not None

    def all_done() -> bool:
        with session_scope(sessions) as session:
            times = session.scalars(select(Bot.last_candle_time)).all()
        return bool(times) and all(t is not None and datetime_to_ms(t) == candles[-1].open_time_ms for t in times)

    try:
        await _wait_for(manager_ready, 30, "the bot manager to start")
        for candle in candles[warmup:]:
            await asyncio.to_thread(store_candles, sessions, [candle])
            await bus.publish(topics.candles(candle.exchange, candle.symbol, candle.timeframe),
                              messages.candle_to_message(candle))
        await _wait_for(all_done, 60, "the bots to process the last candle")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await bus.close()
        sessions.kw["bind"].dispose()


def test_a_bot_fed_on_the_bus_ends_where_a_hand_computation_of_its_signals_says(
        pg_clean: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    candles = load_candles(TOTAL)
    (tmp_path / "bot.json").write_text(json.dumps(bot_config(name="hand_checked")))
    asyncio.run(run_on_the_bus(pg_clean, redis_url, redis_prefix, tmp_path, candles, WARMUP))

    frame = pd.DataFrame({"open_time": [c.open_time_ms for c in candles], "open": [c.open for c in candles],
                          "high": [c.high for c in candles], "low": [c.low for c in candles],
                          "close": [c.close for c in candles], "volume": [c.volume for c in candles]})
    codes = create_strategy("sma_cross", {"fast": 5, "slow": 20}).generate_signals(frame).tolist()
    expected_signals = [(candles[i].open_time_ms, "BUY" if codes[i] > 0 else "SELL")
                        for i in range(WARMUP, TOTAL) if codes[i]]
    expected_fills = hand_computed_fills(candles, codes, WARMUP)
    assert len(expected_fills) >= 10  # the window really trades

    sessions = sessions_for(pg_clean)
    with session_scope(sessions) as session:
        stored = session.execute(select(SignalRow.candle_time, SignalRow.signal_type, SignalRow.source)
                                 .order_by(SignalRow.candle_time)).all()
        fills = session.execute(select(Fill.side, Fill.quantity, Fill.price, Fill.fee, Fill.realised_pnl)
                                .order_by(Fill.ts, Fill.id)).all()
        bot = session.scalars(select(Bot)).one()
        orders = session.scalars(select(Order)).all()
    assert [(datetime_to_ms(t), kind) for t, kind, _ in stored] == expected_signals
    assert {source for _, _, source in stored} == {"bot:hand_checked"}
    assert [tuple(f) for f in fills] == expected_fills
    fees = sum(f[3] for f in expected_fills)
    realised = sum(f[4] for f in expected_fills)
    assert bot.balance == Decimal(10_000) + realised - fees
    assert bot.fees_paid == fees and bot.realised_pnl == realised
    assert bot.last_candle_time is not None and datetime_to_ms(bot.last_candle_time) == candles[-1].open_time_ms
    # one order per fill (each filled once) plus at most one still open from the last candle
    assert sum(o.status == "filled" for o in orders) == len(expected_fills)
    assert len({o.client_order_id for o in orders}) == len(orders)
    held = expected_fills[-1][1] if expected_fills[-1][0] == "buy" else Decimal(0)
    assert Decimal(bot.state["broker"]["quantity"]) == held
