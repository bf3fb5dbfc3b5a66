"""The replay server speaks OKX v5: acks, errors, ping/pong, trades from the tape, REST candles."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from websockets.asyncio.client import connect

from config.domain import Timeframe
from data.replay.server import ReplayServer
from tests.data.builders import SYMBOL, expected_candles, load


def run(coro: Callable[[], Awaitable[None]], timeout: float = 30.0) -> None:
    asyncio.run(asyncio.wait_for(coro(), timeout))


async def recv_json(ws) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


def test_subscribe_is_acked_per_arg_and_an_unknown_instrument_gets_error_60018() -> None:
    async def main() -> None:
        async with ReplayServer({SYMBOL: load()}, speed=0) as server, connect(server.ws_url, max_queue=None) as ws:
            server.pause()
            await ws.send(json.dumps({"id": "s1", "op": "subscribe", "args": [
                {"channel": "trades", "instId": SYMBOL}, {"channel": "trades", "instId": "NOPE-USDT"}]}))
            ack, error = await recv_json(ws), await recv_json(ws)
            assert (ack["id"], ack["event"], ack["arg"]) == ("s1", "subscribe", {"channel": "trades", "instId": SYMBOL})
            assert (error["event"], error["code"]) == ("error", "60018") and "NOPE-USDT" in error["msg"]
            await ws.send("ping")
            assert await asyncio.wait_for(ws.recv(), 5) == "pong"
            await ws.send("{not json")
            assert (await recv_json(ws))["code"] == "60012"

    run(main)


def test_at_speed_zero_the_pushes_carry_the_whole_tape_in_order() -> None:
    tape = load()

    async def main() -> None:
        async with ReplayServer({SYMBOL: tape}, speed=0) as server, connect(server.ws_url, max_queue=None) as ws:
            await ws.send(json.dumps({"op": "subscribe", "args": [{"channel": "trades", "instId": SYMBOL}]}))
            assert (await recv_json(ws))["event"] == "subscribe"
            got = []
            while len(got) < len(tape):
                push = await recv_json(ws)
                assert push["arg"] == {"channel": "trades", "instId": SYMBOL}
                got.extend(push["data"])
            assert [int(d["tradeId"]) for d in got] == tape.trade_id.tolist()
            assert [int(d["ts"]) for d in got] == tape.ts_ms.tolist()
            assert [float(d["px"]) for d in got] == tape.price.tolist()
            assert [float(d["sz"]) for d in got] == tape.size.tolist()
            assert [d["side"] == "buy" for d in got] == tape.is_buy.tolist()

    run(main)


def test_rest_history_candles_page_newest_first_and_match_the_tape() -> None:
    tape = load()
    expected = expected_candles(tape, Timeframe.M1)

    async def main() -> None:
        async with ReplayServer({SYMBOL: tape}, speed=0) as server, connect(server.ws_url, max_queue=None) as ws, \
                aiohttp.ClientSession() as http:
            url = f"{server.rest_url}/api/v5/market/history-candles"
            async with http.get(url, params={"instId": SYMBOL}) as r:
                assert (await r.json())["data"] == []  # the market has not opened yet
            await ws.send(json.dumps({"op": "subscribe", "args": [{"channel": "trades", "instId": SYMBOL}]}))
            received = 0
            await recv_json(ws)
            while received < len(tape):
                received += len((await recv_json(ws))["data"])
            await asyncio.sleep(1.2)  # after the tape ends the market clock moves on at 600x (speed 0)
            rows, after = [], None
            while True:
                params = {"instId": SYMBOL, "bar": "1m", "limit": "3"} | ({"after": str(after)} if after else {})
                async with http.get(url, params=params) as r:
                    page = (await r.json())["data"]
                if not page:
                    break
                assert [int(p[0]) for p in page] == sorted((int(p[0]) for p in page), reverse=True)
                rows.extend(page)
                after = int(page[-1][0])
            rows.reverse()
            complete = expected[expected.index + 60_000 <= tape.last_ts + 1 + 600 * 1_000]  # every minute is over
            assert [int(r[0]) for r in rows] == list(complete.index)
            for r, e in zip(rows, complete.itertuples(), strict=True):
                assert [float(x) for x in r[1:5]] == [e.open, e.high, e.low, e.close]
                assert float(r[5]) == pytest.approx(e.volume, rel=1e-9) and r[8] == "1"
            async with http.get(url, params={"instId": "NOPE-USDT"}) as r:
                assert (await r.json())["code"] == "51001"

    run(main)


def test_a_looped_tape_repeats_with_ids_and_whole_days_shifted() -> None:
    tape = load()

    async def main() -> None:
        async with ReplayServer({SYMBOL: tape}, speed=0, loop=True) as server, \
                connect(server.ws_url, max_queue=None) as ws:
            await ws.send(json.dumps({"op": "subscribe", "args": [{"channel": "trades", "instId": SYMBOL}]}))
            await recv_json(ws)
            got = []
            while len(got) < len(tape) + 10:
                got.extend((await recv_json(ws))["data"])
            server.pause()
            first, again = got[0], got[len(tape)]
            assert int(again["tradeId"]) - int(first["tradeId"]) == tape.id_span
            shift = int(again["ts"]) - int(first["ts"])
            assert shift % 86_400_000 == 0 and shift > tape.last_ts - tape.first_ts
            assert again["px"] == first["px"]

    run(main)


def test_a_connection_that_never_subscribes_is_closed_after_the_idle_limit() -> None:
    async def main() -> None:
        async with ReplayServer({SYMBOL: load()}, speed=0, idle_timeout=0.5) as server, \
                connect(server.ws_url, max_queue=None) as ws:
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 4000

    run(main)


def test_market_time_is_the_tape_start_until_the_feed_has_anchored_its_clock() -> None:
    """Between the first subscription and the first run of the feed's task (long on a busy machine)
    the market time is where the tape starts, not one computed from a clock not yet set."""
    tape = load()

    async def main() -> None:
        async with ReplayServer({SYMBOL: tape}, speed=12.0) as server:
            server._started.set()  # what the first subscription does; the feed's task has not run yet
            assert tape.first_ts - 1 <= server.market_ms(SYMBOL) <= tape.first_ts
            await asyncio.sleep(0.05)  # anchored now: the clock moves from the tape's start
            assert tape.first_ts <= server.market_ms(SYMBOL) < tape.first_ts + 60_000

    run(main)
