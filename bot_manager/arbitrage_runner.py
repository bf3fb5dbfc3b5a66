"""The arbitrage bots' runtime: book tops from the bus -> :class:`~bot_manager.arbitrage.ArbitrageBot` -> the bot
tables, like every other bot (``bots``, ``orders``, ``fills``, ``positions`` one per leg, ``equity_snapshots``,
``bot_events``), then fills and events on the bus after the commit.

:class:`ArbitrageRunner` is synchronous (database calls inside) so tests drive it directly; :meth:`run` is the
async shell. It runs the arbitrage bots whose status is ``running`` (their rows have strategy ``arbitrage``;
the candle-driven :class:`~bot_manager.manager.BotManager` leaves them alone) and polls the table for status
changes: a stopped bot is unloaded, a started one loaded from its stored state. Each step that fills, sends or
refuses an order is one transaction; the bot's state (both brokers) is stored with it, so a restart resumes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot_manager.arbitrage import ArbitrageBot, LegFill
from bot_manager.arbitrage_config import ArbitrageBotConfig, load_arbitrage_folder, parse_arbitrage_config
from bot_manager.broker import money
from bot_manager.engine import BotStatus
from bot_manager.recording import (
    event_message,
    fill_message,
    fill_record,
    order_record,
    position_values,
    track_positions,
)
from config.domain import BookTop
from config.errors import ConfigurationError
from data import topics
from data.bus import Bus
from data.messages import book_from_message
from database.engine import session_scope
from database.models import Bot
from database.repositories import bots as repo
from database.repositories.bots import BotCandleWrite, EventRecord

log = logging.getLogger(__name__)

STRATEGY = "arbitrage"  # the strategy column of an arbitrage bot's row
TIMEFRAME = "1m"  # the row's timeframe: what the bot pages read its equity curve's bars as
Publication = tuple[str, dict[str, Any]]


def sync_arbitrage_folder(sessions: sessionmaker[Session], bots_dir: Path | str) -> list[str]:
    """Create the missing arbitrage bots of ``BOTS_DIR/arbitrage/`` (running when ``enabled``); update the
    config of existing ones. Every file is validated first: a bad one raises and nothing is created."""
    created = []
    loaded = load_arbitrage_folder(bots_dir)
    with session_scope(sessions) as session:
        for path, config in loaded:
            data = config.model_dump(mode="json")
            bot = repo.get_bot(session, config.name)
            if bot is None:
                status = BotStatus.RUNNING if config.enabled else BotStatus.CREATED
                row = repo.create_bot(session, name=config.name, exchange=config.legs[0].exchange,
                                      symbol=config.legs[0].symbol, timeframe=TIMEFRAME, strategy=STRATEGY,
                                      config=data, starting_balance=config.starting_balance, status=status.value,
                                      config_path=str(path))
                repo.add_event(session, row.id, "created", f"created from {path.name}")
                created.append(config.name)
            elif bot.strategy != STRATEGY:
                raise ConfigurationError(f"bot {config.name!r} already exists and is not an arbitrage bot",
                                         source=str(path), field="name")
            elif bot.config != data:
                repo.update_config(session, config.name, data, STRATEGY, str(path))
                repo.add_event(session, bot.id, "config", f"configuration updated from {path.name}")
    return created


@dataclass
class _Loaded:
    bot_id: int
    name: str
    bot: ArbitrageBot
    positions: list[dict[str, Any] | None]
    peak: Decimal
    last_snapshot_ms: int = 0
    decisions_seen: int = 0


class ArbitrageRunner:
    def __init__(self, sessions: sessionmaker[Session], poll_interval: float = 1.0) -> None:
        self.sessions = sessions
        self.poll_interval = poll_interval
        self.loaded: dict[str, _Loaded] = {}
        self.tops_seen = 0
        self.errors = 0

    # ------------------------------------------------------------------ loading

    def start(self) -> None:
        self.loaded.clear()
        self.refresh()

    def refresh(self) -> None:
        """Load the running arbitrage bots not loaded yet; unload those no longer running."""
        with session_scope(self.sessions) as session:
            rows = {r.name: r for r in repo.list_bots(session, [BotStatus.RUNNING.value]) if r.strategy == STRATEGY}
            for name in [n for n, b in self.loaded.items() if n not in rows or rows[n].id != b.bot_id]:
                del self.loaded[name]
            for name, row in rows.items():
                if name not in self.loaded:
                    self._load(session, row)

    def _load(self, session: Session, row: Bot) -> None:
        try:
            config: ArbitrageBotConfig = parse_arbitrage_config(row.config, f"bot {row.name!r} (database)")
        except ConfigurationError as exc:
            repo.set_status(session, row.name, BotStatus.HALTED.value, str(exc))
            repo.add_event(session, row.id, "halted", f"cannot load: {exc}", level="ERROR")
            return
        bot = ArbitrageBot(config.to_runtime())
        if row.state:
            bot.restore(row.state)
        open_rows = {p.symbol: p for p in repo.positions(session, row.id) if p.status == "open"}
        positions = [position_values(open_rows.get(leg.symbol)) for leg in bot.config.legs]
        self.loaded[row.name] = _Loaded(row.id, row.name, bot, positions, Decimal(row.peak_equity))

    # ------------------------------------------------------------------ book tops

    def on_message(self, message: dict[str, Any]) -> list[Publication]:
        try:
            top = book_from_message(message)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("arbitrage: dropped a malformed book message (%s)", exc)
            return []
        return self.on_top(top)

    def on_top(self, top: BookTop) -> list[Publication]:
        self.tops_seen += 1
        out: list[Publication] = []
        for entry in self.loaded.values():
            if entry.bot.leg_index(top) is None:
                continue
            fills = entry.bot.on_book(top)
            bot = entry.bot
            if fills or bot.sent or bot.rejections or len(bot.decisions) > entry.decisions_seen:
                out += self._record(entry, top.ts_ms, fills)
        return out

    def _record(self, entry: _Loaded, ts: int, fills: list[LegFill]) -> list[Publication]:
        bot = entry.bot
        legs = bot.config.legs
        sent, bot.sent = bot.sent, []
        rejected, bot.rejections = bot.rejections, []
        decisions = bot.decisions[entry.decisions_seen:]
        said = {"open": lambda d: f"open: bought {legs[d.long]}, sold {legs[d.short]}, {d.bps:+.2f} bps net",
                "close": lambda d: f"close: {d.bps:+.2f} bps to undo",
                "trim": lambda d: f"trim: {legs[d.long]} cut back to what {legs[d.short]} holds",
                "abort": lambda d: f"abort: {legs[d.short]} holds nothing, {legs[d.long]} undone"}
        warn = ("trim", "abort")
        events = [EventRecord(f"arbitrage_{d.action}", said[d.action](d), "WARNING" if d.action in warn else "INFO",
                              {"bps": round(d.bps, 4), "long": str(legs[d.long]), "short": str(legs[d.short])}, ts)
                  for d in decisions]
        events += [EventRecord("order_rejected", f"order {oid} on {leg} rejected: {why}", "WARNING",
                               {"order_id": oid}, ts) for leg, oid, why in rejected]
        equity = money(bot.equity())
        entry.peak = max(entry.peak, equity)
        balance = sum((b.balance for b in bot.brokers), Decimal(0))
        unrealised = sum((b.unrealised_pnl_decimal() for b in bot.brokers), Decimal(0))
        position_value = sum((money(abs(b.quantity) * Decimal(repr(b.last_close))) for b in bot.brokers), Decimal(0))
        state = bot.snapshot()
        writes = []
        for i, leg in enumerate(legs):
            broker = bot.brokers[i]
            leg_fills = [lf.fill for lf in fills if lf.leg == leg]
            open_ids = {o.order_id for o in broker.open_orders}
            status = {f.order_id: "partially_filled" if f.order_id in open_ids else "filled" for f in leg_fills}
            status |= {oid: "rejected" for rl, oid, _ in rejected if rl == leg}
            row, closed = track_positions(entry.positions[i], leg_fills, leg.symbol)
            snapshot = i == 1 and bool(fills) and ts > entry.last_snapshot_ms
            writes.append(BotCandleWrite(
                bot_id=entry.bot_id, candle_time_ms=ts, balance=balance, equity=equity,
                fees_paid=sum((b.fees_paid for b in bot.brokers), Decimal(0)),
                realised_pnl=sum((b.realised_pnl for b in bot.brokers), Decimal(0)), peak_equity=entry.peak,
                state=state, unrealised_pnl=unrealised, position_value=position_value,
                drawdown=float(1 - equity / entry.peak) if entry.peak > 0 else 0.0,
                new_orders=[order_record(o, leg.symbol, "open") for j, o in sent if j == i], order_status=status,
                fills=[fill_record(f, leg.symbol) for f in leg_fills], events=events if i == 0 else [],
                closed_positions=closed, position=row,
                write_position=row is not None and (row.get("id") is None or bool(leg_fills)), snapshot=snapshot))
        with session_scope(self.sessions) as session:
            ids = [repo.record_candle(session, [w]) for w in writes]
        if not all(entry.bot_id in i for i in ids):  # deleted meanwhile
            self.loaded.pop(entry.name, None)
            return []
        for i, write in enumerate(writes):
            entry.positions[i] = None if write.position is None else {**write.position, "id": ids[i][entry.bot_id]}
        if writes[1].snapshot:
            entry.last_snapshot_ms = ts
        entry.decisions_seen = len(bot.decisions)
        out: list[Publication] = [(topics.fills(entry.name), fill_message(entry.name, lf.fill, lf.leg.symbol))
                                  for lf in fills]
        out += [(topics.bot_events(entry.name), event_message(entry.name, e.kind, e.message, e.level, ts, e.data))
                for e in events]
        return out

    # ------------------------------------------------------------------ the async shell

    def health(self) -> tuple[str, dict[str, Any]]:
        return ("degraded" if self.errors else "ok"), {"bots": len(self.loaded), "tops_seen": self.tops_seen,
                                                       "errors": self.errors}

    async def run(self, bus: Bus, stop: asyncio.Event) -> None:
        """Consume book tops until ``stop`` is set; poll the bots table for control."""
        subscription = await bus.subscribe(topics.books("*", "*"))
        healthy = False
        next_poll = 0.0
        try:
            while not stop.is_set():
                try:
                    if not healthy:
                        await asyncio.to_thread(self.start)
                        healthy = True
                    item = await subscription.get(timeout=min(0.25, self.poll_interval))
                    if item is not None and self.loaded:
                        for channel, payload in await asyncio.to_thread(self.on_message, item[1]):
                            await bus.publish(channel, payload)
                    now = time.monotonic()
                    if now >= next_poll:
                        next_poll = now + self.poll_interval
                        await asyncio.to_thread(self.refresh)
                except Exception:  # noqa: BLE001 - database outage etc.: reload from the stored state
                    self.errors += 1
                    healthy = False
                    log.exception("arbitrage: processing failed; reloading every arbitrage bot from the database")
                    await asyncio.sleep(1.0)
        finally:
            await subscription.close()
