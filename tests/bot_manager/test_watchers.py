"""Signal watchers: the file, and signals of a replay run in the signals table and on the real Redis."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from bot_manager.signal_engine import SignalEngineService
from bot_manager.watchers import build_signal_engine, load_watchers
from config.domain import Timeframe, datetime_to_ms
from config.errors import ConfigurationError
from config.settings import load_settings
from data import topics
from data.bus import RedisBus
from data.replay.server import ReplayServer
from data.replay.synth import synthesise_tape
from data.service import run_market_data
from database.engine import make_engine, make_session_factory, session_scope
from database.models import CandleRow, SignalRow
from database.repositories.market import get_candles
from strategies.registry import create_strategy
from tests.bot_manager.builders import BTC_1M

SOURCE = "watch:sma_cross:BTC-USDT:1m"


def _write(folder: Path, payload: object) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "_signals.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return path


def test_watchers_are_read_from_the_bots_folder(tmp_path: Path) -> None:
    assert load_watchers(tmp_path) == []
    _write(tmp_path, {"watchers": [{"strategy": "sma_cross", "params": {"fast": 3, "slow": 8},
                                    "symbol": "BTC-USDT", "timeframe": "1m"}]})
    (watcher,) = load_watchers(tmp_path)
    assert (watcher.source, watcher.exchange, watcher.timeframe) == (SOURCE, "okx", Timeframe.M1)


@pytest.mark.parametrize(("payload", "field", "reason"), [
    ({"watchers": [{"strategy": "sma_crossing", "symbol": "X", "timeframe": "1m"}]}, "watchers.0.", "sma_cross"),
    ({"watchers": [{"strategy": "sma_cross", "params": {"fsat": 3}, "symbol": "X", "timeframe": "1m"}]},
     "watchers.0.", "fast"),
    ({"watchers": [{"strategy": "sma_cross", "symbol": "X", "timeframe": "7m"}]}, "watchers.0.timeframe", "1m"),
    ({"watchers": [], "extra": 1}, "extra", "xtra"),
    ("{not json", None, "not valid JSON"),
])
def test_a_bad_watcher_file_names_the_file_the_field_and_the_reason(tmp_path: Path, payload: object,
                                                                    field: str | None, reason: str) -> None:
    path = _write(tmp_path, payload)
    with pytest.raises(ConfigurationError) as info:
        load_watchers(tmp_path)
    assert info.value.source == str(path)
    assert reason in str(info.value)
    if field is not None:
        assert (info.value.field or "").startswith(field)


def _source_candles(tmp_path: Path, minutes: int) -> Path:
    path = tmp_path / "source.csv.gz"
    with gzip.open(BTC_1M, "rt", newline="") as src, gzip.open(path, "wt", newline="") as dst:
        writer = csv.writer(dst)
        for i, row in enumerate(csv.reader(src)):
            if i > minutes:
                break
            writer.writerow(row)
    return path


async def _replay_with_watcher(db_url: str, redis_url: str, prefix: str, tmp_path: Path) -> list[tuple[int, str]]:
    tape = synthesise_tape(_source_candles(tmp_path, 1440 + 240))
    settings = load_settings({"DATABASE_URL": db_url, "REDIS_URL": redis_url, "REDIS_PREFIX": prefix,
                              "SYMBOLS": "BTC-USDT", "TIMEFRAMES": "1m", "STORE_RAW_TRADES": "false"})
    _write(tmp_path / "bots", {"watchers": [{"strategy": "sma_cross", "params": {"fast": 3, "slow": 8},
                                             "symbol": "BTC-USDT", "timeframe": "1m"}]})
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    stop = asyncio.Event()
    market_bus, engine_bus, listener_bus = (RedisBus(redis_url, prefix=prefix) for _ in range(3))
    on_redis: list[tuple[int, str]] = []
    listener = await listener_bus.subscribe(topics.signals("okx", "BTC-USDT", Timeframe.M1))
    service = SignalEngineService(build_signal_engine(load_watchers(tmp_path / "bots")), sessions,
                                  health_interval=1.0)
    engine_task = asyncio.create_task(service.run(engine_bus, stop))

    def stored() -> int:
        with session_scope(sessions) as session:
            return int(session.scalar(select(func.count()).select_from(CandleRow)) or 0)

    try:
        await asyncio.wait_for(service.ready.wait(), 30)
        async with ReplayServer({"BTC-USDT": tape}, speed=0, history_ms=1440 * 60_000) as server:
            collector = asyncio.create_task(run_market_data(settings, market_bus, stop, ws_url=server.ws_url,
                                                            rest_url=server.rest_url))
            deadline = asyncio.get_running_loop().time() + 90
            previous = -1
            while True:
                await asyncio.sleep(1.5)
                count = await asyncio.to_thread(stored)
                if count == previous and count > 1440 + 100:
                    break
                previous = count
                assert asyncio.get_running_loop().time() < deadline, f"replay did not settle at {count} candles"
            await asyncio.sleep(1.0)  # the engine handles the last candles
            while (item := await listener.get(timeout=0.5)) is not None:
                on_redis.append((item[1]["candle_time_ms"], item[1]["signal_type"]))
            stop.set()
            await asyncio.wait_for(collector, 30)
    finally:
        stop.set()
        await asyncio.wait_for(engine_task, 30)
        for bus in (market_bus, engine_bus, listener_bus):
            await bus.close()
        engine.dispose()
    return on_redis


def test_signals_of_a_replay_run_are_in_the_signals_table_and_on_the_real_redis(
        pg_clean: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    on_redis = asyncio.run(_replay_with_watcher(pg_clean, redis_url, redis_prefix, tmp_path))
    engine = make_engine(pg_clean)
    with session_scope(make_session_factory(engine)) as session:
        in_db = [(datetime_to_ms(t), k) for t, k in session.execute(
            select(SignalRow.candle_time, SignalRow.signal_type).where(SignalRow.source == SOURCE)
            .order_by(SignalRow.candle_time))]
        candles = get_candles(session, "okx", "BTC-USDT", Timeframe.M1)
    engine.dispose()
    frame = pd.DataFrame({"open_time": [c.open_time_ms for c in candles], "open": [c.open for c in candles],
                          "high": [c.high for c in candles], "low": [c.low for c in candles],
                          "close": [c.close for c in candles], "volume": [c.volume for c in candles]})
    codes = create_strategy("sma_cross", {"fast": 3, "slow": 8}).generate_signals(frame)
    vectorised = {c.open_time_ms: ("BUY" if code > 0 else "SELL")
                  for c, code in zip(candles, codes, strict=True) if code}
    assert len(in_db) >= 20, in_db
    # every stored signal is the vectorised verdict on the stored candles, and Redis carried the same ones
    assert all(vectorised.get(t) == kind for t, kind in in_db), [x for x in in_db if vectorised.get(x[0]) != x[1]]
    assert sorted(on_redis) == in_db
    # and the live candles (after the first day of history) produced every vectorised signal
    first_live = candles[0].open_time_ms + 1440 * 60_000
    assert [x for x in in_db if x[0] >= first_live] == sorted((t, k) for t, k in vectorised.items() if t >= first_live)
