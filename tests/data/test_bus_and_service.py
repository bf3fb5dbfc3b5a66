"""The collector in-process: closed candles on the real Redis once and in order; the bundled replay
as the market source; ``backfill`` against REST."""

from __future__ import annotations

import asyncio
from pathlib import Path

from config.domain import DEFAULT_TIMEFRAMES, Timeframe
from config.settings import load_settings
from data import topics
from data.backfill import backfill_range
from data.bus import RedisBus
from data.messages import candle_from_message
from data.okx.rest import OkxRest
from data.replay.server import ReplayServer
from data.service import resolve_market_source, run_market_data
from database.engine import make_engine
from tests.data.builders import SHORT_TAPE, SYMBOL, assert_candles_match, expected_candles, load
from tests.data.processes import stored_candles

DAY = 86_400_000


def test_a_redis_subscriber_receives_each_closed_candle_once_and_in_order(
        pg_clean: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    tape = load(SHORT_TAPE)
    last_day = tape.last_ts - tape.last_ts % DAY
    settings = load_settings({"DATABASE_URL": pg_clean, "TCP_DATA_DIR": str(tmp_path)})
    received: list[tuple[str, dict[str, object]]] = []

    async def main() -> None:
        bus = RedisBus(redis_url, prefix=redis_prefix)
        listener = RedisBus(redis_url, prefix=redis_prefix)
        subscription = await listener.subscribe(topics.pattern(topics.CANDLES))
        async with ReplayServer({SYMBOL: tape}, speed=0, passes=2) as server:
            stop = asyncio.Event()
            collector = asyncio.create_task(run_market_data(settings, bus, stop, symbols=[SYMBOL],
                                                            ws_url=server.ws_url, rest_url=server.rest_url))
            while not any(m["timeframe"] == "1d" and m["open_time_ms"] == last_day for _, m in received):
                message = await subscription.get(timeout=30)
                assert message is not None, "no candle within 30 s"
                received.append(message)
            stop.set()
            await collector
        while (message := await subscription.get(timeout=0.5)) is not None:
            received.append(message)
        await subscription.close()
        await listener.close()
        await bus.close()

    asyncio.run(asyncio.wait_for(main(), 90))
    by_channel: dict[str, list[int]] = {}
    for channel, message in received:
        by_channel.setdefault(channel, []).append(int(message["open_time_ms"]))  # type: ignore[arg-type]
    for tf in DEFAULT_TIMEFRAMES:
        times = by_channel[topics.candles("okx", SYMBOL, tf)]
        assert times == sorted(set(times)), f"{tf}: duplicates or out of order"
        stored = [c.open_time_ms for c in stored_candles(pg_clean, tf)]
        assert times == stored  # every stored candle published once, and only those
    first_pass = [candle_from_message(m) for channel, m in received
                  if channel == topics.candles("okx", SYMBOL, "5m") and int(m["open_time_ms"]) < last_day + DAY]
    assert_candles_match(first_pass, expected_candles(tape, Timeframe.M5))


def test_auto_falls_back_to_the_bundled_replay_when_okx_is_unreachable(tmp_path: Path) -> None:
    settings = load_settings({"OKX_REST_URL": "http://127.0.0.1:9", "REPLAY_PORT": "0", "REPLAY_SPEED": "60",
                              "TCP_DATA_DIR": str(tmp_path), "SYMBOLS": "BTC-USDT,ETH-USDT"})

    async def main() -> None:
        source = await resolve_market_source(settings)
        try:
            assert source.kind == "replay" and source.server is not None
            assert set(source.server.feeds) == {"BTC-USDT", "ETH-USDT"}
            rest = OkxRest(source.rest_url)
            # The demo market opens a day into its tape: a day of history is on REST at once.
            for symbol in ("BTC-USDT", "ETH-USDT"):
                now = source.server.market_ms(symbol)
                history = await rest.minute_candles(symbol, now - 3_600_000, now)
                assert len(history) >= 55
            await rest.close()
        finally:
            await source.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_backfill_fetches_pages_through_rate_limits_and_rolls_up(db_url: str) -> None:
    tape = load(SHORT_TAPE)
    start = tape.first_ts - tape.first_ts % DAY
    end = tape.last_ts - tape.last_ts % 60_000  # the tape's last minute is still forming

    async def main() -> None:
        async with ReplayServer({SYMBOL: tape}, speed=0, history_ms=10 * DAY) as server:
            server.fail_rest(2)  # two "50011 Too Many Requests" first
            rest = OkxRest(server.rest_url, retry_base=0.01)
            engine = make_engine(db_url)
            written = await backfill_range(rest, engine, SYMBOL, start, end, DEFAULT_TIMEFRAMES)
            engine.dispose()
            await rest.close()
            assert written[Timeframe.M1] == len(expected_candles(tape, Timeframe.M1)) - 1  # last one forming

    asyncio.run(asyncio.wait_for(main(), 60))
    expected_1m = expected_candles(tape, Timeframe.M1).iloc[:-1]
    assert_candles_match(stored_candles(db_url, Timeframe.M1), expected_1m, counts=False)
    five = expected_candles(tape, Timeframe.M5)
    assert_candles_match(stored_candles(db_url, Timeframe.M5), five[five.index + 300_000 <= end], counts=False)
