"""Arbitrage bots as bots: a JSON file in ``BOTS_DIR/arbitrage/``, synced into the bots table, run by the
ArbitrageRunner on the real recorded Binance book tops, recorded in the bot tables like every other bot, and
resumed from its stored state after a restart; then the whole runtime on the real Redis bus.

What is stored must be what the pure bot did (tests/bot_manager/test_arbitrage.py confirms every one of those
fills by hand): the same fills, one position row per leg and round trip, the summed balance and equity."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot_manager.arbitrage_config import load_arbitrage_folder, parse_arbitrage_config
from bot_manager.arbitrage_runner import ArbitrageRunner, sync_arbitrage_folder
from bot_manager.runtime import run_bots
from bot_manager.service import BotService
from config.errors import ConfigurationError
from config.settings import load_settings
from data import topics
from data.bus import RedisBus
from data.messages import book_to_message
from database.engine import make_engine, make_session_factory, session_scope
from database.models import Bot, BotEvent, EquitySnapshot, Position
from database.models import Fill as FillRow
from database.repositories import bots as repo
from tests.bot_manager.test_arbitrage import TOPS, run_bot
from tests.data.builders import ROOT

CONFIG = {
    "type": "arbitrage", "name": "basis", "quantity": "0.05", "entry_bps": 5.0, "exit_bps": 2.0, "latency_ms": 100,
    "legs": [{"exchange": "binance", "symbol": "BTC-USDT", "balance": "10000",
              "fees": {"maker_pct": 0.0, "taker_pct": 0.005}},
             {"exchange": "binance", "symbol": "BTC-USDT-SWAP", "balance": "10000",
              "fees": {"maker_pct": 0.0, "taker_pct": 0.005}}],
}


def bots_dir(tmp_path: Path, config: dict[str, object] = CONFIG) -> Path:
    (tmp_path / "arbitrage").mkdir(parents=True, exist_ok=True)
    (tmp_path / "arbitrage" / "basis.json").write_text(json.dumps(config))
    return tmp_path


def stored_fills(sessions) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    with session_scope(sessions) as session:
        bot = repo.get_bot(session, "basis")
        assert bot is not None
        return [(f.symbol, f.side, f.quantity, f.price, f.fee, f.realised_pnl, f.balance_after)
                for f in sorted(repo.fills(session, bot.id), key=lambda f: (f.ts, f.id))]


def expected_fills() -> list[tuple[object, ...]]:
    _, fills = run_bot()
    return [(lf.leg.symbol, lf.fill.side.value, lf.fill.quantity, lf.fill.price, lf.fill.fee,
             lf.fill.realised_pnl, lf.fill.balance_after) for lf in sorted(fills, key=lambda lf: lf.fill.ts_ms)]


def test_the_stored_bot_is_what_the_pure_bot_did_and_resumes_after_a_restart(pg_clean: str, tmp_path: Path) -> None:
    engine = make_engine(pg_clean)
    sessions = make_session_factory(engine)
    assert sync_arbitrage_folder(sessions, bots_dir(tmp_path)) == ["basis"]
    pure, pure_fills = run_bot()
    opened, closed_at = pure.decisions[0].ts_ms, pure.decisions[1].ts_ms
    cut = next(i for i, t in enumerate(TOPS) if t.ts_ms > opened + 1_000)  # both legs filled, trade still open
    assert TOPS[cut].ts_ms < closed_at
    runner = ArbitrageRunner(sessions)
    runner.start()
    published = [p for top in TOPS[:cut] for p in runner.on_top(top)]
    restarted = ArbitrageRunner(sessions)  # a new process: the bot comes back from its stored state, mid-trade
    restarted.start()
    assert restarted.loaded["basis"].bot.trade is not None
    published += [p for top in TOPS[cut:] for p in restarted.on_top(top)]

    assert stored_fills(sessions) == expected_fills() and len(pure_fills) >= 10
    assert sum(channel == topics.fills("basis") for channel, _ in published) == len(pure_fills)
    with session_scope(sessions) as session:
        bot = session.scalars(select(Bot).where(Bot.name == "basis")).one()
        assert (bot.strategy, bot.exchange, bot.symbol, bot.status) == ("arbitrage", "binance", "BTC-USDT", "running")
        assert Decimal(bot.balance) == sum((b.balance for b in pure.brokers), Decimal(0))
        assert Decimal(bot.fees_paid) == sum((b.fees_paid for b in pure.brokers), Decimal(0))
        assert Decimal(bot.starting_balance) == Decimal(20_000)
        positions = session.scalars(select(Position).where(Position.bot_id == bot.id)).all()
        closed = [p for p in positions if p.status == "closed"]
        assert len(closed) == 2 * pure.trades_closed  # one row per leg and round trip
        assert sum((Decimal(p.realised_pnl) for p in closed), Decimal(0)) == sum(
            (b.realised_pnl for b in pure.brokers), Decimal(0))
        assert {p.symbol for p in positions if p.status == "open"} == (
            {"BTC-USDT", "BTC-USDT-SWAP"} if pure.trade is not None else set())
        kinds = [e.kind for e in session.scalars(select(BotEvent).where(BotEvent.bot_id == bot.id))]
        assert kinds.count("arbitrage_open") == pure.trades_opened
        assert kinds.count("arbitrage_close") == pure.trades_closed
        snapshots = session.scalar(select(func.count()).select_from(EquitySnapshot)
                                   .where(EquitySnapshot.bot_id == bot.id))
        assert snapshots and snapshots <= len(pure_fills)
    detail = BotService(sessions).bot_detail("basis")  # what the dashboard's bot page reads
    assert len(detail.fills) == len(pure_fills) and detail.summary.strategy == "arbitrage"
    assert detail.summary.fees_paid == sum((b.fees_paid for b in pure.brokers), Decimal(0))
    engine.dispose()


def test_the_example_file_is_a_valid_arbitrage_bot() -> None:
    example = ROOT / "config" / "bots" / "arbitrage" / "_example_binance_basis.json"
    config = parse_arbitrage_config(json.loads(example.read_text()), str(example))
    runtime = config.to_runtime()
    assert runtime.fees is None and runtime.legs[1].symbol == "BTC-USDT-SWAP"  # the venues' own fee schedules


def test_a_bad_arbitrage_file_names_the_file_and_field_and_creates_nothing(pg_clean: str, tmp_path: Path) -> None:
    engine = make_engine(pg_clean)
    sessions = make_session_factory(engine)
    bad = {**CONFIG, "legs": [CONFIG["legs"][0], {**CONFIG["legs"][1], "balanse": "1"}]}  # type: ignore[index]
    folder = bots_dir(tmp_path, bad)
    with pytest.raises(ConfigurationError) as caught:
        sync_arbitrage_folder(sessions, folder)
    message = str(caught.value)
    assert "basis.json" in message and "legs.1.balanse" in message and "unknown key" in message
    same_market = {**CONFIG, "legs": [CONFIG["legs"][0], CONFIG["legs"][0]]}  # type: ignore[index]
    with pytest.raises(ConfigurationError, match="the two legs are the same market"):
        load_arbitrage_folder(bots_dir(tmp_path, same_market))
    with session_scope(sessions) as session:
        assert repo.list_bots(session) == []
    engine.dispose()


def test_the_runtime_trades_the_book_tops_of_the_real_redis_bus(pg_clean: str, tmp_path: Path, redis_url: str,
                                                               redis_prefix: str) -> None:
    settings = load_settings({"DATABASE_URL": pg_clean, "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix,
                              "BOTS_DIR": str(bots_dir(tmp_path))})
    engine = make_engine(pg_clean)
    sessions = make_session_factory(engine)
    first_round_trip = next(i for i, d in enumerate(run_bot()[0].decisions) if d.action == "close")
    close_ts = run_bot()[0].decisions[first_round_trip].ts_ms

    async def scenario() -> None:
        bus = RedisBus(redis_url, prefix=redis_prefix)
        stop = asyncio.Event()
        task = asyncio.create_task(run_bots(settings, bus, stop, poll_interval=0.2))
        try:
            for _ in range(100):  # the runner has loaded the bot (synced from the folder) and subscribed
                await asyncio.sleep(0.1)
                with session_scope(sessions) as session:
                    if repo.get_bot(session, "basis") is not None:
                        break
            await asyncio.sleep(1.0)
            for top in TOPS:
                if top.ts_ms > close_ts + 2_000:
                    break
                await bus.publish(topics.books(top.exchange, top.symbol), book_to_message(top))
            for _ in range(200):
                await asyncio.sleep(0.1)
                if len(stored_fills(sessions)) >= 4:
                    break
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
            await bus.close()

    asyncio.run(asyncio.wait_for(scenario(), 90))
    assert stored_fills(sessions)[:4] == expected_fills()[:4]  # the first round trip, both legs
    with session_scope(sessions) as session:
        assert session.scalar(select(func.count()).select_from(FillRow)) == 4
    engine.dispose()
