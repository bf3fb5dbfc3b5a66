"""Bybit v5, offline: the frame and REST parsers on real Bybit messages (tardis.dev's captures,
tests/fixtures/README.md), the replay speaking Bybit spot + linear (WebSocket and REST) with the real Binance
BTCUSDT tapes in Bybit's framing (no Bybit trade tape is bundled), the trade stream and REST client against it,
and ``replay --protocol bybit`` -> ``collect --exchange bybit`` as real processes, whose stored 1m candles must
equal an independent aggregation of the captured trade frames the tapes hold."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path

import aiohttp
import pytest
import websockets

from config.domain import Candle, FundingRate, Liquidation, OpenInterest, Side, Timeframe
from config.errors import MalformedMessageError, TemporaryError
from data.bus import InProcessBus
from data.bybit import frames as f
from data.bybit.client import BybitTradeStream
from data.bybit.rest import BybitRest
from data.collector import Collector, CollectorConfig
from data.derivatives import bybit_derivatives_frame
from data.okx.frames import WireTrade
from data.replay.server import ReplayServer
from data.streams import StreamState
from database.engine import make_engine, make_session_factory, session_scope
from database.repositories.derivatives import funding_rates, liquidations, open_interest
from tests.data.builders import assert_candles_match
from tests.data.test_binance_frames import FIXTURES, SPOT_FRAMES, USDM_FRAMES, lines
from tests.data.test_binance_replay import PERP, SPOT, Sink, assert_replayed_candles, frame_candles, tapes
from tests.data.test_binance_replay import streaming as binance_streaming
from tests.data.test_client import run, until

TARDIS = FIXTURES / "binance_bybit_ws_messages_tardis_tests.jsonl"


def tardis(prefix: str) -> list[str]:
    return [line for line in lines(TARDIS) if json.loads(line).get("topic", "").startswith(prefix)]


def captured(path: Path) -> list[dict[str, object]]:
    return [json.loads(text)["data"] for text in lines(path)]


# ---------------------------------------------------------------------------- pure parsing


def test_names_are_ours_with_the_venue_name_and_category_kept() -> None:
    assert f.market("BTC-USDT") == f.Market("BTC-USDT", "BTCUSDT", f.Kind.SPOT)
    assert f.market("ETH-USDC-SWAP") == f.Market("ETH-USDC-SWAP", "ETHUSDC", f.Kind.LINEAR)
    assert f.market("BTC-USDT-SWAP").topic == "publicTrade.BTCUSDT"
    for bad in ("BTCUSDT", "btc-usdt", "BTC-USDT-240927", "BTC--USDT"):
        with pytest.raises(ValueError, match="BASE-QUOTE"):
            f.market(bad)


def test_real_trade_pushes_decode_with_increasing_synthetic_ids() -> None:
    inverse, linear = tardis("publicTrade.")
    last: dict[str, int] = {}
    symbol, trades = f.decode_frame(inverse, {"BTCUSD": "BTC-USD-SWAP"}, last)  # type: ignore[misc]
    assert symbol == "BTC-USD-SWAP"
    t0 = 1_680_673_823_564  # the three trades share this fill time: ids t0 << 12, +1, +2
    assert trades == [WireTrade((t0 << 12) + k, 28560.5, size, Side.BUY, t0, "BTC-USD-SWAP")
                      for k, size in enumerate((5823.0, 3.0, 5593.0))]
    assert last == {"BTC-USD-SWAP": (t0 << 12) + 2} and f.id_time(trades[-1].tradeId) == t0
    symbol, trades = f.decode_frame(linear, {"LTCUSDT": "LTC-USDT-SWAP"}, last)  # type: ignore[misc]
    assert trades == [WireTrade(1_680_688_979_983 << 12, 94.53, 0.4, Side.BUY, 1_680_688_979_983, "LTC-USDT-SWAP")]
    # a later push in the same millisecond continues the count; an earlier fill time still gets a larger id
    assert f.next_id(t0, (t0 << 12) + 2) == (t0 << 12) + 3 and f.next_id(t0 - 5, (t0 << 12) + 3) == (t0 << 12) + 4
    # other topics are not trades; replies are replies
    assert f.decode_frame(tardis("orderbook.")[0], {"BTCUSDT": "BTC-USDT"}, last) is None
    assert f.decode_frame(tardis("tickers.")[0], {}, last) is None
    ack = '{"success":true,"ret_msg":"subscribe","conn_id":"2324d924","req_id":"10001","op":"subscribe"}'
    assert f.decode_frame(ack, {}, last) == f.Reply("subscribe", True, "subscribe", "10001")
    refused = '{"success":false,"ret_msg":"error:handler not found,topic:publicTrade.X","req_id":"7","op":"subscribe"}'
    assert f.decode_frame(refused, {}, last) == f.Reply("subscribe", False, refused.split('"')[5], "7")


GOOD = ('{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":2,'
        '"data":[{"T":1,"s":"BTCUSDT","S":"Sell","v":"0.5","p":"100.5","i":"9","BT":false}]}')


@pytest.mark.parametrize(("text", "kind"), [
    ("garbage", "not_json"),
    ("[1]", "not_object"),
    ('{"hello":1}', "unexpected_frame"),
    (GOOD.replace("BTCUSDT", "ETHUSDT"), "unknown_symbol"),
    (GOOD.replace('"Sell"', '"sell"'), "bad_trade"),
    (GOOD.replace('"0.5"', '"-0.5"'), "bad_trade"),
    (GOOD.replace('"100.5"', '"NaN"'), "bad_trade"),
    (GOOD.replace('"T":1', '"T":"x"'), "bad_trade"),
    (GOOD.replace('"s":"BTCUSDT"', '"s":"ETHUSDT"'), "bad_trade"),
    (GOOD.replace('[{"T":1,"s":"BTCUSDT","S":"Sell","v":"0.5","p":"100.5","i":"9","BT":false}]', "[]"), "bad_trade"),
])
def test_a_malformed_frame_raises_with_a_kind_to_count_and_leaves_the_ids_alone(text: str, kind: str) -> None:
    last = {"BTC-USDT": 5}
    with pytest.raises(MalformedMessageError) as caught:
        f.decode_frame(text, {"BTCUSDT": "BTC-USDT"}, last)
    assert caught.value.kind == kind and last == {"BTC-USDT": 5}
    symbol, [trade] = f.decode_frame(GOOD, {"BTCUSDT": "BTC-USDT"}, last)  # type: ignore[misc]
    assert trade == WireTrade(1 << 12, 100.5, 0.5, Side.SELL, 1, "BTC-USDT")


def test_rest_bodies_and_errors() -> None:
    body = {"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "symbol": "BTCUSDT", "list": [
        ["1670608920000", "17072", "17080", "17060", "17071", "12.5", "213412.1"],  # forming at server time
        ["1670608860000", "17055.5", "17073", "17027", "17072", "268611", "15.74462667"]]}, "time": 1}
    raw = json.dumps(body)
    [candle] = f.parse_klines(raw, "BTC-USDT", server_ms=1_670_608_950_000)
    assert candle == Candle("bybit", "BTC-USDT", Timeframe.M1, 1_670_608_860_000, 17055.5, 17073.0, 17027.0,
                            17072.0, 268611.0, 15.74462667)
    assert [c.open_time_ms for c in f.parse_klines(raw, "BTC-USDT")] == [1_670_608_860_000, 1_670_608_920_000]
    assert f.parse_server_time('{"retCode":0,"result":{"timeSecond":"1688639403",'
                               '"timeNano":"1688639403423213947"}}') == 1_688_639_403_423
    trades = f.parse_recent_trades(json.dumps({"retCode": 0, "result": {"list": [
        {"execId": "b", "price": "2", "size": "1", "side": "Sell", "time": "20"},
        {"execId": "a", "price": "1", "size": "3", "side": "Buy", "time": "10"}]}}))
    assert trades == [f.RestTrade(10, 1.0, 3.0, Side.BUY), f.RestTrade(20, 2.0, 1.0, Side.SELL)]
    listed = json.dumps({"retCode": 0, "result": {"list": [
        {"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "status": "Trading",
         "contractType": "LinearPerpetual"},
        {"symbol": "BTC-27DEC24", "baseCoin": "BTC", "quoteCoin": "USDC", "status": "Trading",
         "contractType": "LinearFutures"},
        {"symbol": "ETHUSDT", "baseCoin": "ETH", "quoteCoin": "USDT", "status": "Closed"}]}})
    assert f.parse_instruments(listed, f.Kind.LINEAR) == ["BTC-USDT-SWAP"]
    with pytest.raises(f.BybitRestError, match="10001"):
        f.parse_klines('{"retCode":10001,"retMsg":"params error","result":{}}', "BTC-USDT")
    with pytest.raises(TemporaryError, match="rate limited"):
        f.parse_server_time('{"retCode":10006,"retMsg":"Too many visits!","result":{}}')
    for raw in ("<html>", '{"result":{}}', '{"retCode":0,"result":{"list":[["x"]]}}'):
        with pytest.raises(MalformedMessageError):
            f.parse_klines(raw, "BTC-USDT")


def test_real_linear_tickers_and_liquidations_become_funding_open_interest_and_liquidations() -> None:
    ticker = next(t for t in tardis("tickers.BTCUSDT") if json.loads(t)["type"] == "snapshot")
    assert bybit_derivatives_frame(ticker) == [
        FundingRate("bybit", "BTC-USDT-SWAP", "BTCUSDT", 1_680_673_821_770, 0.0001, 1_680_681_600_000, None,
                    28552.81),
        OpenInterest("bybit", "BTC-USDT-SWAP", "BTCUSDT", 1_680_673_821_770, 52774.528)]
    [liq] = bybit_derivatives_frame(tardis("allLiquidation.")[0])  # type: ignore[misc]
    assert liq == Liquidation("bybit", "PIPPIN-USDT-SWAP", "PIPPINUSDT", 1_740_480_207_110, Side.BUY, 0.02456, 2846.0)
    assert bybit_derivatives_frame('{"success":true,"ret_msg":"pong","op":"ping"}') is None
    with pytest.raises(MalformedMessageError) as caught:
        bybit_derivatives_frame('{"success":false,"ret_msg":"error:handler not found","op":"subscribe"}')
    assert caught.value.kind == "refused"


# ---------------------------------------------------------------------------- against the replay


def bybit_stream(server: ReplayServer, symbols: list[str], sink: Sink, **options: float) -> BybitTradeStream:
    assert server.perp_ws_url is not None
    return BybitTradeStream({f.Kind.SPOT: server.ws_url, f.Kind.LINEAR: server.perp_ws_url}, symbols,
                            sink.on_trades, backoff_base=0.05, **options)  # type: ignore[arg-type]


def streaming(server: ReplayServer, symbols: list[str], **options: float
              ) -> contextlib.AbstractAsyncContextManager[tuple[BybitTradeStream, Sink]]:
    return binance_streaming(server, symbols, bybit_stream, **options)


def test_spot_and_linear_streams_deliver_every_tape_trade_once_in_order() -> None:
    expected = {SPOT: captured(SPOT_FRAMES), PERP: captured(USDM_FRAMES)}

    async def main() -> None:
        async with ReplayServer(tapes(), speed=0, protocol="bybit") as server:
            async with streaming(server, [SPOT, PERP]) as (stream, sink):
                await until(lambda: all(len(sink.trades.get(s, [])) >= len(rows) for s, rows in expected.items()),
                            60)
                assert stream.state == {SPOT: StreamState.SUBSCRIBED, PERP: StreamState.SUBSCRIBED}
        for symbol, rows in expected.items():
            got = sink.trades[symbol][:len(rows)]
            assert [(t.ts, t.px, t.sz, t.side) for t in got] == [
                (r["T"], float(r["p"]), float(r["q"]), Side.SELL if r["m"] else Side.BUY) for r in rows]  # type: ignore[arg-type]
            ids = [t.tradeId for t in got]
            assert ids == sorted(set(ids)) and all(f.id_time(t.tradeId) == t.ts for t in got)
        assert stream.stats.malformed == {} and stream.stats.connects == 2

    run(main, 90)


def test_the_replay_answers_requests_as_bybit_does() -> None:
    async def main() -> None:
        async with ReplayServer(tapes(), speed=0, protocol="bybit") as server:
            assert server.perp_ws_url is not None
            async with websockets.connect(server.perp_ws_url) as ws:
                await ws.send('{"req_id":"a","op":"subscribe","args":["publicTrade.BTCUSDT","tickers.BTCUSDT"]}')
                ack = json.loads(await ws.recv())
                assert ack["success"] is True and ack["req_id"] == "a" and ack["op"] == "subscribe"
                push = json.loads(await ws.recv())
                assert push["topic"] == "publicTrade.BTCUSDT" and push["type"] == "snapshot"
                first = push["data"][0]
                assert uuid.UUID(first["i"]) and first["L"] == "PlusTick" and first["S"] in ("Buy", "Sell")
                assert [d["T"] for d in push["data"]] == sorted(d["T"] for d in push["data"])
                await ws.send('{"req_id":"b","op":"ping"}')
                await ws.send('{"req_id":"c","op":"subscribe","args":["publicTrade.ETHUSDT"]}')
                replies = []
                while len(replies) < 2:
                    msg = json.loads(await ws.recv())
                    if "topic" not in msg:
                        replies.append(msg)
                assert replies[0]["ret_msg"] == "pong" and replies[0]["req_id"] == "b"
                assert replies[1]["success"] is False and "publicTrade.ETHUSDT" in replies[1]["ret_msg"]
            async with websockets.connect(server.ws_url) as ws:  # spot: numeric ids, at most 10 args
                await ws.send(json.dumps({"req_id": "s", "op": "subscribe", "args": ["tickers.BTCUSDT"] * 11}))
                assert json.loads(await ws.recv())["success"] is False
                await ws.send('{"req_id":"t","op":"subscribe","args":["publicTrade.BTCUSDT"]}')
                reply = json.loads(await ws.recv())
                assert (reply["success"], reply["ret_msg"], reply["req_id"]) == (True, "subscribe", "t")
                push = json.loads(await ws.recv())
                assert push["topic"] == "publicTrade.BTCUSDT" and push["data"][0]["i"].isdigit()
                assert "L" not in push["data"][0]
            async with aiohttp.ClientSession() as http:
                base = server.rest_url + "/v5/market"
                async with http.get(base + "/kline", params={"category": "spot", "symbol": "ETHUSDT",
                                                             "interval": "1"}) as r:
                    assert r.status == 200 and (await r.json())["retCode"] == 10001
                async with http.get(base + "/kline", params={"category": "linear", "symbol": "BTCUSDT",
                                                             "interval": "5"}) as r:
                    assert (await r.json())["retCode"] == 10001
                server.fail_rest(1)
                async with http.get(base + "/time") as r:
                    assert r.status == 429 and (await r.json())["retCode"] == 10006
                async with http.get(base + "/instruments-info", params={"category": "linear"}) as r:
                    assert [row["symbol"] for row in (await r.json())["result"]["list"]] == ["BTCUSDT"]

    run(main, 60)


def test_garbage_and_refused_subscriptions_are_counted_and_the_stream_goes_on() -> None:
    garbage = ("garbage", "[1]", GOOD, GOOD.replace('"Sell"', '"sell"'), "garbage")

    async def main() -> None:
        async with ReplayServer({SPOT: tapes()[SPOT]}, speed=0, protocol="bybit") as server:
            server.refuse_subscriptions = True
            async with streaming(server, [SPOT]) as (stream, sink):
                await until(lambda: stream.state[SPOT] is StreamState.REJECTED)
                assert [e["code"] for e in stream.stats.errors] == ["subscribe"]
                server.pause()
                server.refuse_subscriptions = False  # the client retries after its back-off (2 s)
                await until(lambda: stream.state[SPOT] is StreamState.SUBSCRIBED, 10)
                for text in garbage:
                    await server.send_raw(text)
                await until(lambda: sum(stream.stats.malformed.values()) == 4)
                assert stream.stats.malformed == {"not_json": 2, "not_object": 1, "bad_trade": 1}
                assert len(sink.trades[SPOT]) == 1  # GOOD: a well-formed trade of the subscribed market
                server.resume()
                await until(lambda: len(sink.trades.get(SPOT, [])) >= 1000, 30)

    run(main, 60)


def test_the_heartbeat_is_sent_a_silent_socket_is_dropped_and_a_lost_one_resubscribed() -> None:
    async def main() -> None:
        async with ReplayServer({SPOT: tapes()[SPOT]}, speed=1, protocol="bybit") as server:
            async with streaming(server, [SPOT], ping_after=0.4, pong_timeout=0.4) as (stream, sink):
                await until(lambda: stream.state[SPOT] is StreamState.SUBSCRIBED and server.stats.pings >= 2, 10)
                assert stream.stats.pings >= 2 and stream.stats.reconnects == 0  # pongs keep it alive
                server.stall(3.0)  # no pushes, no pong: dropped after ping_after + pong_timeout
                await until(lambda: stream.stats.reconnects >= 1, 10)
                await until(lambda: stream.state[SPOT] is StreamState.SUBSCRIBED, 10)
                before = len(sink.trades.get(SPOT, []))
                assert await server.drop_connections() == 1
                await until(lambda: stream.stats.connects >= 3 and stream.state[SPOT] is StreamState.SUBSCRIBED, 10)
                await until(lambda: len(sink.trades.get(SPOT, [])) > before + 5, 20)
        ids = [t.tradeId for t in sink.trades[SPOT]]
        assert ids == sorted(set(ids))  # the synthetic ids keep increasing across reconnects

    run(main, 60)


def test_rest_candles_and_a_stream_gap_from_the_replay_match_the_captured_frames() -> None:
    spot_expected = frame_candles(SPOT_FRAMES)
    perp = captured(USDM_FRAMES)

    async def main() -> None:
        async with ReplayServer(tapes(), speed=0, protocol="bybit") as server:
            async with streaming(server, [SPOT, PERP]) as (_, sink):
                await until(lambda: len(sink.trades.get(SPOT, [])) >= 19_904
                            and len(sink.trades.get(PERP, [])) >= 21_313, 60)
            await asyncio.sleep(0.3)  # after the tape the market clock moves on: the last minute is over
            rest = BybitRest(server.rest_url, requests_per_second=200)
            try:
                first, last = int(spot_expected.index[0]), int(spot_expected.index[-1])
                candles = await rest.minute_candles(SPOT, first, last + 60_000)
                assert_candles_match(candles, spot_expected, counts=False)  # Bybit klines carry no counts
                # A gap in the last 1 000 trades (what linear recent-trade reaches): the trades filled strictly
                # between the two ids' milliseconds, with ids between them.
                got_ids = sink.trades[PERP]
                lo, hi = got_ids[-900], got_ids[-200]
                trades, complete = await rest.trades_between(PERP, lo.tradeId, hi.tradeId)
                want = [r for r in perp if lo.ts < r["T"] < hi.ts]  # type: ignore[operator]
                assert complete and len(want) > 600
                assert [(t.ts, t.px, t.sz) for t in trades] == [(r["T"], float(r["p"]), float(r["q"]))  # type: ignore[arg-type]
                                                                for r in want]
                assert all(lo.tradeId < t.tradeId < hi.tradeId for t in trades)
                older = got_ids[-3000]  # beyond what REST still has: not complete
                _, complete = await rest.trades_between(PERP, older.tradeId, hi.tradeId)
                assert not complete
            finally:
                await rest.close()

    run(main, 90)


def test_replayed_bybit_spot_and_linear_collect_into_the_candles_of_the_captured_frames(pg_clean: str,
                                                                                       tmp_path: Path) -> None:
    assert_replayed_candles("bybit", pg_clean, tmp_path)


def test_the_collector_stores_bybit_funding_open_interest_and_liquidations(db_url: str) -> None:
    """The real linear ``tickers`` and ``allLiquidation`` frames, sent over the replay's linear socket."""
    ticker = next(t for t in tardis("tickers.BTCUSDT") if json.loads(t)["type"] == "snapshot")
    liquidation = tardis("allLiquidation.")[0].replace("PIPPINUSDT", "BTCUSDT")

    async def main() -> None:
        async with ReplayServer({PERP: tapes()[PERP]}, speed=1, protocol="bybit") as server:
            config = CollectorConfig(symbols=(PERP,), ws_url=server.ws_url, rest_url=server.rest_url,
                                     perp_ws_url=server.perp_ws_url, exchange="bybit", database_url=db_url,
                                     tick_s=0.1, flush_interval_s=0.05, health_interval_s=0.5,
                                     repair_ready_delay_s=0.2, store_trades=False, market_state=True)
            collector = Collector(config, InProcessBus())
            assert collector.state_stream is not None
            stop_ = asyncio.Event()
            task = asyncio.create_task(collector.run(stop_))
            await until(lambda: collector.state_stream.stats.connected and collector.state_stream.stats.frames >= 1,
                        20)
            for text in (ticker, liquidation, "garbage"):
                await server.send_raw(text)
            await until(lambda: collector.market_state.pending.stored >= 3, 20)  # type: ignore[union-attr]
            stop_.set()
            await asyncio.wait_for(task, 30)
            assert collector.state_stream.stats.malformed == {"not_json": 1}

    run(main, 60)
    engine = make_engine(db_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            assert [(r.rate, r.funding_time_ms, r.mark_price) for r in funding_rates(session, "bybit", PERP)] == [
                (0.0001, 1_680_681_600_000, 28552.81)]
            assert [r.contracts for r in open_interest(session, "bybit", PERP)] == [52774.528]
            assert [(r.side, r.price, r.size) for r in liquidations(session, "bybit", PERP)] == [
                (Side.BUY, 0.02456, 2846.0)]
    finally:
        engine.dispose()
