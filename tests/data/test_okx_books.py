"""OKX order books end to end, offline: the OKX replay serving the real ``books`` pushes recorded with the
BTC-USDT trades of 2022-05-13 (tests/fixtures/README.md), the live book client against it (``books`` with its
CRC32 checksums, and ``books5``), a dropped update detected and resynced, and the collector keeping the book."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator

import numpy as np

from data import topics
from data.books import OkxBookSync
from data.bus import InProcessBus
from data.collector import Collector, CollectorConfig
from data.messages import book_from_message
from data.okx.books import OkxBookStream
from data.replay.okx_books import read_okx_books_capture
from data.replay.server import ReplayServer
from data.replay.tape import Tape
from tests.data.builders import FIXTURES
from tests.data.test_client import run, until

SYMBOL = "BTC-USDT"
BOOKS = FIXTURES / "okx_public_ws_capture_2022-05-13_books.txt.gz"
TRADES = FIXTURES / "okx_public_ws_capture_2022-05-13_trades_and_events.txt"


def capture() -> list[dict[str, object]]:
    with gzip.open(BOOKS, "rt") as f:
        return read_okx_books_capture(f.read().splitlines(), SYMBOL)


def recorded_tape() -> Tape:
    """The BTC-USDT trades of the same capture, as a tape (the replay's market clock)."""
    rows = []
    for line in TRADES.read_text().splitlines():
        if f'"channel":"trades","instId":"{SYMBOL}"}},"data"' in line:
            rows += json.loads(line.split(": ", 1)[1])["data"]
    rows.sort(key=lambda r: (int(r["ts"]), int(r["tradeId"])))
    return Tape(np.array([int(r["tradeId"]) for r in rows]), np.array([int(r["ts"]) for r in rows]),
                np.array([float(r["px"]) for r in rows]), np.array([float(r["sz"]) for r in rows]),
                np.array([r["side"] == "buy" for r in rows]), "okx capture 2022-05-13")


def reference_through(pushes: list[dict[str, object]], ts_ms: int) -> OkxBookSync:
    """The recorded book after every push up to ``ts_ms`` (our sync, whose every step the checksum confirms)."""
    sync = OkxBookSync()
    for push in pushes:
        data = push["data"][0]  # type: ignore[index]
        if int(data["ts"]) <= ts_ms:
            assert sync.on_push(str(push["action"]), data) == "applied"
    return sync


@contextlib.asynccontextmanager
async def books(channel: str = "books") -> AsyncIterator[tuple[ReplayServer, OkxBookStream]]:
    server = await ReplayServer({SYMBOL: recorded_tape()}, speed=2, okx_books={SYMBOL: capture()}).start()
    stream = OkxBookStream(server.ws_url, [SYMBOL], lambda *_: None, channel=channel, backoff_base=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    try:
        yield server, stream
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await server.close()


def test_the_live_book_follows_the_recorded_pushes_and_every_checksum_matches() -> None:
    async def scenario() -> None:
        async with books() as (server, stream):
            sync = stream.syncs[SYMBOL]
            await until(lambda: sync.checked >= 40, 20)
            server.pause()
            await asyncio.sleep(0.3)
            ref = reference_through(capture(), stream.last_event_ms[SYMBOL])
            assert sync.book.top(25) == ref.book.top(25) and sync.gaps == 0
            assert sync.checked >= 40 and stream.stats.malformed == {}
    run(scenario, 60)


def test_a_dropped_update_fails_the_checksum_and_a_resubscription_resyncs() -> None:
    async def scenario() -> None:
        async with books() as (server, stream):
            sync = stream.syncs[SYMBOL]
            await until(lambda: sync.checked >= 10, 20)
            server.drop_book_update(SYMBOL)
            await until(lambda: sync.gaps == 1 and sync.resyncs >= 1 and sync.ready, 20)
            checked = sync.checked
            await until(lambda: sync.checked >= checked + 10, 20)  # updates chain and check again
            server.pause()
            await asyncio.sleep(0.3)
            ref = reference_through(capture(), stream.last_event_ms[SYMBOL])
            assert sync.book.top(25) == ref.book.top(25) and sync.gaps == 1
    run(scenario, 60)


def test_books5_gives_the_best_five_levels_of_the_recorded_book() -> None:
    async def scenario() -> None:
        async with books("books5") as (server, stream):
            await until(lambda: stream.updates[SYMBOL] >= 30, 20)
            server.pause()
            await asyncio.sleep(0.3)
            ref = reference_through(capture(), stream.last_event_ms[SYMBOL])
            assert stream.syncs[SYMBOL].book.top(5) == ref.book.top(5)
            assert len(stream.syncs[SYMBOL].book.bids) == 5
    run(scenario, 60)


def test_the_collector_keeps_the_okx_book(sqlite_url: str) -> None:
    async def scenario() -> None:
        server = await ReplayServer({SYMBOL: recorded_tape()}, speed=2, okx_books={SYMBOL: capture()}).start()
        bus = InProcessBus()
        sub = await bus.subscribe(topics.books("okx", SYMBOL))
        collector = Collector(CollectorConfig(
            symbols=(SYMBOL,), ws_url=server.ws_url, rest_url=server.rest_url, database_url=sqlite_url, tick_s=0.1,
            flush_interval_s=0.05, health_interval_s=0.5, repair_ready_delay_s=0.2, books=True, book_depth=5,
            book_snapshot_s=0.5), bus)
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        try:
            item = await sub.get(timeout=20)
            assert item is not None
            top = book_from_message(item[1])
            ref = reference_through(capture(), top.ts_ms)
            assert (list(top.bids), list(top.asks)) == ref.book.top(5)
            assert collector._health(1.0)[f"collector.okx.{SYMBOL}"][1]["book"]["checksums_checked"] >= 1
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await server.close()
    run(scenario, 60)
