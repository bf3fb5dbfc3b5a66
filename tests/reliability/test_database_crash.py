"""A real PostgreSQL crash under the storage writer.

The writer's commits don't wait for the disk (``synchronous_commit=off``), so a crash can take the
last ones with it. A private cluster whose WAL writer flushes only every 10 s is crashed
(``pg_ctl stop -m immediate``) right after a write: the crash really loses commits (checked after the
restart, before the writer can reconnect), and the writer writes them again from what it kept,
publishing nothing twice. On stop the writer puts its last commits on disk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from config.domain import Candle, Side, Timeframe
from data.okx.frames import WireTrade
from data.writer import StorageWriter
from database.engine import make_engine, make_session_factory, session_scope
from database.migrate import upgrade
from database.repositories.market import count_trades, get_candles
from tests.reliability.harness import PostgresProcess

M = 60_000
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def candle(i: int) -> Candle:
    return Candle("okx", "BTC-USDT", Timeframe.M1, T0 + i * M, 100.0, 105.0, 95.0, 101.0 + i, 2.0, 200.0, 1.0, 3)


def trades(first: int, n: int) -> list[WireTrade]:
    return [WireTrade(tradeId=i, px=100.0 + i % 7, sz=0.5, side=Side.BUY if i % 2 else Side.SELL, ts=T0 + i)
            for i in range(first, first + n)]


def stored(url: str) -> tuple[list[int], int]:
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        times = [c.open_time_ms for c in get_candles(s, "okx", "BTC-USDT", Timeframe.M1)]
        result = times, count_trades(s, "okx", "BTC-USDT")
    engine.dispose()
    return result


async def until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.fixture
def lazy_postgres() -> Iterator[PostgresProcess]:
    # Nothing but the writer flushes the WAL: the WAL writer every 10 s, no autovacuum (its commits
    # are synchronous), no checkpoint.
    server = PostgresProcess(wal_writer_delay="'10s'", wal_writer_flush_after="'64MB'",
                             checkpoint_timeout="'1h'", autovacuum="off")
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.close()


def test_commits_lost_in_a_postgresql_crash_are_written_again_and_published_once(
        lazy_postgres: PostgresProcess) -> None:
    server = lazy_postgres
    upgrade(server.url)
    published: list[Candle] = []
    lost: dict[str, tuple[list[int], int]] = {}

    async def main() -> None:
        engine = make_engine(server.url)
        writer = StorageWriter(engine, flush_interval=0.05, retry_base=0.05, retry_cap=0.5, durability_poll=0.05,
                               on_stored=published.extend)
        assert writer.tracks_unflushed
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        # A first write: flushed by the WAL writer (at once if it was idle, else within 10 s); the
        # writer then forgets it.
        writer.add_candles([candle(0)])
        writer.add_trades("BTC-USDT", trades(0, 100))
        await until(lambda: writer.stats.trades_written == 100 and writer.stats.candles_written == 1
                    and writer.unflushed == 0, "the first write on disk")
        # The next commits stay in the WAL buffers for up to 10 s; the writer keeps them meanwhile.
        writer.add_candles([candle(1), candle(2)])
        writer.add_trades("BTC-USDT", trades(100, 200))
        await until(lambda: writer.stats.trades_written == 300 and writer.stats.candles_written == 3,
                    "the second write")
        await asyncio.sleep(0.3)  # several probes: still not on disk, still kept
        assert writer.unflushed == 2
        await asyncio.to_thread(server.crash)
        # Recover with TCP off (the writer can't reconnect yet) to see what the crash took.
        await asyncio.to_thread(server.start, False)
        lost["after restart"] = await asyncio.to_thread(stored, server.socket_url)
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        writer.add_candles([candle(3)])
        writer.add_trades("BTC-USDT", trades(300, 50))
        await until(lambda: writer.stats.candles_written == 4 and writer.stats.trades_written == 350
                    and writer.stats.db_ok and not writer._candles_pending and not writer._trades_pending,
                    "the writer back after the crash")
        assert writer.stats.candles_rewritten == 2 and writer.stats.trades_rewritten == 200
        stop.set()
        await task
        assert writer.unflushed == 0
        engine.dispose()

    asyncio.run(asyncio.wait_for(main(), 120))
    # The writer's last commit on stop was synchronous: a crash right after it loses nothing.
    server.crash()
    server.start()
    # The first write survived the crash; of the second (two commits, candles and trades, neither
    # known to be flushed) the crash took at least the one still in a partly filled WAL page.
    times, n = lost["after restart"]
    assert times in ([T0], [T0, T0 + M, T0 + 2 * M]) and n in (100, 300)
    assert (times, n) != ([T0, T0 + M, T0 + 2 * M], 300), "the crash lost nothing: the test proves nothing"
    assert stored(server.url) == ([T0 + i * M for i in range(4)], 350)
    assert [c.open_time_ms for c in published] == [T0 + i * M for i in range(4)]  # each once, in order
