"""Funding rates, open interest and liquidations collected end to end (issue 14.3): the collector subscribes the
venue's channels on a real WebSocket server, stores what arrives in its tables and publishes it on the bus.

* OKX: the replay serves ``funding-rate`` for BTC-USDT-SWAP from the real recorded settlement history of the
  fortnight (data/samples/README.md); every stored rate must be the recording's rate of its settlement, read
  here with the csv module.
* Binance USDⓈ-M: the real ``markPriceUpdate`` and ``forceOrder`` frames recorded by tardis.dev
  (tests/fixtures/README.md) are pushed over the replay's socket; what is stored must be their fields."""

from __future__ import annotations

import asyncio
import csv
import json

from config.domain import FundingRate, Liquidation, Side
from data import topics
from data.bus import InProcessBus
from data.collector import Collector, CollectorConfig
from data.messages import derivative_from_message
from data.replay.server import ReplayServer
from data.replay.synth import synthesise_tape
from data.service import DEMO_CANDLES, DEMO_FUNDING, DEMO_HISTORY_MS, demo_funding
from database.engine import make_engine, make_session_factory, session_scope
from database.repositories.derivatives import funding_rates, funding_settlements, liquidations
from tests.data.builders import FIXTURES
from tests.data.test_binance_replay import PERP, tapes
from tests.data.test_client import run, until

SWAP = "BTC-USDT-SWAP"


def recorded_settlements() -> dict[int, float]:
    with DEMO_FUNDING[SWAP].open(newline="") as f:
        return {int(r["ts_ms"]): float(r["funding_rate"]) for r in csv.DictReader(f)}


def test_okx_funding_rates_from_the_replay_are_the_recorded_settlements(db_url: str) -> None:
    async def scenario() -> None:
        tape = synthesise_tape(DEMO_CANDLES, seed=17, size_decimals=2, first_trade_id=4_000_000_000)
        server = await ReplayServer({SWAP: tape}, speed=0, history_ms=DEMO_HISTORY_MS,
                                    funding=demo_funding([SWAP])).start()
        server.funding_interval_s = 600.0  # a push every 10 market minutes: many periods in a few seconds
        bus = InProcessBus()
        sub = await bus.subscribe(topics.market_state(topics.FUNDING, "okx", "*"))
        collector = Collector(CollectorConfig(
            symbols=(SWAP,), ws_url=server.ws_url, rest_url=server.rest_url, database_url=db_url, tick_s=0.1,
            flush_interval_s=0.05, health_interval_s=0.5, repair_ready_delay_s=0.2, store_trades=False,
            market_state=True), bus)
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        try:
            seen: set[int] = set()
            while len(seen) < 3:
                item = await sub.get(timeout=30)
                assert item is not None, "no funding rate on the bus"
                message = derivative_from_message(item[1])
                assert isinstance(message, FundingRate) and message.symbol == SWAP
                seen.add(message.funding_time_ms)
            keeper = collector.market_state
            assert keeper is not None
            await until(lambda: keeper.pending.stored >= 3 and not keeper.pending.items, 20)
            status, health = collector._health(1.0)["market_state"]
            assert status == "ok" and health["malformed_frames"] == {} and health["received"]["funding"] >= 3
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await server.close()
        engine = make_engine(db_url)
        recorded = recorded_settlements()
        with session_scope(make_session_factory(engine)) as session:
            stored = funding_rates(session, "okx", SWAP)
            settled = funding_settlements(session, "okx", SWAP)
        engine.dispose()
        assert len({r.funding_time_ms for r in stored}) >= 3
        for r in stored:  # each report names a recorded settlement and carries its rate
            assert r.rate == recorded[r.funding_time_ms] and r.ts_ms < r.funding_time_ms
        assert settled and all(recorded[t] == rate for t, rate in settled)
    run(scenario, 90)


def test_binance_mark_price_and_force_orders_are_stored_and_published(db_url: str) -> None:
    frames = [line for line in (FIXTURES / "binance_bybit_ws_messages_tardis_tests.jsonl").read_text().splitlines()
              if '"markPriceUpdate"' in line or '"forceOrder"' in line]
    expected_marks = [json.loads(f)["data"] for f in frames if '"markPriceUpdate"' in f]
    expected_forced = [json.loads(f)["data"]["o"] for f in frames if '"forceOrder"' in f]
    assert expected_marks and expected_forced

    async def scenario() -> None:
        server = await ReplayServer({PERP: tapes()[PERP]}, speed=30, protocol="binance").start()
        bus = InProcessBus()
        sub = await bus.subscribe(topics.market_state(topics.LIQUIDATIONS, "binance", "*"))
        collector = Collector(CollectorConfig(
            symbols=(PERP,), ws_url=server.ws_url, rest_url=server.rest_url, perp_ws_url=server.usdm_ws_url,
            perp_rest_url=server.rest_url, exchange="binance", database_url=db_url, tick_s=0.1,
            flush_interval_s=0.05, health_interval_s=0.5, repair_ready_delay_s=0.2, store_trades=False,
            market_state=True), bus)
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        try:
            stream = collector.state_stream
            assert stream is not None
            await until(lambda: stream.stats.connected and stream.stats.frames >= 1, 20)  # the SUBSCRIBE reply
            for frame in frames:
                await server.send_raw(frame)
            await server.send_raw('{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","s":"BTCUSDT"}}')
            item = await sub.get(timeout=20)
            assert item is not None and item[0] == topics.market_state(topics.LIQUIDATIONS, "binance", PERP)
            keeper = collector.market_state
            assert keeper is not None
            await until(lambda: keeper.pending.stored >= len(frames), 20)
            assert stream.stats.malformed == {"bad_markPriceUpdate": 1}
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await server.close()
        engine = make_engine(db_url)
        with session_scope(make_session_factory(engine)) as session:
            marks = funding_rates(session, "binance", PERP)
            forced = liquidations(session, "binance", PERP)
        engine.dispose()
        usdt = [m for m in expected_marks if m["s"] == "BTCUSDT"]
        assert [(m.ts_ms, m.rate, m.funding_time_ms, m.mark_price) for m in marks] == [
            (m["E"], float(m["r"]), m["T"], float(m["p"])) for m in sorted(usdt, key=lambda m: m["E"])]
        assert forced == [Liquidation("binance", PERP, "BTCUSDT", o["T"], Side(o["S"].lower()),
                                      float(o["ap"]), float(o["q"])) for o in expected_forced]
    run(scenario, 90)
