"""The bot service layer: what the CLI and the dashboard call (no bus, no asyncio).

Control works across processes: these functions write the desired ``status`` to the ``bots``
table and the running :class:`~bot_manager.manager.BotManager` picks the change up within about a
second. Invalid requests raise :class:`~config.errors.ConfigurationError` with a clear reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from bot_manager.config import BotConfig, load_bot_file, load_bot_folder, load_bot_text, parse_bot_config
from bot_manager.engine import BotStatus
from bot_manager.performance import summarize
from config.domain import Timeframe, datetime_to_ms
from config.errors import ConfigurationError
from database.engine import session_scope
from database.models import Bot
from database.repositories import bots as repo
from database.repositories import market as market_repo

ConfigSource = str | dict[str, Any] | Path


@dataclass(frozen=True, slots=True)
class BotSummary:
    name: str
    status: str
    status_reason: str | None
    exchange: str
    symbol: str
    timeframe: str
    strategy: str
    starting_balance: Decimal
    balance: Decimal
    equity: Decimal
    pnl: Decimal
    return_pct: float
    realised_pnl: Decimal
    fees_paid: Decimal
    position_side: str | None
    position_quantity: Decimal
    position_entry_price: Decimal | None
    last_signal: str | None
    last_signal_time_ms: int | None
    last_candle_time_ms: int | None


@dataclass(frozen=True, slots=True)
class BotDetail:
    summary: BotSummary
    config: dict[str, Any]
    equity_curve: list[tuple[int, float]]
    fills: list[dict[str, Any]]
    positions: list[dict[str, Any]]
    open_orders: list[dict[str, Any]]
    events: list[dict[str, Any]]
    performance: dict[str, Any]


@dataclass(slots=True)
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def validate(source: ConfigSource, name: str = "<bot config>") -> BotConfig:
    """Validate JSON text, a decoded dict or a file path (strategy and parameters included)."""
    if isinstance(source, Path):
        return load_bot_file(source)
    if isinstance(source, str):
        return load_bot_text(source, name)
    return parse_bot_config(source, name)


def _config_json(config: BotConfig) -> dict[str, Any]:
    return json.loads(config.model_dump_json(exclude_unset=False))


class BotService:
    """Create, control, list and inspect bots stored in the database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    # ------------------------------------------------------------------ lifecycle

    def create_bot(self, source: ConfigSource, *, start: bool = False, config_path: str | None = None) -> BotSummary:
        """Validate and store a new bot (status ``created``, or ``running`` with ``start``)."""
        config = validate(source)
        with session_scope(self.sessions) as session:
            if repo.get_bot(session, config.name) is not None:
                raise ConfigurationError(f"a bot named {config.name!r} already exists", source=config_path,
                                         field="name")
            bot = repo.create_bot(session, name=config.name, exchange=config.exchange, symbol=config.symbol,
                                  timeframe=config.timeframe.value, strategy=config.strategy,
                                  config=_config_json(config), starting_balance=config.starting_balance,
                                  config_path=config_path,
                                  status=BotStatus.RUNNING.value if start else BotStatus.CREATED.value)
            repo.add_event(session, bot.id, "created", f"created{' and started' if start else ''}")
            return self._summary(session, bot)

    def start(self, name: str) -> BotSummary:
        """Start (or resume) a bot. From created/stopped/halted it begins with the next candle."""
        return self._transition(name, BotStatus.RUNNING, {BotStatus.CREATED, BotStatus.STOPPED,
                                                          BotStatus.HALTED, BotStatus.PAUSED})

    def resume(self, name: str) -> BotSummary:
        return self._transition(name, BotStatus.RUNNING, {BotStatus.PAUSED, BotStatus.HALTED})

    def pause(self, name: str) -> BotSummary:
        """Stop acting on signals; open positions keep their exits and risk checks."""
        return self._transition(name, BotStatus.PAUSED, {BotStatus.RUNNING})

    def stop(self, name: str) -> BotSummary:
        """Stop processing the bot entirely (its state and any position are kept as they are)."""
        return self._transition(name, BotStatus.STOPPED, {BotStatus.RUNNING, BotStatus.PAUSED,
                                                          BotStatus.HALTED})

    def delete(self, name: str) -> None:
        """Delete the bot and all its records."""
        with session_scope(self.sessions) as session:
            if not repo.delete_bot(session, name):
                raise ConfigurationError(f"no bot named {name!r}", field="name")

    def _transition(self, name: str, target: BotStatus, allowed: set[BotStatus]) -> BotSummary:
        with session_scope(self.sessions) as session:
            bot = self._get(session, name)
            current = BotStatus(bot.status)
            if current is target:
                return self._summary(session, bot)
            if current not in allowed:
                raise ConfigurationError(f"cannot go from {current.value} to {target.value}; allowed from: "
                                         f"{', '.join(sorted(s.value for s in allowed))}", source=name,
                                         field="status")
            skip_to = None
            if target is BotStatus.RUNNING and current is not BotStatus.PAUSED:
                skip_to = market_repo.latest_candle_time_ms(session, bot.exchange, bot.symbol,
                                                            Timeframe(bot.timeframe))
            repo.set_status(session, name, target.value, None, last_candle_time_ms=skip_to)
            if current is BotStatus.HALTED and bot.state.get("risk"):
                # drawdown is measured from the current equity again, or the kill switch fires at once
                state = {**bot.state, "risk": {**bot.state["risk"], "peak_equity": float(bot.equity)}}
                repo.set_state(session, name, state, Decimal(bot.equity))
            repo.add_event(session, bot.id, "status", f"{current.value} -> {target.value}")
            session.refresh(bot)
            return self._summary(session, bot)

    def sync_folder(self, folder: Path | str) -> SyncReport:
        """Create the folder's missing bots (running when ``enabled``); keep the state of existing ones.

        Every file is validated first: one bad file raises and nothing is created. A stored bot
        whose file changes exchange, symbol, timeframe or starting balance is refused.
        """
        loaded = load_bot_folder(folder)
        report = SyncReport()
        with session_scope(self.sessions) as session:
            for path, config in loaded:
                bot = repo.get_bot(session, config.name)
                data = _config_json(config)
                if bot is None:
                    status = BotStatus.RUNNING if config.enabled else BotStatus.CREATED
                    row = repo.create_bot(session, name=config.name, exchange=config.exchange,
                                          symbol=config.symbol, timeframe=config.timeframe.value,
                                          strategy=config.strategy, config=data,
                                          starting_balance=config.starting_balance, status=status.value,
                                          config_path=str(path))
                    repo.add_event(session, row.id, "created", f"created from {path.name}")
                    report.created.append(config.name)
                    continue
                identity = (bot.exchange, bot.symbol, bot.timeframe, Decimal(bot.starting_balance))
                wanted = (config.exchange, config.symbol, config.timeframe.value, config.starting_balance)
                if identity != wanted:
                    raise ConfigurationError(
                        f"stored bot {config.name!r} trades {identity[1]} {identity[2]} on {identity[0]} from "
                        f"{identity[3]}; the file says {wanted[1]} {wanted[2]} on {wanted[0]} from {wanted[3]}. "
                        "Rename the bot or delete the stored one first", source=str(path), field="name")
                if bot.config != data:
                    repo.update_config(session, config.name, data, config.strategy, str(path))
                    repo.add_event(session, bot.id, "config", f"configuration updated from {path.name}")
                    report.updated.append(config.name)
                else:
                    report.unchanged.append(config.name)
        return report

    # ------------------------------------------------------------------ reads

    def list_bots(self) -> list[BotSummary]:
        with session_scope(self.sessions) as session:
            rows = repo.list_bots(session)
            ids = [r.id for r in rows]
            positions = repo.open_positions(session, ids)
            signals = repo.last_signals(session, ids)
            return [self._summary(session, r, positions.get(r.id), signals.get(r.id), looked_up=True)
                    for r in rows]

    def bot_detail(self, name: str, equity_points: int = 5000, fills_limit: int = 500) -> BotDetail:
        """Summary, config, equity curve, fills, positions, open orders, events and performance."""
        with session_scope(self.sessions) as session:
            bot = self._get(session, name)
            summary = self._summary(session, bot)
            curve = repo.equity_curve(session, bot.id, limit=equity_points)
            closed = [p for p in repo.positions(session, bot.id, limit=100_000) if p.status == "closed"]
            closed.sort(key=lambda p: (p.closed_at, p.id))
            equity = np.array([float(s.equity) for s in curve], dtype=np.float64)
            pnls = np.array([float(p.realised_pnl - p.fees) for p in closed], dtype=np.float64)
            unrealised = float(curve[-1].unrealised_pnl) if curve else 0.0
            perf = summarize(equity, pnls, starting_equity=float(bot.starting_balance),
                             bar_ms=Timeframe(bot.timeframe).ms, realised_pnl=float(bot.realised_pnl),
                             unrealised_pnl=unrealised, fees_paid=float(bot.fees_paid))
            return BotDetail(
                summary=summary, config=dict(bot.config),
                equity_curve=[(datetime_to_ms(s.ts), float(s.equity)) for s in curve],
                fills=[_fill_dict(f) for f in repo.fills(session, bot.id, limit=fills_limit)],
                positions=[_position_dict(p) for p in repo.positions(session, bot.id)],
                open_orders=[_order_dict(o) for o in repo.orders(session, bot.id, status="open")],
                events=[{"ts_ms": datetime_to_ms(e.ts), "level": e.level, "kind": e.kind, "message": e.message,
                         "candle_time_ms": None if e.candle_time is None else datetime_to_ms(e.candle_time),
                         "data": e.data} for e in repo.events(session, bot.id)],
                performance=perf.to_dict(),
            )

    def _get(self, session: Session, name: str) -> Bot:
        bot = repo.get_bot(session, name)
        if bot is None:
            known = ", ".join(b.name for b in repo.list_bots(session)) or "none"
            raise ConfigurationError(f"no bot named {name!r} (bots: {known})", field="name")
        return bot

    def _summary(self, session: Session, bot: Bot, position: Any = None, signal: Any = None,
                 looked_up: bool = False) -> BotSummary:
        if not looked_up:
            position = repo.open_position(session, bot.id)
            signal = repo.last_signals(session, [bot.id]).get(bot.id)
        start = Decimal(bot.starting_balance)
        equity = Decimal(bot.equity)
        return BotSummary(
            name=bot.name, status=bot.status, status_reason=bot.status_reason, exchange=bot.exchange,
            symbol=bot.symbol, timeframe=bot.timeframe, strategy=bot.strategy, starting_balance=start,
            balance=Decimal(bot.balance), equity=equity, pnl=equity - start,
            return_pct=float((equity / start - 1) * 100) if start else 0.0,
            realised_pnl=Decimal(bot.realised_pnl), fees_paid=Decimal(bot.fees_paid),
            position_side=None if position is None else position.side,
            position_quantity=Decimal(0) if position is None else Decimal(position.quantity),
            position_entry_price=None if position is None else Decimal(position.entry_price),
            last_signal=None if signal is None else signal.signal_type,
            last_signal_time_ms=None if signal is None else datetime_to_ms(signal.candle_time),
            last_candle_time_ms=None if bot.last_candle_time is None else datetime_to_ms(bot.last_candle_time),
        )


