"""The bot manager: many bots in one process, driven by closed candles.

:class:`BotManager` is synchronous (database calls inside, no asyncio) so tests and the benchmark
drive it directly; :meth:`BotManager.run` is the thin async shell around it (bus in, bus out).

Per closed candle of a market, for every bot on that market whose ``last_candle_time`` is older:
broker fills -> risk checks -> strategy signal -> orders, then ONE transaction stores every bot's
orders, fills, positions, equity snapshot, events, signal, state and ``last_candle_time``; only
after the commit are fills, events and signals published. A restart rebuilds each bot from its
stored state and replays the stored candles it has not processed (see docs/bots.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from bot_manager.arbitrage_runner import STRATEGY as ARBITRAGE
from bot_manager.config import PortfolioConfig, parse_bot_config
from bot_manager.engine import BotEngine, BotEventRecord, BotStatus, CandleOutcome
from bot_manager.market_inputs import attach_stored_inputs
from bot_manager.recording import build_write, event_message, fill_message, position_values, signal_event
from bot_manager.risk import PortfolioGuard
from config.domain import Candle, Timeframe, datetime_to_ms
from config.errors import ConfigurationError
from data import messages, topics
from data.bus import Bus
from database.engine import session_scope
from database.models import Bot
from database.repositories import bots as bots_repo
from database.repositories import market as market_repo
from database.repositories import ops as ops_repo
from strategies.bars import ANCHOR_MS, Bars
from strategies.live import LiveWindow
from strategies.registry import create_strategy

log = logging.getLogger(__name__)

COMPONENT = "bot_manager"
MarketKey = tuple[str, str, Timeframe]
Publication = tuple[str, dict[str, Any]]
LOADED = (BotStatus.RUNNING, BotStatus.PAUSED, BotStatus.HALTED)


@dataclass(slots=True)
class _Bot:
    bot_id: int
    name: str
    engine: BotEngine
    status: BotStatus
    last_ms: int | None
    position: dict[str, Any] | None
    fresh: bool = False  # has never processed a candle: starts with the first one seen live

    @property
    def fed(self) -> bool:
        """Receives candles: running, paused, or halted while still holding a position or orders."""
        return self.status in (BotStatus.RUNNING, BotStatus.PAUSED) or (
            self.status is BotStatus.HALTED and self.engine.busy)


@dataclass(slots=True)
class _Market:
    key: MarketKey
    window: LiveWindow
    bots: dict[str, _Bot] = field(default_factory=dict)


class BotManager:
    """Loads the bots the database says should run and advances them on closed candles."""

    def __init__(self, sessions: sessionmaker[Session], portfolio: PortfolioConfig | None = None,
                 poll_interval: float = 1.0, durable_commits: bool = True) -> None:
        self.sessions = sessions
        # False: a candle's commit does not wait for its WAL to reach the disk (a PostgreSQL crash may
        # then lose the last fraction of a second of bot writes; see docs/bots.md)
        self.durable_commits = durable_commits
        self.portfolio = PortfolioGuard(portfolio or PortfolioConfig())
        self.poll_interval = poll_interval
        self.markets: dict[MarketKey, _Market] = {}
        self.candles_seen = 0
        self.candles_processed = 0
        self.errors = 0
        self._portfolio_halted = False
        self._elsewhere: set[str] = set()  # arbitrage bots: run by the ArbitrageRunner, not here

    # ------------------------------------------------------------------ loading and control

    @property
    def bots(self) -> dict[str, _Bot]:
        return {name: bot for m in self.markets.values() for name, bot in m.bots.items()}

    def start(self) -> list[Publication]:
        """(Re)load every bot from the database and catch up on stored candles."""
        self.markets.clear()
        with session_scope(self.sessions) as session:
            rows = bots_repo.list_bots(session, [s.value for s in LOADED])
            for row in rows:
                self._load(session, row)
        out: list[Publication] = []
        for market in list(self.markets.values()):
            out += self._catch_up(market)
        return out

    def _load(self, session: Session, row: Bot) -> _Bot | None:
        if row.strategy == ARBITRAGE:  # book-driven: bot_manager.arbitrage_runner runs those
            self._elsewhere.add(row.name)
            return None
        try:
            config = parse_bot_config(row.config, f"bot {row.name!r} (database)", check_strategy=False)
            strategy = create_strategy(config.strategy, config.params)
        except ConfigurationError as exc:
            bots_repo.set_status(session, row.name, BotStatus.HALTED.value, str(exc))
            bots_repo.add_event(session, row.id, "halted", f"cannot load: {exc}", level="ERROR")
            log.error("bot %s cannot be loaded: %s", row.name, exc)
            return None
        engine = BotEngine(config, strategy, row.state or None)
        status = BotStatus(row.status)
        engine.trading = status is BotStatus.RUNNING
        engine.halted = status is BotStatus.HALTED
        key: MarketKey = (config.exchange, config.symbol, config.timeframe)
        market = self.markets.get(key)
        if market is None:
            market = _Market(key, LiveWindow(engine.history, ANCHOR_MS // config.timeframe.ms))
            self.markets[key] = market
        elif engine.history > market.window.keep:
            market.window.set_keep(engine.history)
        last_ms = None if row.last_candle_time is None else datetime_to_ms(row.last_candle_time)
        fresh = last_ms is None
        if fresh:  # never ran: start with the next candle, never trade the past
            last_ms = market_repo.latest_candle_time_ms(session, *key)
        position = bots_repo.open_position(session, row.id)
        bot = _Bot(row.id, row.name, engine, status, last_ms, position_values(position), fresh)
        market.bots[row.name] = bot
        self.portfolio.add(row.name, engine.broker.equity(), engine.broker.exposure())
        return bot

    def refresh(self) -> list[Publication]:
        """Apply status changes made by the service (another process, e.g. the dashboard)."""
        with session_scope(self.sessions) as session:
            wanted = bots_repo.bot_statuses(session)
        out: list[Publication] = []
        loaded = self.bots
        names = {name: (bot_id, BotStatus(status)) for bot_id, (name, status, _) in wanted.items()}
        to_load: list[str] = []
        resumed: set[str] = set()
        for name, bot in loaded.items():
            target = names.get(name)
            if target is None or target[0] != bot.bot_id or target[1] not in LOADED:
                self._unload(bot)
                out.append(_event(name, "unloaded", f"bot {'deleted' if target is None else target[1].value}"))
                if target is not None and target[1] in LOADED:
                    to_load.append(name)
            elif target[1] is not bot.status:
                if bot.status is BotStatus.PAUSED and target[1] is BotStatus.RUNNING:
                    bot.engine.trading, bot.status = True, BotStatus.RUNNING
                elif target[1] is BotStatus.RUNNING:  # resumed after a halt: reload its stored state
                    self._unload(bot)
                    to_load.append(name)
                    resumed.add(name)
                else:
                    bot.status = target[1]
                    bot.engine.trading = False
                out.append(_event(name, "status", f"now {target[1].value}"))
        to_load += [n for n, (_, s) in names.items() if s in LOADED and n not in loaded and n not in self._elsewhere]
        if to_load:
            touched: set[MarketKey] = set()
            with session_scope(self.sessions) as session:
                for row in bots_repo.list_bots(session, [s.value for s in LOADED]):
                    if row.name in to_load:
                        loaded_bot = self._load(session, row)
                        if loaded_bot is not None and row.name in resumed:
                            loaded_bot.engine.resume()
                        if loaded_bot is not None:
                            touched.add(loaded_bot.engine.config.market_key)
                            out.append(_event(row.name, "loaded", f"bot loaded ({row.status})"))
            for key in touched:
                out += self._catch_up(self.markets[key])
        return out

    def _unload(self, bot: _Bot) -> None:
        key = bot.engine.config.market_key
        market = self.markets[key]
        market.bots.pop(bot.name, None)
        self.portfolio.forget(bot.name)
        if not market.bots:
            del self.markets[key]

    # ------------------------------------------------------------------ candles

    def on_message(self, message: dict[str, Any]) -> list[Publication]:
        """A bus candle message (malformed ones are logged and dropped)."""
        try:
            candle = messages.candle_from_message(message)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("bot manager: dropped a malformed candle message (%s)", exc)
            return []
        return self.on_candle(candle)

    def on_candle(self, candle: Candle) -> list[Publication]:
        """A closed candle from the bus: catch up on any gap from the database, then process it."""
        market = self.markets.get((candle.exchange, candle.symbol, candle.timeframe))
        if market is None or not candle.closed:
            return []
        self.candles_seen += 1
        window = market.window
        last = window.last_time
        if last is not None and candle.open_time_ms <= last:
            window.add(candle.open_time_ms, _ohlcv(candle))  # a revision: the window follows, bots don't
            return []
        out: list[Publication] = []
        behind = [b.last_ms for b in market.bots.values() if b.fed and b.last_ms is not None]
        expected = candle.open_time_ms - candle.timeframe.ms
        if last is None or last < expected or (behind and min(behind) < expected):
            out += self._catch_up(market, until_ms=candle.open_time_ms)
            if market.window.last_time is not None and candle.open_time_ms <= market.window.last_time:
                return out
        return out + self._process(market, candle.open_time_ms, _ohlcv(candle), backfilled=candle.backfilled)

    def _catch_up(self, market: _Market, until_ms: int | None = None) -> list[Publication]:
        """Reload the market's window from stored candles and process those the bots have not seen."""
        exchange, symbol, timeframe = market.key
        fed = [b for b in market.bots.values() if b.fed]
        starts = [b.last_ms + timeframe.ms for b in fed if b.last_ms is not None]
        with session_scope(self.sessions) as session:
            if starts:
                first = min(starts)
                rows = market.window.keep + market.window.bars_per_day
                warm = market_repo.get_candles(session, exchange, symbol, timeframe, end_ms=first, limit=rows)
                new = market_repo.get_candles(session, exchange, symbol, timeframe, first, until_ms)
            else:
                warm = market_repo.get_candles(session, exchange, symbol, timeframe, end_ms=until_ms,
                                               limit=market.window.keep + market.window.bars_per_day)
                new = []
        market.window.seed(_bars(warm))
        out: list[Publication] = []
        for candle in new:  # stored candles don't say whether they were seen live: a new bot skips them
            out += self._process(market, candle.open_time_ms, _ohlcv(candle), backfilled=True)
        return out

    def _process(self, market: _Market, t: int, ohlcv: tuple[float, float, float, float, float],
                 backfilled: bool = False) -> list[Publication]:
        market.window.add(t, ohlcv)
        self.candles_processed += 1
        bars: Bars | None = None
        results: list[tuple[_Bot, CandleOutcome]] = []
        for bot in market.bots.values():
            if not bot.fed or (bot.last_ms is not None and t <= bot.last_ms):
                continue
            if bot.fresh and backfilled:  # history the collector fetched: warms the window, never traded
                bot.last_ms = t
                continue
            bot.fresh = False
            if bot.engine.trading and bars is None:
                bars = self._window_bars(market)
            outcome = bot.engine.process(t, *ohlcv, bars if bot.engine.trading else None, self.portfolio)
            results.append((bot, outcome))
        if not results:
            return []
        out = self._commit(results)
        if not self._portfolio_halted:
            reason = self.portfolio.check_drawdown()
            if reason is not None:
                out += self._halt_everything(reason)
        return out

    def _window_bars(self, market: _Market) -> Bars:
        """The market's window, with the stored market inputs its strategies read attached
        (:mod:`bot_manager.market_inputs`, the same values a backtest gives each bar)."""
        bars = market.window.bars()
        names = tuple(dict.fromkeys(n for b in market.bots.values() for n in b.engine.strategy.inputs))
        if not names:
            return bars
        exchange, symbol, timeframe = market.key
        with session_scope(self.sessions) as session:
            return attach_stored_inputs(session, exchange, symbol, timeframe.ms, bars, names)

    def _commit(self, results: list[tuple[_Bot, CandleOutcome]], snapshot: bool = True) -> list[Publication]:
        writes = [build_write(bot.bot_id, bot.engine, outcome, bot.position) for bot, outcome in results]
        for write, (bot, outcome) in zip(writes, results, strict=True):
            write.snapshot = snapshot
            write.signal = signal_event(bot.engine, outcome)
        with session_scope(self.sessions) as session:
            alive = bots_repo.record_candle(session, writes, durable=self.durable_commits)
        out: list[Publication] = []
        for (bot, outcome), write in zip(results, writes, strict=True):
            if bot.bot_id not in alive:
                continue
            bot.last_ms = outcome.candle_time_ms
            bot.position = None if write.position is None else {**write.position, "id": alive[bot.bot_id]}
            if outcome.halted_reason is not None:
                bot.status = BotStatus.HALTED
            broker = bot.engine.broker
            self.portfolio.update(bot.name, broker.equity(), broker.exposure())
            symbol = bot.engine.config.symbol
            out += [(topics.fills(bot.name), fill_message(bot.name, f, symbol)) for f in outcome.fills]
            out += [(topics.bot_events(bot.name), event_message(bot.name, e.kind, e.message, e.level,
                                                                outcome.candle_time_ms, e.data))
                    for e in outcome.events]
            signal = write.signal
            if signal is not None:
                out.append((topics.signals(signal.exchange, signal.symbol, signal.timeframe),
                            messages.signal_to_message(signal)))
        return out

    def _halt_everything(self, reason: str) -> list[Publication]:
        """Portfolio kill switch: every loaded bot closes out and halts (stored like a candle)."""
        self._portfolio_halted = True
        results = []
        for bot in self.bots.values():
            if bot.status is BotStatus.HALTED or bot.last_ms is None:
                continue
            outcome = CandleOutcome(bot.last_ms)
            bot.engine.halt_all(bot.last_ms, reason, outcome)
            outcome.events[-1] = BotEventRecord("halted", reason, "ERROR", {"scope": "portfolio"})
            results.append((bot, outcome))
        log.error("bot manager: %s", reason)
        return self._commit(results, snapshot=False) if results else []

    # ------------------------------------------------------------------ health and the async shell

    def health(self) -> tuple[str, dict[str, Any]]:
        bots = self.bots
        counts: dict[str, int] = {}
        for bot in bots.values():
            counts[bot.status.value] = counts.get(bot.status.value, 0) + 1
        status = "degraded" if counts.get(BotStatus.HALTED.value) or self.errors else "ok"
        return status, {"bots": len(bots), "by_status": counts, "markets": len(self.markets),
                        "candles_seen": self.candles_seen, "candles_processed": self.candles_processed,
                        "errors": self.errors, "portfolio_equity": round(sum(self.portfolio.equity.values()), 2)}

    def report_health(self) -> None:
        status, data = self.health()
        with session_scope(self.sessions) as session:
            ops_repo.record_health(session, COMPONENT, status, data)

    async def run(self, bus: Bus, stop: asyncio.Event, health_interval: float = 10.0) -> None:
        """Consume closed candles from ``bus`` until ``stop`` is set; poll the bots table for control."""
        subscription = await bus.subscribe(topics.pattern(topics.CANDLES))
        healthy = False
        next_poll = next_health = 0.0
        try:
            while not stop.is_set():
                try:
                    if not healthy:
                        await _publish(bus, await asyncio.to_thread(self.start))
                        healthy = True
                    item = await subscription.get(timeout=min(0.25, self.poll_interval))
                    if item is not None:
                        await _publish(bus, await asyncio.to_thread(self.on_message, item[1]))
                    now = time.monotonic()
                    if now >= next_poll:
                        next_poll = now + self.poll_interval
                        await _publish(bus, await asyncio.to_thread(self.refresh))
                    if now >= next_health:
                        next_health = now + health_interval
                        await asyncio.to_thread(self.report_health)
                except Exception:  # noqa: BLE001 - database outage etc.: reload from the stored state
                    self.errors += 1
                    healthy = False
                    log.exception("bot manager: processing failed; reloading every bot from the database")
                    await asyncio.sleep(1.0)
        finally:
            await subscription.close()


async def _publish(bus: Bus, publications: list[Publication]) -> None:
    for channel, payload in publications:
        await bus.publish(channel, payload)


def _event(bot: str, kind: str, message: str) -> Publication:
    return topics.bot_events(bot), event_message(bot, kind, message)


def _ohlcv(candle: Candle) -> tuple[float, float, float, float, float]:
    return candle.open, candle.high, candle.low, candle.close, candle.volume


def _bars(candles: list[Candle]) -> Bars:
    n = len(candles)
    return Bars(np.fromiter((c.open_time_ms for c in candles), dtype=np.int64, count=n),
                *(np.fromiter((getattr(c, f) for c in candles), dtype=np.float64, count=n)
                  for f in ("open", "high", "low", "close", "volume")))
