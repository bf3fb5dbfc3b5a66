"""The bot manager on a real database: kill switches recorded, control from the service, catch-up."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from bot_manager.config import PortfolioConfig
from bot_manager.manager import BotManager
from bot_manager.service import BotService
from config.domain import Candle, Timeframe, datetime_to_ms
from data import messages, topics
from data.bus import RedisBus
from database.engine import session_scope
from database.models import Bot, BotEvent, ComponentHealth, Fill
from tests.bot_manager.builders import bot_config, load_candles, sessions_for, store_candles

MIN = 60_000
T0 = 1_767_225_600_000


def flat_candles(prices: list[float], start: int = T0) -> list[Candle]:
    return [Candle("okx", "BTC-USDT", Timeframe.M1, start + i * MIN, p, p, p, p, 1.0) for i, p in enumerate(prices)]


def all_in(name: str, **risk: object) -> dict[str, object]:
    """SMA 2/3 (BUY on the first rise after a flat line), 100% of equity per entry."""
    return bot_config(name=name, params={"fast": 2, "slow": 3}, price_tick="0.01",
                      sizing={"method": "equity_fraction", "fraction_pct": 100},
                      risk={"max_exposure_pct": 100, **risk})


def test_the_kill_switch_halts_the_bot_closes_its_position_and_stores_why(db_url: str) -> None:
    sessions = sessions_for(db_url)
    history = flat_candles([100.0] * 10)
    store_candles(sessions, history)
    BotService(sessions).create_bot(all_in("killer", max_drawdown_pct=30), start=True)
    manager = BotManager(sessions)
    manager.start()
    published = []
    for candle in flat_candles([101.0, 101.0, 60.0, 60.0, 70.0, 70.0], start=T0 + 10 * MIN):
        store_candles(sessions, [candle])
        published += manager.on_candle(candle)
    with session_scope(sessions) as session:
        bot = session.scalars(select(Bot)).one()
        events = session.scalars(select(BotEvent).where(BotEvent.kind == "halted")).all()
        fills = session.scalars(select(Fill).order_by(Fill.ts)).all()
    assert bot.status == "halted" and bot.status_reason is not None
    assert "kill switch: drawdown" in bot.status_reason and "30.0% limit" in bot.status_reason
    assert [e.message for e in events] == [bot.status_reason]
    assert [(f.side, f.reason) for f in fills] == [("buy", "signal BUY"), ("sell", "kill_switch")]
    assert fills[1].position_after == 0 and bot.state["broker"]["quantity"] == "0"
    assert ("bot_events.killer", "halted") in [(ch, m.get("kind")) for ch, m in published]
    assert bot.last_candle_time is not None and manager.bots["killer"].fed is False  # flat and halted: idle


def test_the_portfolio_kill_switch_halts_every_bot(db_url: str) -> None:
    sessions = sessions_for(db_url)
    store_candles(sessions, flat_candles([100.0] * 10))
    service = BotService(sessions)
    service.create_bot(all_in("all_in"), start=True)
    service.create_bot(bot_config(name="small", params={"fast": 2, "slow": 3}), start=True)
    manager = BotManager(sessions, PortfolioConfig(max_drawdown_pct=15))
    manager.start()
    for candle in flat_candles([101.0, 101.0, 70.0, 70.0], start=T0 + 10 * MIN):
        store_candles(sessions, [candle])
        manager.on_candle(candle)
    statuses = {b.name: (b.status, b.status_reason) for b in service.list_bots()}
    assert {name: status for name, (status, _) in statuses.items()} == {"all_in": "halted", "small": "halted"}
    assert all(reason is not None and reason.startswith("portfolio kill switch") for _, reason in statuses.values())


def test_a_restarted_manager_catches_up_on_stored_candles_exactly_once(pg_clean: str) -> None:
    candles = load_candles(700)
    sessions = sessions_for(pg_clean)
    store_candles(sessions, candles[:300])
    BotService(sessions).create_bot(bot_config(name="steady"), start=True)
    first = BotManager(sessions)
    first.start()
    for candle in candles[300:500]:
        store_candles(sessions, [candle])
        first.on_candle(candle)
    store_candles(sessions, candles[500:700])  # stored while no manager runs
    second = BotManager(sessions)
    second.start()
    assert second.bots["steady"].last_ms == candles[-1].open_time_ms
    for candle in candles[450:700]:  # the bus repeats candles it already processed: ignored
        assert second.on_candle(candle) == []
    with session_scope(sessions) as session:
        bot = session.scalars(select(Bot)).one()
        snapshots = BotService(sessions).bot_detail("steady", equity_points=10_000).equity_curve
    assert [t for t, _ in snapshots] == [c.open_time_ms for c in candles[300:700]]
    assert bot.last_candle_time is not None


async def _control_session(db_url: str, redis_url: str, prefix: str, bots_dir: Path) -> None:
    from bot_manager.runtime import run_bots
    from config.settings import load_settings

    sessions = sessions_for(db_url)
    candles = load_candles(420)
    store_candles(sessions, candles[:300])
    service = BotService(sessions)
    service.create_bot(bot_config(name="controlled"), start=False)
    settings = load_settings({"DATABASE_URL": db_url, "REDIS_URL": redis_url, "REDIS_PREFIX": prefix,
                              "BOTS_DIR": str(bots_dir)})
    bus, listener = RedisBus(redis_url, prefix=prefix), RedisBus(redis_url, prefix=prefix)
    events = await listener.subscribe(topics.all_of(topics.BOT_EVENTS))
    stop = asyncio.Event()
    task = asyncio.create_task(run_bots(settings, bus, stop, poll_interval=0.1))

    async def expect(kind: str, text: str) -> None:
        while True:
            item = await events.get(timeout=10)
            assert item is not None, f"no {kind} event mentioning {text!r}"
            if item[1]["kind"] == kind and text in item[1]["message"]:
                return

    async def feed(batch: list[Candle]) -> None:
        for candle in batch:
            await asyncio.to_thread(store_candles, sessions, [candle])
            await bus.publish(topics.candles("okx", "BTC-USDT", "1m"), messages.candle_to_message(candle))

    def last_ms() -> int | None:
        return service.list_bots()[0].last_candle_time_ms

    def ready() -> bool:
        with session_scope(sessions) as session:
            return session.get(ComponentHealth, "bot_manager") is not None

    try:
        for _ in range(200):
            if await asyncio.to_thread(ready):
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(service.start, "controlled")  # as the dashboard would, from anywhere
        await expect("loaded", "running")
        await feed(candles[300:340])
        await asyncio.sleep(0.5)
        assert last_ms() == candles[339].open_time_ms
        await asyncio.to_thread(service.pause, "controlled")
        await expect("status", "paused")
        await feed(candles[340:360])
        await asyncio.sleep(0.5)
        assert last_ms() == candles[359].open_time_ms  # paused bots still follow the market
        await asyncio.to_thread(service.stop, "controlled")
        await expect("unloaded", "stopped")
        await feed(candles[360:380])
        await asyncio.sleep(0.5)
        assert last_ms() == candles[359].open_time_ms  # stopped: untouched
        await asyncio.to_thread(service.start, "controlled")
        await expect("loaded", "running")
        assert last_ms() == candles[379].open_time_ms  # restarted from the newest candle, no trading the past
        await asyncio.to_thread(service.delete, "controlled")
        await expect("unloaded", "deleted")
        await feed(candles[380:420])
        assert service.list_bots() == []
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await events.close()
        await bus.close()
        await listener.close()


def test_the_service_controls_a_running_manager_through_the_database(
        pg_clean: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    asyncio.run(_control_session(pg_clean, redis_url, redis_prefix, tmp_path))


def test_a_halted_bot_resumed_by_the_service_trades_again_from_its_current_equity(db_url: str) -> None:
    sessions = sessions_for(db_url)
    store_candles(sessions, flat_candles([100.0] * 10))
    service = BotService(sessions)
    service.create_bot(all_in("phoenix", max_drawdown_pct=30), start=True)
    manager = BotManager(sessions)
    manager.start()
    for candle in flat_candles([101.0, 101.0, 60.0, 60.0, 60.0, 60.0], start=T0 + 10 * MIN):
        store_candles(sessions, [candle])
        manager.on_candle(candle)
    assert service.list_bots()[0].status == "halted"
    service.resume("phoenix")
    manager.refresh()
    for candle in flat_candles([60.0, 60.0, 61.0, 61.0, 61.0], start=T0 + 16 * MIN):
        store_candles(sessions, [candle])
        manager.on_candle(candle)
    summary = service.list_bots()[0]
    assert summary.status == "running" and summary.position_side == "long"  # bought the new rise, not re-killed


def test_a_new_bot_warms_up_on_backfilled_history_and_trades_only_candles_seen_live(db_url: str) -> None:
    """On an empty database the collector's start-up backfill (REST history, published with
    ``backfilled``) reaches a bot that never ran: it fills the strategy window but is not traded,
    even where the strategy says BUY. The first candle seen live is the bot's first."""
    sessions = sessions_for(db_url)
    BotService(sessions).create_bot(all_in("new"), start=True)
    manager = BotManager(sessions)
    manager.start()
    assert manager.bots["new"].last_ms is None and manager.bots["new"].fresh
    history = [replace(c, backfilled=True) for c in flat_candles([100.0] * 10 + [101.0, 102.0])]  # a BUY at 101
    live = flat_candles([103.0, 100.0, 100.0, 100.0, 101.0, 102.0], start=T0 + 12 * MIN)  # a BUY at 101 again
    for candle in history + live:
        store_candles(sessions, [candle])
        manager.on_candle(candle)
    with session_scope(sessions) as session:
        fills = session.scalars(select(Fill).order_by(Fill.ts)).all()
    curve = BotService(sessions).bot_detail("new", equity_points=10_000).equity_curve
    assert [t for t, _ in curve] == [c.open_time_ms for c in live]  # history never processed
    buy_candle = live[4]
    assert [(f.side, f.reason, datetime_to_ms(f.ts)) for f in fills] == [
        ("buy", "signal BUY", buy_candle.open_time_ms + MIN)]  # filled at the next candle's open
    assert not manager.bots["new"].fresh


