"""End to end: the replay server plays real OKX price action, the real collector builds and stores candles
and publishes them on Redis, the bot runtime trades on them; the result matches a hand computation."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select

from bot_manager.runtime import run_bots
from config.domain import Timeframe, datetime_to_ms
from config.settings import load_settings
from data.bus import RedisBus
from data.replay.server import ReplayServer
from data.replay.synth import synthesise_tape
from data.service import run_market_data
from database.engine import session_scope
from database.models import Bot, CandleRow, ComponentHealth, Fill, SignalRow
from database.repositories.market import get_candles
from strategies.registry import create_strategy
from tests.bot_manager.builders import BTC_1M, bot_config, hand_computed_fills, sessions_for

HISTORY_MINUTES = 1440
LIVE_MINUTES = 300


def _tape_source(tmp_path: Path) -> Path:
    """The first day + 300 minutes of the real candle fixture, as the replay's source candles."""
    path = tmp_path / "source.csv.gz"
    with gzip.open(BTC_1M, "rt", newline="") as src, gzip.open(path, "wt", newline="") as dst:
        rows = csv.reader(src)
        writer = csv.writer(dst)
        for i, row in enumerate(rows):
            if i > HISTORY_MINUTES + LIVE_MINUTES:
                break
            writer.writerow(row)
    return path


async def _run(db_url: str, redis_url: str, prefix: str, tmp_path: Path) -> None:
    tape = synthesise_tape(_tape_source(tmp_path))
    bots_dir = tmp_path / "bots"
    bots_dir.mkdir()
    (bots_dir / "replayed.json").write_text(json.dumps(bot_config(name="replayed")))
    settings = load_settings({"DATABASE_URL": db_url, "REDIS_URL": redis_url, "REDIS_PREFIX": prefix,
                              "BOTS_DIR": str(bots_dir), "SYMBOLS": "BTC-USDT", "TIMEFRAMES": "1m",
                              "STORE_RAW_TRADES": "false"})
    sessions = sessions_for(db_url)

    def stored() -> tuple[int, int | None]:
        with session_scope(sessions) as session:
            count, latest = session.execute(select(func.count(), func.max(CandleRow.open_time))).one()
            bot_last = session.scalar(select(Bot.last_candle_time))
        return int(count), (None if bot_last is None else datetime_to_ms(bot_last)) if latest else None

    def manager_ready() -> bool:
        with session_scope(sessions) as session:
            return session.get(ComponentHealth, "bot_manager") is not None

    stop = asyncio.Event()
    market_bus, bots_bus = RedisBus(redis_url, prefix=prefix), RedisBus(redis_url, prefix=prefix)
    bots = asyncio.create_task(run_bots(settings, bots_bus, stop, poll_interval=0.2))
    try:
        deadline = asyncio.get_running_loop().time() + 90
        while not await asyncio.to_thread(manager_ready):
            assert asyncio.get_running_loop().time() < deadline, "the bot manager did not start"
            await asyncio.sleep(0.05)
        # speed 0: the replay sends the tape as fast as the collector reads it (after a day of REST history)
        async with ReplayServer({"BTC-USDT": tape}, speed=0, history_ms=HISTORY_MINUTES * 60_000) as server:
            collector = asyncio.create_task(run_market_data(settings, market_bus, stop, ws_url=server.ws_url,
                                                            rest_url=server.rest_url))
            previous = None
            while True:  # until the replay has ended and the bot has caught up with the last stored candle
                await asyncio.sleep(1.5)
                now = await asyncio.to_thread(stored)
                if now == previous and now[0] > HISTORY_MINUTES + 100:
                    break
                previous = now
                assert asyncio.get_running_loop().time() < deadline, f"replay did not settle: {now}"
            stop.set()
            await asyncio.wait_for(collector, 30)
    finally:
        stop.set()
        await asyncio.wait_for(bots, 30)
        await market_bus.close()
        await bots_bus.close()
    sessions.kw["bind"].dispose()


