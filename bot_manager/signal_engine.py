"""The live signal engine: closed candles in, strategy signals out.

The pure core, :class:`SignalEngine`, keeps one :class:`~strategies.live.LiveWindow` per
(exchange, symbol, timeframe) and runs every strategy instance registered on that market when a
closed candle arrives (:meth:`SignalEngine.on_candle`). It does no I/O: no bus, no database, no clock.

The async shell, :class:`SignalEngineService`, subscribes to closed candles on the bus, loads each
market's warm-up from the database, publishes signals on ``signals.<exchange>.<symbol>.<timeframe>``,
stores them in the ``signals`` table and reports health as component ``signal_engine``.

Rules:

* A candle with the same open time as the window's last row replaces it (a revised candle); it is
  never appended twice. The signal is re-emitted only if the verdict changed (a correction, stored
  over the first one). Revisions of older rows update the window silently.
* Non-HOLD signals are emitted; HOLD only every ``hold_every``-th evaluated candle per instance
  (0 = never) or as a correction.
* A strategy that raises is isolated: the error is logged, the instance is marked ``failed`` and no
  longer evaluated (re-add it to retry), the other instances keep running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from bot_manager.market_inputs import attach_stored_inputs
from config.domain import Candle, SignalEvent, SignalType, Timeframe
from config.errors import ConfigurationError, StrategyError
from data import messages, topics
from data.bus import Bus
from database.engine import session_scope
from database.repositories import market, ops
from database.repositories import signals as signals_repo
from strategies.bars import ANCHOR_MS, Bars
from strategies.base import BaseStrategy
from strategies.guard import safe_signal_at_end
from strategies.live import Added, LiveWindow

log = logging.getLogger(__name__)

COMPONENT = "signal_engine"
MarketKey = tuple[str, str, Timeframe]
# a window -> the window with the inputs attached, or None when they cannot be read now (that candle is skipped)
InputSource = Callable[[MarketKey, Bars, tuple[str, ...]], Bars | None]


@dataclass(slots=True)
class _Instance:
    source: str
    strategy: BaseStrategy
    market: MarketKey
    evaluated: int = 0
    emitted: int = 0
    last_time: int | None = None
    last_type: SignalType | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """One instance as health reports show it; ``state`` is ``running`` or ``failed``."""

    source: str
    strategy: str
    exchange: str
    symbol: str
    timeframe: Timeframe
    state: str
    evaluated: int
    emitted: int
    last_candle_ms: int | None
    error: str | None


@dataclass(slots=True)
class _Market:
    window: LiveWindow
    instances: list[_Instance] = field(default_factory=list)
    needs_warmup: bool = True


class SignalEngine:
    """Strategy instances per market and their rolling candle windows (the pure core)."""

    def __init__(self, hold_every: int = 0, inputs: InputSource | None = None) -> None:
        if hold_every < 0:
            raise ValueError(f"hold_every must be >= 0, got {hold_every}")
        self.hold_every = hold_every
        self.inputs = inputs
        """Attaches the market inputs a strategy reads (``strategy.inputs``) to a window; without it such a
        strategy is isolated with an error saying so."""
        self.inputs_unavailable = 0
        """Evaluations skipped because the inputs could not be read (a database outage)."""
        self._markets: dict[MarketKey, _Market] = {}
        self._instances: dict[str, _Instance] = {}
        self.failures = 0
        """How many instances have failed so far (cheap to poll after each candle)."""

    # -- registration ------------------------------------------------------------------------------
    def add_instance(self, source: str, strategy: BaseStrategy, exchange: str, symbol: str,
                     timeframe: Timeframe | str) -> None:
        """Run ``strategy`` on every closed candle of the market; ``source`` names it in signals
        (``bot:<name>`` for bots) and must be unique."""
        if source in self._instances:
            raise ConfigurationError(f"a strategy instance named {source!r} is already registered",
                                     source=COMPONENT, field="source")
        key: MarketKey = (exchange, symbol, Timeframe(timeframe))
        instance = _Instance(source, strategy, key)
        market_state = self._markets.get(key)
        if market_state is None:
            market_state = _Market(LiveWindow(strategy.history, ANCHOR_MS // key[2].ms))
            self._markets[key] = market_state
        elif strategy.history > market_state.window.keep:
            market_state.window.set_keep(strategy.history)
            market_state.needs_warmup = True  # rows it needs may already have been trimmed
        market_state.instances.append(instance)
        self._instances[source] = instance

    def remove_instance(self, source: str) -> None:
        """Stop running the instance ``source`` (unknown sources are ignored)."""
        instance = self._instances.pop(source, None)
        if instance is None:
            return
        market_state = self._markets[instance.market]
        market_state.instances.remove(instance)
        if not market_state.instances:
            del self._markets[instance.market]

    def markets(self) -> list[MarketKey]:
        return list(self._markets)

    def statuses(self) -> list[InstanceStatus]:
        return [
            InstanceStatus(i.source, i.strategy.name, *i.market, "failed" if i.error else "running",
                           i.evaluated, i.emitted, i.last_time, i.error)
            for i in self._instances.values()
        ]

    # -- warm-up -----------------------------------------------------------------------------------
    def warmup_needed(self) -> list[tuple[MarketKey, int]]:
        """Markets whose window should be (re)loaded from stored candles, with how many rows."""
        return [(key, m.window.keep + m.window.bars_per_day) for key, m in self._markets.items()
                if m.needs_warmup]

    def seed(self, exchange: str, symbol: str, timeframe: Timeframe | str, bars: Bars) -> None:
        """Replace a market's window with stored candles (ascending, closed); emits nothing. Empty
        ``bars`` keep the window as it is."""
        key: MarketKey = (exchange, symbol, Timeframe(timeframe))
        market_state = self._markets.get(key)
        if market_state is None:
            return
        if len(bars):
            market_state.window.seed(bars)
        market_state.needs_warmup = False

    # -- the hot path ------------------------------------------------------------------------------
    def on_candle(self, candle: Candle) -> list[SignalEvent]:
        """Add a closed candle to its market's window and return the signals to publish."""
        key: MarketKey = (candle.exchange, candle.symbol, candle.timeframe)
        market_state = self._markets.get(key)
        if market_state is None or not candle.closed:
            return []
        market_state.needs_warmup = False
        added = market_state.window.add(
            candle.open_time_ms, (candle.open, candle.high, candle.low, candle.close, candle.volume))
        if added not in (Added.APPENDED, Added.REPLACED_LAST):
            return []
        bars = market_state.window.bars()
        with_inputs: dict[tuple[str, ...], Bars] = {}
        events: list[SignalEvent] = []
        for instance in market_state.instances:
            if instance.error is None:
                names = instance.strategy.inputs
                if names and names not in with_inputs:
                    if self.inputs is None:
                        self._isolate(instance, f"strategy {instance.strategy.name!r} reads {', '.join(names)} "
                                                "and this engine has no database to read them from")
                        continue
                    attached = self.inputs(key, bars, names)
                    if attached is None:
                        self.inputs_unavailable += 1
                        continue
                    with_inputs[names] = attached
                event = self._evaluate(instance, with_inputs[names] if names else bars, candle.open_time_ms)
                if event is not None:
                    events.append(event)
        return events

    def _isolate(self, instance: _Instance, error: str) -> None:
        instance.error = error
        self.failures += 1
        log.error("signal engine: %s isolated: %s", instance.source, error)

    def _evaluate(self, instance: _Instance, bars: Bars, time_ms: int) -> SignalEvent | None:
        try:
            signal = safe_signal_at_end(instance.strategy, bars)
        except StrategyError as exc:
            self._isolate(instance, str(exc))
            return None
        repeat = instance.last_time == time_ms
        if repeat and instance.last_type == signal.signal_type:
            return None
        if not repeat:
            instance.evaluated += 1
        instance.last_time, instance.last_type = time_ms, signal.signal_type
        sampled_hold = self.hold_every > 0 and instance.evaluated % self.hold_every == 0
        if signal.signal_type is SignalType.HOLD and not (repeat or sampled_hold):
            return None
        instance.emitted += 1
        exchange, symbol, timeframe = instance.market
        return SignalEvent(
            source=instance.source, strategy=instance.strategy.name, exchange=exchange, symbol=symbol,
            timeframe=timeframe, candle_time_ms=time_ms, signal_type=signal.signal_type,
            strength=signal.strength, reason=signal.reason,
            price=signal.price if signal.price is not None else float(bars.close[-1]),
            params=dict(instance.strategy.params),
        )