def test_a_bot_that_has_traded_processes_a_backfilled_gap_like_live_candles(db_url: str) -> None:
    """After a restart (or a reconnect) the collector backfills the gap from REST: a bot that has
    traded before processes those candles, so it ends where an uninterrupted run ends."""
    sessions = sessions_for(db_url)
    store_candles(sessions, flat_candles([100.0] * 10))
    BotService(sessions).create_bot(all_in("running"), start=True)
    manager = BotManager(sessions)
    manager.start()
    live = flat_candles([100.0, 100.0], start=T0 + 10 * MIN)
    gap = [replace(c, backfilled=True) for c in flat_candles([101.0, 102.0, 102.0], start=T0 + 12 * MIN)]
    for candle in live:
        store_candles(sessions, [candle])
        manager.on_candle(candle)
    manager = BotManager(sessions)  # the platform restarted; its collector backfills the gap
    manager.start()
    for candle in gap:
        store_candles(sessions, [candle])
        manager.on_candle(candle)
    with session_scope(sessions) as session:
        fills = session.scalars(select(Fill).order_by(Fill.ts)).all()
    curve = BotService(sessions).bot_detail("running", equity_points=10_000).equity_curve
    assert [t for t, _ in curve] == [c.open_time_ms for c in live + gap]
    assert [(f.side, datetime_to_ms(f.ts)) for f in fills] == [("buy", T0 + 13 * MIN)]


