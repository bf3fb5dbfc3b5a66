"""Binance end to end, offline: the replay speaking Binance spot + USDⓈ-M (WebSocket and REST), the Binance
trade stream and REST client against it, and ``replay --protocol binance`` -> ``collect --exchange binance``
as real processes, whose stored 1m candles must equal an aggregation of the real captured trade frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pandas as pd
import pytest
import websockets

from config.domain import Candle, Timeframe
from data.binance.client import BinanceTradeStream
from data.binance.frames import Kind
from data.binance.rest import BinanceRest
from data.okx.client import StreamState
from data.okx.frames import WireTrade
from data.replay.server import ReplayServer
from data.replay.tape import Tape, read_tape
from database.engine import make_engine, make_session_factory, session_scope
from database.repositories.market import get_candles
from tests.data.builders import ROOT, assert_candles_match
from tests.data.processes import env, stop, wait_for
from tests.data.test_binance_frames import SPOT_FRAMES, USDM_FRAMES, lines
from tests.data.test_client import run, until

SAMPLES = ROOT / "data" / "samples"
SPOT_TAPE = SAMPLES / "tape_BTC-USDT_binance_spot_2024-08-08T2354.csv.gz"
USDM_TAPE = SAMPLES / "tape_BTC-USDT-SWAP_binance_usdm_2024-08-08T2354.csv.gz"
SPOT, PERP = "BTC-USDT", "BTC-USDT-SWAP"


def tapes() -> dict[str, Tape]:
    return {SPOT: read_tape(SPOT_TAPE), PERP: read_tape(USDM_TAPE)}


def frame_candles(path: Path) -> pd.DataFrame:
    """Independent 1m aggregation of captured ``@trade`` frames (json + pandas; not the tapes, not our code)."""
    rows = [json.loads(text)["data"] for text in lines(path)]
    frame = pd.DataFrame({"t": [r["t"] for r in rows], "ts_ms": [r["T"] for r in rows],
                          "price": [float(r["p"]) for r in rows], "size": [float(r["q"]) for r in rows],
                          "buy": [not r["m"] for r in rows]}).sort_values("t", kind="stable")
    frame = frame.assign(bucket=frame["ts_ms"] // 60_000 * 60_000, quote=frame["price"] * frame["size"],
                         buy_size=frame["size"].where(frame["buy"], 0.0))
    return frame.groupby("bucket").agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"), close=("price", "last"),
        volume=("size", "sum"), quote_volume=("quote", "sum"), buy_volume=("buy_size", "sum"),
        trade_count=("price", "size"))


class Sink:
    def __init__(self) -> None:
        self.trades: dict[str, list[WireTrade]] = {}

    def on_trades(self, symbol: str, trades: list[WireTrade], received_ms: int) -> None:
        assert received_ms > 0
        self.trades.setdefault(symbol, []).extend(trades)


def stream_for(server: ReplayServer, symbols: list[str], sink: Sink, **options: float) -> BinanceTradeStream:
    return BinanceTradeStream({Kind.SPOT: server.ws_url, Kind.USDM: server.usdm_ws_url}, symbols, sink.on_trades,
                              backoff_base=0.05, **options)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def streaming(server: ReplayServer, symbols: list[str], make: Callable[..., Any] = stream_for,
                    **options: float) -> AsyncIterator[tuple[Any, Sink]]:
    """A trade stream (``make(server, symbols, sink, **options)``) running into a :class:`Sink`."""
    sink = Sink()
    stream = make(server, symbols, sink, **options)
    stop_ = asyncio.Event()
    task = asyncio.create_task(stream.run(stop_))
    try:
        yield stream, sink
    finally:
        stop_.set()
        await asyncio.wait_for(task, 10)


def test_spot_and_usdm_streams_deliver_every_captured_trade_once_in_order() -> None:
    expected = {SPOT: [json.loads(t)["data"]["t"] for t in lines(SPOT_FRAMES)],
                PERP: [json.loads(t)["data"]["t"] for t in lines(USDM_FRAMES)]}

    async def main() -> None:
        async with ReplayServer(tapes(), speed=0, protocol="binance") as server:
            async with streaming(server, [SPOT, PERP]) as (stream, sink):
                await until(lambda: all(len(sink.trades.get(s, [])) >= len(ids) for s, ids in expected.items()),
                            60)
                assert stream.state == {SPOT: StreamState.SUBSCRIBED, PERP: StreamState.SUBSCRIBED}
        for symbol, ids in expected.items():
            assert [t.tradeId for t in sink.trades[symbol]] == ids
            assert {t.instId for t in sink.trades[symbol]} == {symbol}
        assert stream.stats.malformed == {} and stream.stats.connects == 2

    run(main, 90)


def test_garbage_and_refused_subscriptions_are_counted_and_the_stream_goes_on() -> None:
    garbage = ("garbage", "[1]", '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"}}',
               '{"e":"trade","E":1,"s":"ETHUSDT","t":1,"p":"1","q":"1","T":1,"m":true}', "garbage")

    async def main() -> None:
        async with ReplayServer({SPOT: read_tape(SPOT_TAPE)}, speed=0, protocol="binance") as server:
            server.refuse_subscriptions = True
            async with streaming(server, [SPOT]) as (stream, sink):
                await until(lambda: stream.state[SPOT] is StreamState.REJECTED)
                assert [e["code"] for e in stream.stats.errors] == ["2"]
                server.pause()
                server.refuse_subscriptions = False  # the client retries after its back-off (2 s)
                await until(lambda: stream.state[SPOT] is StreamState.SUBSCRIBED, 10)
                for text in garbage:
                    await server.send_raw(text)
                await until(lambda: sum(stream.stats.malformed.values()) == 5)
                assert stream.stats.malformed == {"not_json": 2, "not_object": 1, "bad_trade": 1,
                                                  "unknown_symbol": 1}
                server.resume()
                await until(lambda: len(sink.trades.get(SPOT, [])) >= 1000, 30)

    run(main, 60)


def test_the_replay_answers_requests_as_binance_does() -> None:
    async def main() -> None:
        async with ReplayServer(tapes(), speed=0, protocol="binance") as server:
            async with websockets.connect(server.usdm_ws_url.replace("/ws", "/stream")) as ws:
                await ws.send('{"method":"SUBSCRIBE","params":["btcusdt@trade","btcusdt@bookTicker"],"id":1}')
                assert json.loads(await ws.recv()) == {"result": None, "id": 1}
                first = json.loads(await ws.recv())
                assert first["stream"] == "btcusdt@trade" and first["data"]["X"] == "MARKET"
                await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":2}')
                await ws.send('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":"x"}')
                await ws.send('{"method":"NOPE","id":3}')
                replies = []
                while len(replies) < 3:
                    msg = json.loads(await ws.recv())
                    if "stream" not in msg:
                        replies.append(msg)
                assert replies[0] == {"result": ["btcusdt@bookTicker", "btcusdt@trade"], "id": 2}
                assert all(r["code"] == 2 and r["msg"].startswith("Invalid request") for r in replies[1:])
            async with aiohttp.ClientSession() as http:
                base = server.rest_url
                async with http.get(base + "/api/v3/klines", params={"symbol": "ETHUSDT", "interval": "1m"}) as r:
                    assert r.status == 400 and await r.json() == {"code": -1121, "msg": "Invalid symbol."}
                async with http.get(base + "/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "5m"}) as r:
                    assert r.status == 400 and (await r.json())["code"] == -1120
                server.fail_rest(1)
                async with http.get(base + "/fapi/v1/time") as r:
                    assert r.status == 429 and (await r.json())["code"] == -1003
                async with http.get(base + "/fapi/v1/time") as r:
                    assert (await r.json())["serverTime"] == server.market_ms(PERP)

    run(main, 60)


def test_rest_candles_and_trade_gaps_from_the_replay_match_the_captured_frames() -> None:
    spot_expected = frame_candles(SPOT_FRAMES)
    perp_trades = [json.loads(t)["data"] for t in lines(USDM_FRAMES)]

    async def main() -> None:
        async with ReplayServer(tapes(), speed=0, protocol="binance") as server:
            async with streaming(server, [SPOT, PERP]) as (_, sink):
                await until(lambda: len(sink.trades.get(SPOT, [])) >= 19_904
                            and len(sink.trades.get(PERP, [])) >= 21_313, 60)
            await asyncio.sleep(0.3)  # after the tape the market clock moves on: the last minute is over
            rest = BinanceRest(server.rest_url, requests_per_second=200)
            try:
                first, last = int(spot_expected.index[0]), int(spot_expected.index[-1])
                candles = await rest.minute_candles(SPOT, first, last + 60_000)
                assert_candles_match(candles, spot_expected)
                lo, hi = perp_trades[100]["t"], perp_trades[2600]["t"]  # a gap of 2 499 trades: three pages
                got, complete = await rest.trades_between(PERP, lo, hi)
                assert complete and [t.tradeId for t in got] == [r["t"] for r in perp_trades[101:2600]]
                assert [t.px for t in got] == [float(r["p"]) for r in perp_trades[101:2600]]
            finally:
                await rest.close()

    run(main, 90)


def stored(url: str, symbol: str, exchange: str = "binance") -> list[Candle]:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return get_candles(session, exchange, symbol, Timeframe.M1)
    finally:
        engine.dispose()


def collect_from_replay(protocol: str, db_url: str, tmp_path: Path, done: Callable[[], bool]) -> None:
    """``replay --protocol P`` of both tapes (twice, a day apart, as fast as read) and ``collect --exchange P`` of
    both markets on it, as processes, until ``done()``; the collector must stop cleanly, with no traceback."""
    replay = subprocess.Popen(
        [sys.executable, "main.py", "replay", "--protocol", protocol, "--tape", str(SPOT_TAPE), "--symbol", SPOT,
         "--tape", str(USDM_TAPE), "--symbol", PERP, "--speed", "0", "--port", "0", "--loop", "--passes", "2"],
        cwd=ROOT, env=env("sqlite:///" + str(tmp_path / "unused.db"), tmp_path), stdout=subprocess.PIPE, text=True)
    assert replay.stdout is not None
    line = replay.stdout.readline()
    match = re.search(r"on (ws://\S+) rest (http://\S+) (?:usdm|linear) (ws://\S+)", line)
    assert match, f"replay did not start: {line!r}"
    ws, rest, perp = match.groups()
    log = open(tmp_path / "collect.log", "w")  # noqa: SIM115 - closed below
    collect = subprocess.Popen(
        [sys.executable, "main.py", "collect", "--exchange", protocol, "--symbols", f"{SPOT},{PERP}",
         "--ws-url", ws, "--rest-url", rest, "--perp-ws-url", perp, "--perp-rest-url", rest],
        cwd=ROOT, env=env(db_url, tmp_path), stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(done, 120, "both markets' minutes of the first pass")
        assert stop(collect) == 0
    finally:
        collect.kill()
        replay.kill()
        log.close()
    assert "Traceback" not in (tmp_path / "collect.log").read_text()


def assert_replayed_candles(protocol: str, db_url: str, tmp_path: Path) -> None:
    """The collector of ``protocol`` on its replay of both tapes stores the 1m candles of the captured frames."""
    spot_expected, perp_expected = frame_candles(SPOT_FRAMES), frame_candles(USDM_FRAMES)
    # The repeat (one day later) closes every minute of the first pass.
    collect_from_replay(protocol, db_url, tmp_path, lambda: all(
        len(stored(db_url, s, protocol)) > len(e) for s, e in ((SPOT, spot_expected), (PERP, perp_expected))))
    for symbol, expected in ((SPOT, spot_expected), (PERP, perp_expected)):
        candles = [c for c in stored(db_url, symbol, protocol) if c.open_time_ms <= int(expected.index[-1])]
        assert_candles_match(candles, expected)


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_replayed_binance_spot_and_usdm_collect_into_the_candles_of_the_captured_frames(db_url: str,
                                                                                       tmp_path: Path) -> None:
    assert_replayed_candles("binance", db_url, tmp_path)


def test_collect_exchange_binance_runs_on_the_bundled_binance_replay_with_no_urls(pg_clean: str,
                                                                                  tmp_path: Path) -> None:
    log = open(tmp_path / "collect.log", "w")  # noqa: SIM115 - closed below
    collect = subprocess.Popen(
        [sys.executable, "main.py", "collect", "--exchange", "binance", "--symbols", f"{SPOT},{PERP}"], cwd=ROOT,
        env=env(pg_clean, tmp_path, REPLAY_SPEED="120", REPLAY_PORT="0"), stdout=log, stderr=subprocess.STDOUT,
        text=True)
    try:
        wait_for(lambda: len(stored(pg_clean, SPOT)) >= 2 and len(stored(pg_clean, PERP)) >= 2, 90,
                 "closed minutes of both bundled Binance tapes")
        assert stop(collect) == 0
    finally:
        collect.kill()
        log.close()
    for symbol, path in ((SPOT, SPOT_FRAMES), (PERP, USDM_FRAMES)):
        expected = frame_candles(path)
        candles = stored(pg_clean, symbol)
        # the first pass of the bundled tape is the capture itself
        assert_candles_match(candles[:2], expected.iloc[:2])


def test_collect_exchange_binance_refuses_an_unlisted_symbol_and_okx_options(pg_clean: str, tmp_path: Path) -> None:
    async def main() -> list[subprocess.CompletedProcess[str]]:
        async with ReplayServer({SPOT: read_tape(SPOT_TAPE)}, speed=1, protocol="binance") as server:
            base = ["collect", "--exchange", "binance", "--ws-url", server.ws_url, "--rest-url", server.rest_url]
            runs = []
            for args in (["--symbols", "BTC-USDT,BTC-USDC"], ["--symbols", "BTC-USDT", "--okx-rest-url", "http://x"],
                         ["--symbols", "BTCUSDT"]):
                runs.append(await asyncio.to_thread(
                    subprocess.run, [sys.executable, "main.py", *base, *args], cwd=ROOT,
                    env=env(pg_clean, tmp_path), capture_output=True, text=True, timeout=60))
            return runs

    unknown, okx_option, bad_name = asyncio.run(main())
    assert [r.returncode for r in (unknown, okx_option, bad_name)] == [2, 2, 2]
    assert unknown.stderr.strip().splitlines()[-1] == (
        "error: --symbols: unknown instrument 'BTC-USDC' on binance (did you mean BTC-USDT?)")
    assert okx_option.stderr.strip().splitlines()[-1].startswith("error: --okx-rest-url: is for OKX")
    assert "BASE-QUOTE" in bad_name.stderr.strip().splitlines()[-1]
    assert stored(pg_clean, SPOT) == []