def bars_from_candles(candles: Sequence[Candle]) -> Bars:
    """Candles (ascending) as :class:`Bars`."""
    return Bars(
        np.fromiter((c.open_time_ms for c in candles), dtype=np.int64, count=len(candles)),
        *(np.fromiter((getattr(c, f) for c in candles), dtype=np.float64, count=len(candles))
          for f in ("open", "high", "low", "close", "volume")),
    )


class SignalEngineService:
    """The async shell around a :class:`SignalEngine`: bus in, bus + database out, health."""

    def __init__(self, engine: SignalEngine, session_factory: sessionmaker[Session] | None,
                 health_interval: float = 10.0, max_pending: int = 100_000) -> None:
        self.engine = engine
        self._sessions = session_factory
        if session_factory is not None and engine.inputs is None:
            engine.inputs = self._read_inputs
        self._health_interval = health_interval
        self._pending: list[SignalEvent] = []
        self._max_pending = max_pending
        self.candles_seen = 0
        self.signals_published = 0
        self.malformed = 0
        self.store_errors = 0
        self._failures_reported = 0
        self.ready = asyncio.Event()
        """Set once :meth:`run` is subscribed and the windows are warmed up."""

    async def run(self, bus: Bus, stop_event: asyncio.Event) -> None:
        """Process closed candles until ``stop_event`` is set."""
        subscription = await bus.subscribe(topics.pattern(topics.CANDLES))
        await self._warm_up()
        self.ready.set()
        next_health = time.monotonic()
        try:
            while not stop_event.is_set():
                item = await subscription.get(timeout=0.5)
                if item is not None:
                    await self.handle(bus, item[1])
                if time.monotonic() >= next_health:
                    await self._report_health()
                    next_health = time.monotonic() + self._health_interval
        finally:
            await subscription.close()
            await self._store([])
            await self._report_health()

    async def handle(self, bus: Bus, message: dict[str, Any]) -> list[SignalEvent]:
        """One candle message: warm up if needed, evaluate, publish, store."""
        try:
            candle = messages.candle_from_message(message)
        except (KeyError, TypeError, ValueError) as exc:
            self.malformed += 1
            log.warning("signal engine: dropped a malformed candle message (%s)", exc)
            return []
        self.candles_seen += 1
        if self.engine.warmup_needed():
            await self._warm_up(before_ms=candle.open_time_ms)
        events = self.engine.on_candle(candle)
        for event in events:
            await bus.publish(topics.signals(event.exchange, event.symbol, event.timeframe),
                              messages.signal_to_message(event))
        self.signals_published += len(events)
        if events:
            await self._store(events)
        if self.engine.failures != self._failures_reported:
            await self._report_health()
        return events

    async def _warm_up(self, before_ms: int | None = None) -> None:
        """Load each market's window from stored candles; without a database (or when reading fails)
        the market starts cold and warms up from the stream."""
        for (exchange, symbol, timeframe), rows in self.engine.warmup_needed():
            candles: list[Candle] = []
            if self._sessions is not None:
                try:
                    candles = await asyncio.to_thread(self._load, exchange, symbol, timeframe, rows, before_ms)
                except Exception as exc:  # noqa: BLE001 - start cold rather than not at all
                    log.warning("signal engine: warm-up of %s %s %s failed (%s); starting cold",
                                exchange, symbol, timeframe.value, exc)
            self.engine.seed(exchange, symbol, timeframe, bars_from_candles(candles))
            log.info("signal engine: warmed up %s %s %s with %d candles", exchange, symbol, timeframe.value,
                     len(candles))

    def _load(self, exchange: str, symbol: str, timeframe: Timeframe, rows: int,
              before_ms: int | None) -> list[Candle]:
        assert self._sessions is not None
        with session_scope(self._sessions) as session:
            if before_ms is None:
                return market.get_candles(session, exchange, symbol, timeframe, limit=rows)
            # Everything strictly before the incoming candle; the candle itself arrives next.
            start = before_ms - rows * timeframe.ms
            found = market.get_candles(session, exchange, symbol, timeframe, start, before_ms)
            return found[-rows:]

    def _read_inputs(self, key: MarketKey, bars: Bars, names: tuple[str, ...]) -> Bars | None:
        assert self._sessions is not None
        try:
            with session_scope(self._sessions) as session:
                return attach_stored_inputs(session, key[0], key[1], key[2].ms, bars, names)
        except Exception as exc:  # noqa: BLE001 - a database outage: skip this candle, not the strategy
            log.warning("signal engine: market inputs of %s %s unreadable (%s); candle skipped", key[0], key[1], exc)
            return None

    async def _store(self, events: list[SignalEvent]) -> None:
        if self._sessions is None:
            return
        batch = [*self._pending, *events]
        if not batch:
            return
        try:
            await asyncio.to_thread(self._write, batch)
            self._pending = []
        except Exception as exc:  # noqa: BLE001 - the database may be down; keep and retry
            self.store_errors += 1
            self._pending = batch[-self._max_pending:]
            log.warning("signal engine: storing %d signal(s) failed (%s); will retry", len(batch), exc)

    def _write(self, batch: list[SignalEvent]) -> None:
        assert self._sessions is not None
        with session_scope(self._sessions) as session:
            signals_repo.upsert_signals(session, batch)

    def health(self) -> tuple[str, dict[str, Any]]:
        statuses = self.engine.statuses()
        failed = [s for s in statuses if s.state == "failed"]
        status = "degraded" if failed or self._pending else "ok"
        return status, {
            "instances": len(statuses), "failed": len(failed), "markets": len(self.engine.markets()),
            "candles_seen": self.candles_seen, "signals_published": self.signals_published,
            "malformed_messages": self.malformed, "pending_writes": len(self._pending),
            "store_errors": self.store_errors,
            "errors": {s.source: s.error for s in failed},
        }

    async def _report_health(self) -> None:
        status, data = self.health()
        self._failures_reported = self.engine.failures
        if self._sessions is None:
            return
        try:
            await asyncio.to_thread(self._write_health, status, data)
        except Exception as exc:  # noqa: BLE001
            log.warning("signal engine: health report failed (%s)", exc)

    def _write_health(self, status: str, data: dict[str, Any]) -> None:
        assert self._sessions is not None
        with session_scope(self._sessions) as session:
            ops.record_health(session, COMPONENT, status, data)