def test_a_bot_deleted_under_the_manager_is_skipped_and_the_other_bots_are_written(db_url: str) -> None:
    """Deleted straight in the database (another process) while loaded: the next candle's write skips
    it (on PostgreSQL a foreign key of its snapshot fails, the write falls back to the bots that exist),
    the other bot's position, fills and snapshots are stored and its open position id is kept."""
    sessions = sessions_for(db_url)
    store_candles(sessions, flat_candles([100.0] * 10))
    service = BotService(sessions)
    service.create_bot(all_in("kept"), start=True)
    service.create_bot(all_in("gone"), start=True)
    manager = BotManager(sessions)
    manager.start()
    rising = flat_candles([101.0, 102.0, 103.0, 104.0], start=T0 + 10 * MIN)
    for candle in rising[:2]:  # both buy on the first rise and hold
        store_candles(sessions, [candle])
        manager.on_candle(candle)
    with session_scope(sessions) as session:
        session.delete(session.scalars(select(Bot).where(Bot.name == "gone")).one())
    published = []
    for candle in rising[2:]:
        store_candles(sessions, [candle])
        published += manager.on_candle(candle)
    assert manager.bots["kept"].last_ms == rising[-1].open_time_ms
    assert manager.bots["gone"].last_ms == rising[1].open_time_ms  # not advanced: nothing of it was written
    assert manager.bots["kept"].position is not None and manager.bots["kept"].position["id"] is not None
    assert not [ch for ch, _ in published if ch.endswith(".gone")]
    detail = service.bot_detail("kept", equity_points=100)
    assert [t for t, _ in detail.equity_curve][-2:] == [c.open_time_ms for c in rising[2:]]
    with session_scope(sessions) as session:
        assert [b.name for b in session.scalars(select(Bot))] == ["kept"]
        assert [f.side for f in session.scalars(select(Fill))] == ["buy"]