def _fill_dict(f: Any) -> dict[str, Any]:
    return {"ts_ms": datetime_to_ms(f.ts), "side": f.side, "quantity": f.quantity, "price": f.price, "fee": f.fee,
            "liquidity": f.liquidity, "slippage_bps": f.slippage_bps, "realised_pnl": f.realised_pnl,
            "position_after": f.position_after, "balance_after": f.balance_after, "reason": f.reason}


def _position_dict(p: Any) -> dict[str, Any]:
    return {"side": p.side, "quantity": p.quantity, "entry_price": p.entry_price, "status": p.status,
            "stop_loss": p.stop_loss, "take_profit": p.take_profit, "fees": p.fees, "realised_pnl": p.realised_pnl,
            "exit_price": p.exit_price, "exit_reason": p.exit_reason, "opened_at_ms": datetime_to_ms(p.opened_at),
            "closed_at_ms": None if p.closed_at is None else datetime_to_ms(p.closed_at)}


def _order_dict(o: Any) -> dict[str, Any]:
    return {"client_order_id": o.client_order_id, "side": o.side, "order_type": o.order_type,
            "quantity": o.quantity, "limit_price": o.limit_price, "status": o.status, "reason": o.reason,
            "candle_time_ms": None if o.candle_time is None else datetime_to_ms(o.candle_time)}
