"""Several venues in one process: ``SYMBOLS=BTC-USDT,binance:BTC-USDT,binance:BTC-USDT-SWAP`` runs an OKX and a
Binance collector side by side (``run_venues``), on two real WebSocket servers (the OKX demo replay and the
Binance replay of the real 2024-08-08 tapes), into one database and one bus; each keeps its own health names."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from sqlalchemy import select

from config.domain import Timeframe
from config.settings import load_settings
from data.bus import InProcessBus
from data.replay.server import ReplayServer
from data.service import DEMO_HISTORY_MS, binance_depth, demo_tapes, run_venues
from database.engine import make_engine, make_session_factory, session_scope
from database.models import ComponentHealth
from database.repositories.market import count_candles
from tests.data.builders import ROOT
from tests.data.test_binance_replay import PERP, SPOT, tapes
from tests.data.test_client import run


def test_two_venues_run_in_one_process_into_one_database(db_url: str) -> None:
    async def scenario() -> None:
        okx = await ReplayServer(demo_tapes(["BTC-USDT"]), speed=0, history_ms=DEMO_HISTORY_MS).start()
        binance = await ReplayServer(tapes(), speed=30, protocol="binance", depth=binance_depth([SPOT, PERP])).start()
        settings = load_settings({
            "DATABASE_URL": db_url, "MARKET_SOURCE": "live", "SYMBOLS": f"BTC-USDT,binance:{SPOT},binance:{PERP}",
            "OKX_WS_URL": okx.ws_url, "OKX_REST_URL": okx.rest_url, "BINANCE_WS_URL": binance.ws_url,
            "BINANCE_REST_URL": binance.rest_url, "BINANCE_USDM_WS_URL": binance.usdm_ws_url,
            "BINANCE_USDM_REST_URL": binance.rest_url, "TIMEFRAMES": "1m,5m"})
        assert settings.venue_symbols() == {"okx": ("BTC-USDT",), "binance": (SPOT, PERP)}
        engine = make_engine(db_url)
        sessions = make_session_factory(engine)

        def counts() -> tuple[int, int, int]:
            with session_scope(sessions) as session:
                return tuple(count_candles(session, ex, sym, Timeframe.M1)  # type: ignore[return-value]
                             for ex, sym in (("okx", "BTC-USDT"), ("binance", SPOT), ("binance", PERP)))

        stop = asyncio.Event()
        seen: list[dict[str, object]] = []
        task = asyncio.create_task(run_venues(settings, InProcessBus(), stop, on_sources=seen.append))
        try:
            for _ in range(600):
                await asyncio.sleep(0.1)
                if min(counts()) >= 2:
                    break
            assert min(counts()) >= 2, counts()
            await asyncio.sleep(6)  # a health report of each
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await okx.close()
            await binance.close()
        assert [sorted(s) for s in seen] == [["binance", "okx"]]
        with session_scope(sessions) as session:
            components = set(session.scalars(select(ComponentHealth.component)))
        engine.dispose()
        assert {"writer", "bus", "writer.binance", "bus.binance", "books.binance", "market_state.binance",
                "collector.okx.BTC-USDT", f"collector.binance.{SPOT}", f"collector.binance.{PERP}"} <= components
    run(scenario, 120)


def test_a_bad_venue_prefix_and_command_line_urls_for_several_venues_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"PATH": "/usr/bin:/bin", "TCP_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)}
    bad = subprocess.run([sys.executable, "main.py", "collect", "--symbols", "kraken:BTC-USDT"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "a venue prefix must be one of okx, binance" in bad.stderr
    both = subprocess.run([sys.executable, "main.py", "collect", "--symbols", "BTC-USDT,binance:BTC-USDT",
                           "--ws-url", "ws://127.0.0.1:9/ws"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert both.returncode == 2 and both.stderr.strip().splitlines()[-1].startswith(
        "error: --ws-url: symbols of okx, binance: each venue takes its URLs from the settings")
