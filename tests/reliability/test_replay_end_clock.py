"""The last minute of a fast replay closes on market time: the collector's clock follows the exchange's
time (REST ``public/time``, proved current by a ``pong`` after it), not only wall time since the last
trade (at 1x that took up to a minute of wall time after the tape's last trade)."""

from __future__ import annotations

import asyncio
import contextlib

from config.domain import Timeframe
from data.bus import InProcessBus
from data.collector import Collector, CollectorConfig
from data.replay.server import ReplayServer
from data.replay.tape import Tape
from database.engine import make_engine, make_session_factory, session_scope
from database.migrate import upgrade
from database.repositories.market import latest_candle_time_ms
from tests.conftest import create_pg_database, drop_pg_database
from tests.data.builders import SHORT_TAPE, load
from tests.reliability.harness import SYMBOL, LoopThread, wait_until


def test_the_last_minute_of_a_fast_replay_closes_on_market_time(loop_thread: LoopThread) -> None:
    full = load(SHORT_TAPE)
    # Cut the real tape 3 s into a minute: at wall pace that minute would only close 59 s later.
    cut = full.first_ts - full.first_ts % 60_000 + 2 * 60_000 + 3_000
    keep = full.ts_ms < cut
    tape = Tape(full.trade_id[keep], full.ts_ms[keep], full.price[keep], full.size[keep], full.is_buy[keep])
    last_minute = tape.last_ts - tape.last_ts % 60_000
    assert tape.last_ts - last_minute <= 3_000
    url = create_pg_database("tcp_rel_end_clock")
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    stop = asyncio.Event()

    async def start() -> tuple[ReplayServer, Collector, asyncio.Task[None]]:
        server = await ReplayServer({SYMBOL: tape}, speed=60, passes=1).start()
        collector = Collector(CollectorConfig(
            symbols=(SYMBOL,), ws_url=server.ws_url, rest_url=server.rest_url, database_url=url, tick_s=0.1,
            flush_interval_s=0.05, repair_ready_delay_s=0.2), InProcessBus())  # default ping 5 s, pong 10 s
        return server, collector, asyncio.create_task(collector.run(stop))

    def stored_last() -> int:
        with session_scope(sessions) as session:
            return latest_candle_time_ms(session, "okx", SYMBOL, Timeframe.M1) or 0

    server, collector, task = loop_thread.run(start())
    try:
        wait_until(lambda: loop_thread.call(lambda: server.position(SYMBOL)) >= len(tape), 60,
                   "the tape's last trade sent")
        # 60x: the market passes the last minute's end plus the 2 s grace within about a second (the
        # collector pings after 1 s of quiet); at wall pace it would take 59 s.
        wait_until(lambda: stored_last() >= last_minute, 20, "the tape's last minute to be stored")
    finally:
        async def close() -> None:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 20)
            await server.close()
        loop_thread.run(close(), 40)
        engine.dispose()
        drop_pg_database(url)
