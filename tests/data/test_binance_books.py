"""Binance order books end to end, offline: the replay serving the real captured spot ``depth@100ms`` and
USDⓈ-M ``depth@0ms`` streams and REST snapshots of 2024-08-08 (data/samples/README.md), the live book client
against it, and the collector keeping books, publishing them and storing snapshots.

The book is checked against an independent reference (json + dicts + sorted, from the capture file, not our
parser or Book): the recorded snapshot plus every recorded update after it, up to the update the client
reached. A dropped update (the replay skips one frame) must be detected as a gap and resynced from REST."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from data import topics
from data.binance.depth import BinanceBookStream
from data.binance.frames import Kind
from data.binance.rest import BinanceRest
from data.books import Book
from data.bus import InProcessBus
from data.collector import Collector, CollectorConfig
from data.messages import book_from_message
from data.replay.depth import read_depth_capture
from data.replay.server import ReplayServer
from data.service import BINANCE_DEPTH
from database.engine import make_engine, make_session_factory, session_scope
from database.repositories.books import get_book_snapshots
from tests.data.test_binance_replay import PERP, SPOT, tapes
from tests.data.test_client import run, until


class Reference:
    """The recorded book, rebuilt with plain json and dicts: the snapshot, then each update after it."""

    def __init__(self, path: Path) -> None:
        self.events: list[dict[str, object]] = []
        with gzip.open(path, "rt") as f:
            for line in f:
                body = json.loads(line.split(" ", 1)[1])
                if "lastUpdateId" in body:
                    self.snapshot = body
                else:
                    self.events.append(body["data"])
        self.events.sort(key=lambda e: e["E"])

    def top(self, through_id: int, n: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        sides = [{float(p): float(s) for p, s in self.snapshot[k]} for k in ("bids", "asks")]
        for event in self.events:
            if self.snapshot["lastUpdateId"] < event["u"] <= through_id:
                for side, levels in zip(sides, (event["b"], event["a"]), strict=True):
                    for p, s in levels:
                        if float(s) == 0:
                            side.pop(float(p), None)
                        else:
                            side[float(p)] = float(s)
        return sorted(sides[0].items(), reverse=True)[:n], sorted(sides[1].items())[:n]


REFERENCE = {s: Reference(p) for s, p in BINANCE_DEPTH.items()}


@contextlib.asynccontextmanager
async def books(speed: float = 30.0) -> AsyncIterator[tuple[ReplayServer, BinanceBookStream, list[str]]]:
    depth = {s: read_depth_capture(p) for s, p in BINANCE_DEPTH.items()}
    server = await ReplayServer(tapes(), speed=speed, protocol="binance", depth=depth).start()
    rest = BinanceRest(server.rest_url, server.rest_url, requests_per_second=50)
    seen: list[str] = []
    stream = BinanceBookStream({Kind.SPOT: server.ws_url, Kind.USDM: server.usdm_ws_url}, rest, [SPOT, PERP],
                               lambda symbol, book, ts, uid: seen.append(symbol), backoff_base=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    try:
        yield server, stream, seen
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await rest.close()
        await server.close()


async def settled(server: ReplayServer, stream: BinanceBookStream) -> None:
    """Stop the market and let the client take in everything sent."""
    server.pause()
    await asyncio.sleep(0.3)


def assert_book_is_the_recording(stream: BinanceBookStream, symbol: str, n: int = 50) -> None:
    sync = stream.syncs[symbol]
    assert sync.last_id is not None
    bids, asks = sync.book.top(n)
    assert (bids, asks) == REFERENCE[symbol].top(sync.last_id, n)
    assert bids[0][0] < asks[0][0]


def test_the_live_books_follow_the_recorded_streams_in_sequence() -> None:
    async def scenario() -> None:
        async with books() as (server, stream, seen):
            await until(lambda: all(stream.updates[s] >= 300 for s in (SPOT, PERP)), 30)
            await settled(server, stream)
            for symbol in (SPOT, PERP):
                assert_book_is_the_recording(stream, symbol)
                assert (stream.syncs[symbol].gaps, stream.syncs[symbol].resyncs) == (0, 0)
            assert server.stats.depth_sent[SPOT] > 300 and stream.stats.malformed == {}
            assert {SPOT, PERP} <= set(seen)
    run(scenario, 60)


@pytest.mark.parametrize("symbol", [SPOT, PERP])
def test_a_dropped_update_is_detected_counted_and_resynced_from_rest(symbol: str) -> None:
    async def scenario() -> None:
        async with books() as (server, stream, _):
            await until(lambda: stream.updates[symbol] >= 50, 30)
            before = server.stats.rest_requests
            server.drop_depth(symbol)
            sync = stream.syncs[symbol]
            await until(lambda: sync.gaps == 1 and sync.resyncs == 1 and stream.live(symbol), 20)
            applied = stream.updates[symbol]
            await until(lambda: stream.updates[symbol] >= applied + 20, 20)  # live again after the resync
            await settled(server, stream)
            assert server.stats.depth_dropped[symbol] == 1
            assert server.stats.rest_requests > before  # the resync fetched a new snapshot
            assert_book_is_the_recording(stream, symbol)
            other = PERP if symbol == SPOT else SPOT
            assert stream.syncs[other].gaps == 0
    run(scenario, 60)


def test_a_malformed_depth_frame_is_counted_and_skipped() -> None:
    async def scenario() -> None:
        async with books() as (server, stream, _):
            await until(lambda: stream.updates[SPOT] >= 20, 30)
            await server.send_raw('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","s":"BTCUSDT"}}')
            await server.send_raw("not json")
            await until(lambda: sum(stream.stats.malformed.values()) >= 4, 10)  # both frames on both sockets
            applied = stream.updates[SPOT]
            await until(lambda: stream.updates[SPOT] > applied + 10, 20)
            assert stream.stats.malformed.keys() == {"bad_depth", "not_json"}
            assert stream.syncs[SPOT].gaps == 0
    run(scenario, 60)


def test_the_collector_publishes_books_and_stores_snapshots(db_url: str) -> None:
    async def scenario() -> None:
        depth = {s: read_depth_capture(p) for s, p in BINANCE_DEPTH.items()}
        server = await ReplayServer(tapes(), speed=30, protocol="binance", depth=depth).start()
        bus = InProcessBus()
        sub = await bus.subscribe(topics.books("binance", "*"))
        collector = Collector(CollectorConfig(
            symbols=(SPOT, PERP), ws_url=server.ws_url, rest_url=server.rest_url, perp_ws_url=server.usdm_ws_url,
            perp_rest_url=server.rest_url, exchange="binance", database_url=db_url, tick_s=0.1,
            flush_interval_s=0.05, health_interval_s=0.5, repair_ready_delay_s=0.2, books=True, book_depth=10,
            book_snapshot_s=0.5), bus)
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        try:
            got: dict[str, int] = {}
            while len(got) < 2 or min(got.values()) < 5:
                message = await sub.get(timeout=20)
                assert message is not None, "no book on the bus"
                channel, data = message
                top = book_from_message(data)
                assert len(top.bids) == len(top.asks) == 10 and top.bids[0][0] < top.asks[0][0]
                assert channel == topics.books("binance", top.symbol)
                got[top.symbol] = got.get(top.symbol, 0) + 1
            await until(lambda: collector.books is not None and collector.books.stored >= 4, 20)
            report = collector._health(1.0)
            assert report["books"][0] == "ok" and report["books"][1]["published"] >= 10
            assert report[f"collector.binance.{PERP}"][1]["book"]["gaps"] == 0
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await server.close()
        engine = make_engine(db_url)
        with session_scope(make_session_factory(engine)) as session:
            for symbol in (SPOT, PERP):
                stored = get_book_snapshots(session, "binance", symbol)
                assert len(stored) >= 2
                book = Book()
                book.apply(stored[-1].bids, stored[-1].asks)
                assert book.top(10) == (list(stored[-1].bids), list(stored[-1].asks))
                assert stored[-1].update_id is not None
                assert [s.ts_ms for s in stored] == sorted({s.ts_ms for s in stored})
        engine.dispose()
    run(scenario, 90)
