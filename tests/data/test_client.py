"""The OKX client against the replay server: rejects, garbage, dropped connections, silence."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from data.okx.client import OkxTradeStream, StreamState
from data.okx.frames import WireTrade
from data.replay.server import ReplayServer
from tests.data.builders import SYMBOL, load


def run(coro: Callable[[], Awaitable[None]], timeout: float = 30.0) -> None:
    asyncio.run(asyncio.wait_for(coro(), timeout))


class Sink:
    def __init__(self) -> None:
        self.trades: list[WireTrade] = []
        self.subscribed: list[str] = []

    def on_trades(self, symbol: str, trades: list[WireTrade], received_ms: int) -> None:
        assert symbol == SYMBOL and received_ms > 0
        self.trades.extend(trades)


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def streaming(server: ReplayServer, symbols: list[str], **options: float):  # type: ignore[no-untyped-def]
    sink = Sink()
    stream = OkxTradeStream(server.ws_url, symbols, sink.on_trades, on_subscribed=sink.subscribed.append,
                            backoff_base=0.05, **options)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    try:
        yield stream, sink
    finally:
        server.pause()
        stop.set()
        await asyncio.wait_for(task, 10)


def test_a_rejected_instrument_is_logged_and_the_others_keep_streaming() -> None:
    async def main() -> None:
        async with ReplayServer({SYMBOL: load()}, speed=0) as server:
            async with streaming(server, [SYMBOL, "NOPE-USDT"]) as (stream, sink):
                await until(lambda: len(sink.trades) >= 1000)
                assert stream.state == {SYMBOL: StreamState.SUBSCRIBED, "NOPE-USDT": StreamState.REJECTED}
                assert [(e["code"], e["symbol"]) for e in stream.stats.errors] == [("60018", "NOPE-USDT")]

    run(main)


def test_garbage_frames_are_counted_by_kind_and_skipped() -> None:
    async def main() -> None:
        async with ReplayServer({SYMBOL: load()}, speed=0, loop=True) as server:
            async with streaming(server, [SYMBOL]) as (stream, sink):
                await until(lambda: len(sink.trades) >= 100)
                server.pause()
                for garbage in ["garbage", "[]", '{"event":"surprise"}', "garbage again"]:
                    await server.send_raw(garbage)
                await server.send_raw('{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"1",'
                                      '"px":"-1","sz":"1","side":"buy","ts":"1"}]}')
                await until(lambda: sum(stream.stats.malformed.values()) == 5)
                assert stream.stats.malformed == {"not_json": 2, "not_object": 1, "unknown_event": 1,
                                                  "bad_trade": 1}
                before = len(sink.trades)
                server.resume()
                await until(lambda: len(sink.trades) > before + 100)
                assert stream.stats.reconnects == 0

    run(main)


def test_a_dropped_connection_reconnects_and_resubscribes() -> None:
    tape = load()

    async def main() -> None:
        async with ReplayServer({SYMBOL: tape}, speed=0, loop=True) as server:
            async with streaming(server, [SYMBOL]) as (stream, sink):
                await until(lambda: len(sink.trades) >= 500)
                assert await server.drop_connections() == 1
                await until(lambda: stream.stats.connects == 2 and len(sink.subscribed) == 2)
                mark = len(sink.trades)
                await until(lambda: len(sink.trades) >= mark + 500)
                assert stream.stats.reconnects == 1 and sink.subscribed == [SYMBOL, SYMBOL]
                ids = [t.tradeId for t in sink.trades]
                assert ids == sorted(ids)  # the server resumes from its market position: no repeats

    run(main)


def test_silence_triggers_a_text_ping_and_a_missing_pong_a_reconnect() -> None:
    async def main() -> None:
        async with ReplayServer({SYMBOL: load()}, speed=0) as server:
            async with streaming(server, [SYMBOL], ping_after=0.3, pong_timeout=0.3) as (stream, sink):
                await until(lambda: len(sink.trades) >= 10)
                server.pause()  # a quiet market: the client pings and the server answers
                await until(lambda: server.stats.pings >= 2)
                assert stream.stats.reconnects == 0
                server.stall(5.0)  # now nothing comes back, not even pong
                await until(lambda: stream.stats.reconnects >= 1)

    run(main)


def test_pings_keep_a_quiet_connection_inside_the_idle_limit() -> None:
    async def main() -> None:
        async with ReplayServer({SYMBOL: load()}, speed=0, idle_timeout=0.8) as server:
            async with streaming(server, [SYMBOL], ping_after=0.2, pong_timeout=1.0) as (stream, sink):
                await until(lambda: len(sink.trades) >= 10)
                server.pause()
                await asyncio.sleep(2.5)  # three idle limits without a trade
                assert stream.stats.reconnects == 0 and server.stats.connections == 1

    run(main)
