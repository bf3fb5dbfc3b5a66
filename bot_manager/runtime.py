"""The bot runtime the platform starts: sync ``config/bots/`` into the database, run the manager."""

from __future__ import annotations

import asyncio
import logging

from bot_manager.arbitrage_config import load_arbitrage_folder
from bot_manager.arbitrage_runner import ArbitrageRunner, sync_arbitrage_folder
from bot_manager.config import load_portfolio
from bot_manager.manager import BotManager
from bot_manager.service import BotService
from config.settings import Settings
from data.bus import Bus
from database.engine import make_engine, make_session_factory

log = logging.getLogger(__name__)


async def run_bots(settings: Settings, bus: Bus, stop: asyncio.Event, *, poll_interval: float = 1.0) -> None:
    """Sync the bot folder (``BOTS_DIR``, and its ``arbitrage/`` folder), then run every active bot on the bus's
    closed candles (arbitrage bots: on its book tops) until ``stop`` is set. Raises ``ConfigurationError`` before
    anything starts when a bot file is invalid. Every processed candle is committed as it happens, so returning
    needs no flush.
    """
    engine = make_engine(settings.effective_database_url)
    try:
        sessions = make_session_factory(engine)
        portfolio = load_portfolio(settings.bots_dir)
        load_arbitrage_folder(settings.bots_dir)  # every file valid before any bot is synced
        if settings.bots_dir.is_dir():
            report = await asyncio.to_thread(BotService(sessions).sync_folder, settings.bots_dir)
            log.info("bots: %d created, %d updated, %d unchanged from %s", len(report.created),
                     len(report.updated), len(report.unchanged), settings.bots_dir)
            created = await asyncio.to_thread(sync_arbitrage_folder, sessions, settings.bots_dir)
            if created:
                log.info("bots: %d arbitrage bots created from %s/arbitrage", len(created), settings.bots_dir)
        manager = BotManager(sessions, portfolio, poll_interval=poll_interval)
        arbitrage = ArbitrageRunner(sessions, poll_interval=poll_interval)
        await asyncio.gather(manager.run(bus, stop), arbitrage.run(bus, stop))
    finally:
        engine.dispose()
