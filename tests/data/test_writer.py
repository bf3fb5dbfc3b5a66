"""The storage writer: idempotent batched writes, and a real PostgreSQL outage survived."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from config.domain import Candle, Side, Timeframe
from data.okx.frames import WireTrade
from data.writer import StorageWriter
from database.engine import make_engine, make_session_factory, session_scope
from database.repositories.market import count_trades, get_candles, get_trades
from tests.data.proxy import CuttableProxy

M = 60_000
T0 = 1_700_000_040_000 - 1_700_000_040_000 % M


def candle(i: int, close: float = 101.0) -> Candle:
    return Candle("okx", "BTC-USDT", Timeframe.M1, T0 + i * M, 100.0, 105.0, 95.0, close, 2.0, 200.0, 1.0, 3)


def wire(i: int) -> WireTrade:
    return WireTrade(tradeId=i, px=100.0 + i % 7, sz=0.5, side=Side.BUY if i % 2 else Side.SELL, ts=T0 + i)


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def stored(url: str) -> tuple[list[Candle], int]:
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        result = get_candles(s, "okx", "BTC-USDT", Timeframe.M1), count_trades(s, "okx", "BTC-USDT")
    engine.dispose()
    return result


def test_candles_and_trades_written_twice_are_stored_once_and_published_after_the_write(db_url: str) -> None:
    published: list[Candle] = []

    async def main() -> None:
        engine = make_engine(db_url)
        writer = StorageWriter(engine, flush_interval=0.05,
                               on_stored=lambda cs: published.extend(cs) or None)  # type: ignore[func-returns-value]
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        writer.add_candles([candle(0), candle(1)])
        writer.add_trades("BTC-USDT", [wire(i) for i in range(100)])
        writer.add_trades("BTC-USDT", [wire(i) for i in range(50, 150)])
        await until(lambda: writer.stats.trades_written == 200 and writer.stats.candles_written == 2)
        assert len(stored(db_url)[0]) == 2  # readable by the time it was published
        writer.add_candles([candle(1, close=104.0)])
        stop.set()
        await task
        engine.dispose()

    asyncio.run(asyncio.wait_for(main(), 30))
    candles, trades = stored(db_url)
    assert [c.close for c in candles] == [101.0, 104.0] and trades == 150
    assert [c.close for c in published] == [101.0, 101.0, 104.0]
    engine = make_engine(db_url)
    with session_scope(make_session_factory(engine)) as s:
        first = get_trades(s, "okx", "BTC-USDT")[0]
    engine.dispose()
    assert (first.trade_id, first.ts_ms, first.price, first.size, first.side) == (0, T0, 100.0, 0.5, Side.SELL)


def test_a_database_outage_is_survived_without_losing_what_the_buffer_holds_and_publishes_after_it(
        pg_clean: str) -> None:
    published: list[Candle] = []
    events: list[str] = []
    host, port = "127.0.0.1", int(pg_clean.split("@", 1)[1].split("/")[0].split(":")[1])

    async def main(proxy: CuttableProxy) -> None:
        engine = make_engine(proxy.url_for(pg_clean))
        writer = StorageWriter(engine, flush_interval=0.05, retry_base=0.05, retry_cap=0.2,
                               on_stored=published.extend,
                               on_event=lambda level, message, data: events.append(level))
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        writer.add_candles([candle(0)])
        writer.add_trades("BTC-USDT", [wire(i) for i in range(1000)])
        await until(lambda: writer.stats.candles_written == 1 and writer.stats.trades_written == 1000)
        proxy.cut()
        writer.add_candles([candle(i) for i in range(1, 6)])
        writer.add_trades("BTC-USDT", [wire(i) for i in range(1000, 5000)])
        await until(lambda: not writer.stats.db_ok)
        await asyncio.sleep(0.5)  # a few failed retries
        assert writer.candle_backlog == 5 and writer.trade_backlog == 4000
        assert len(published) == 1  # nothing reaches the bus before the database has it
        proxy.restore()
        await until(lambda: writer.stats.db_ok and writer.candle_backlog == 0 and writer.trade_backlog == 0)
        stop.set()
        await task
        engine.dispose()

    with CuttableProxy(host, port) as proxy:
        asyncio.run(asyncio.wait_for(main(proxy), 60))
    candles, trades = stored(pg_clean)
    assert [c.open_time_ms for c in candles] == [T0 + i * M for i in range(6)] and trades == 5000
    assert [c.open_time_ms for c in published] == [T0 + i * M for i in range(6)]  # each published once
    assert events == ["WARNING", "INFO"]
