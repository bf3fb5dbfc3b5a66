"""Health reports never carry a stale error: once the writer is ``ok`` again after a real PostgreSQL
outage (a cut TCP proxy), ``last_error`` is empty and the outage's error is kept as ``previous_error``."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from data.bus import InProcessBus
from data.collector import Collector, CollectorConfig
from data.replay.server import ReplayServer
from database.migrate import upgrade
from tests.conftest import create_pg_database, drop_pg_database
from tests.data.builders import SHORT_TAPE, load
from tests.data.proxy import CuttableProxy
from tests.reliability.harness import SYMBOL, LoopThread, wait_until


def test_last_error_is_cleared_once_the_writer_is_ok_again(loop_thread: LoopThread) -> None:
    url = create_pg_database("tcp_rel_health")
    upgrade(url)
    target = urlsplit(url)
    stop = asyncio.Event()
    with CuttableProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        async def start() -> tuple[ReplayServer, Collector, asyncio.Task[None]]:
            server = await ReplayServer({SYMBOL: load(SHORT_TAPE)}, speed=20, loop=True).start()
            collector = Collector(CollectorConfig(
                symbols=(SYMBOL,), ws_url=server.ws_url, rest_url=server.rest_url, database_url=proxy.url_for(url),
                tick_s=0.1, flush_interval_s=0.05, health_interval_s=0.5, repair_ready_delay_s=0.2),
                InProcessBus())
            return server, collector, asyncio.create_task(collector.run(stop))

        server, collector, task = loop_thread.run(start())
        try:
            stats = collector.writer.stats
            wait_until(lambda: stats.candles_written > 0 and stats.trades_written > 0, 30, "first writes")
            proxy.cut()
            wait_until(lambda: not stats.db_ok, 30, "the writer to notice the outage")
            down = loop_thread.call(lambda: collector._health(1.0)["writer"])
            assert down[0] == "down" and down[1]["last_error"]
            proxy.restore()
            wait_until(lambda: stats.db_ok, 60, "the writer to be ok again")
            status, data = loop_thread.call(lambda: collector._health(1.0)["writer"])
            assert status == "ok"
            assert data["last_error"] is None
            # the outage's last error: each retry during the outage may word it differently ("server closed the
            # connection unexpectedly", then "connection to server ... failed: ..."), so the one sampled above may
            # not be the last one; it is the same kind of error, kept, and no longer the current one
            kind = down[1]["last_error"].split(")")[0] + ")"
            assert kind == "(psycopg2.OperationalError)"
            assert data["previous_error"].startswith(kind) and "server" in data["previous_error"]
        finally:
            async def close() -> None:
                stop.set()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 20)
                await server.close()
            loop_thread.run(close(), 40)
    drop_pg_database(url)