def test_a_bot_on_the_replayed_market_trades_as_its_signals_fees_and_slippage_say(
        pg_clean: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    asyncio.run(_run(pg_clean, redis_url, redis_prefix, tmp_path))
    sessions = sessions_for(pg_clean)
    with session_scope(sessions) as session:
        candles = get_candles(session, "okx", "BTC-USDT", Timeframe.M1)
        bot = session.scalars(select(Bot)).one()
        first = session.scalar(select(func.min(SignalRow.candle_time)))
        signals = [(datetime_to_ms(t), k) for t, k in session.execute(
            select(SignalRow.candle_time, SignalRow.signal_type).order_by(SignalRow.candle_time))]
        fills = [tuple(f) for f in session.execute(select(Fill.side, Fill.quantity, Fill.price, Fill.fee,
                                                          Fill.realised_pnl).order_by(Fill.ts, Fill.id))]
    assert first is not None
    assert bot.last_candle_time is not None and datetime_to_ms(bot.last_candle_time) == candles[-1].open_time_ms
    frame = pd.DataFrame({"open_time": [c.open_time_ms for c in candles], "open": [c.open for c in candles],
                          "high": [c.high for c in candles], "low": [c.low for c in candles],
                          "close": [c.close for c in candles], "volume": [c.volume for c in candles]})
    codes = create_strategy("sma_cross", {"fast": 5, "slow": 20}).generate_signals(frame).tolist()
    detail_start = _first_processed_index(pg_clean, candles)
    expected_signals = [(candles[i].open_time_ms, "BUY" if codes[i] > 0 else "SELL")
                        for i in range(detail_start, len(candles)) if codes[i]]
    assert signals == expected_signals and len(signals) >= 6
    expected = hand_computed_fills(candles, codes, detail_start)
    assert fills == expected and len(fills) >= 4
    assert bot.balance == 10_000 + sum(f[4] for f in expected) - sum(f[3] for f in expected)


def _first_processed_index(url: str, candles: list) -> int:  # type: ignore[type-arg]
    from bot_manager.service import BotService

    curve = BotService(sessions_for(url)).bot_detail("replayed", equity_points=100_000).equity_curve
    times = [c.open_time_ms for c in candles]
    start = times.index(curve[0][0])
    assert [t for t, _ in curve] == times[start:]  # every candle from the first one processed, once
    return start


def test_a_backtest_of_the_replayed_period_makes_the_fills_the_paper_bot_made_live(
        pg_clean: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    """Same broker, same signals: the backtester over the stored candles reproduces the live bot's fills."""
    from decimal import Decimal

    from backtesting.data import candles_from_frame
    from backtesting.engine import run_bars
    from backtesting.runner import compute_signals
    from bot_manager.config import parse_bot_config

    asyncio.run(_run(pg_clean, redis_url, redis_prefix, tmp_path))
    sessions = sessions_for(pg_clean)
    with session_scope(sessions) as session:
        candles = get_candles(session, "okx", "BTC-USDT", Timeframe.M1)
        live = [(f.side, Decimal(f.quantity), Decimal(f.price), Decimal(f.fee), Decimal(f.realised_pnl),
                 datetime_to_ms(f.ts)) for f in session.scalars(select(Fill).order_by(Fill.ts, Fill.id))]
    frame = pd.DataFrame({"open_time": [c.open_time_ms for c in candles], "open": [c.open for c in candles],
                          "high": [c.high for c in candles], "low": [c.low for c in candles],
                          "close": [c.close for c in candles], "volume": [c.volume for c in candles]})
    config = parse_bot_config(bot_config(name="replayed"))
    strategy = create_strategy(config.strategy, config.params)
    data = candles_from_frame(frame)
    start = _first_processed_index(pg_clean, candles)
    run = run_bars(config, strategy, data, compute_signals(strategy, data), trade_start=start)
    backtest = [(str(f.side), Decimal(f.quantity), Decimal(f.price), Decimal(f.fee), Decimal(f.realised_pnl), f.ts_ms)
                for f in run.fills]
    assert len(live) >= 4
    assert backtest == live
