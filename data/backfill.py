"""REST backfill: repairs the collector's gaps, and the ``backfill`` command (I/O shells).

A repair (see :class:`~data.engine.RepairRequest`) fetches the complete minutes before the first
live minute at once, waits until that first minute is complete (the stream saw only part of it),
fetches it, and hands everything to the engine, which emits the minutes in order, releases the live
minutes it held back and rolls up the higher timeframes. REST failures are retried with back-off; a
repair that still fails is applied with what it has (the gap is logged and counted).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from config.domain import Candle, Timeframe
from config.errors import MalformedMessageError, TemporaryError
from data.bars import MINUTE_MS, rollup
from data.binance.frames import BinanceRestError
from data.engine import CandleEngine, RepairRequest
from data.okx.frames import OkxRestError, WireTrade
from data.venues import MarketRest
from database.engine import make_session_factory, session_scope
from database.repositories.market import get_candles, upsert_candles

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
INITIAL_LOOKBACK_MS = DAY_MS  # history fetched for a symbol with nothing stored (floored to UTC midnight)
REST_ERRORS = (TemporaryError, OkxRestError, BinanceRestError, MalformedMessageError)


@dataclass
class BackfillStats:
    repairs_done: int = 0
    repairs_failed: int = 0
    minutes_fetched: int = 0
    last_repair_ms: int = 0
    trades_backfilled: int = 0
    trade_gaps_filled: int = 0
    trade_gaps_unfilled: int = 0  # REST history no longer reached back, or kept failing


class Backfiller:
    """Runs repairs as tasks; ``on_applied`` is called after the engine took a repair's candles."""

    def __init__(self, rest: MarketRest, engine: CandleEngine, on_applied: Callable[[], None], *,
                 initial_lookback_ms: int = INITIAL_LOOKBACK_MS, ready_delay: float = 1.0,
                 last_minute_attempts: int = 5, attempts: int = 6, max_ready_wait: float = 180.0,
                 on_event: Callable[[str, str, dict[str, object]], None] | None = None) -> None:
        self.rest = rest
        self.engine = engine
        self.on_applied = on_applied
        self.initial_lookback_ms = initial_lookback_ms
        self.ready_delay = ready_delay
        self.last_minute_attempts = last_minute_attempts
        self.attempts = attempts
        self.max_ready_wait = max_ready_wait
        self.on_event = on_event
        self.stats: dict[str, BackfillStats] = {s: BackfillStats() for s in engine.symbols}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._trade_tasks: set[asyncio.Task[None]] = set()

    def submit(self, request: RepairRequest) -> None:
        old = self._tasks.get(request.symbol)
        if old is not None and not old.done():
            old.cancel()
        self._tasks[request.symbol] = asyncio.create_task(self._repair(request), name=f"repair {request.symbol}")

    def submit_trades(self, symbol: str, after_id: int, before_id: int,
                      sink: Callable[[str, Sequence[WireTrade]], None]) -> None:
        """Fetch the raw trades of a stream gap (``after_id < id < before_id``) and hand them to ``sink``
        (the writer: upserts, so a trade stored twice is stored once)."""
        task = asyncio.create_task(self._trades(symbol, after_id, before_id, sink), name=f"trades {symbol}")
        self._trade_tasks.add(task)
        task.add_done_callback(self._trade_tasks.discard)

    async def _trades(self, symbol: str, after_id: int, before_id: int,
                      sink: Callable[[str, Sequence[WireTrade]], None]) -> None:
        stats = self.stats[symbol]
        trades: list[WireTrade] = []
        complete = False
        error = ""
        for attempt in range(self.attempts):
            try:
                trades, complete = await self.rest.trades_between(symbol, after_id, before_id)
                break
            except REST_ERRORS as exc:
                error = str(exc)[:300]
                await asyncio.sleep(min(10.0, 0.5 * 2 ** attempt))
        if trades:
            sink(symbol, trades)
        stats.trades_backfilled += len(trades)
        data: dict[str, object] = {"symbol": symbol, "after_trade_id": after_id, "before_trade_id": before_id,
                                   "trades": len(trades)}
        if complete:
            stats.trade_gaps_filled += 1
            if self.on_event is not None:
                self.on_event("INFO", f"{symbol}: backfilled {len(trades)} raw trades of a stream gap", data)
            return
        stats.trade_gaps_unfilled += 1
        oldest = trades[0].tradeId if trades else before_id
        data["missing_before_trade_id"] = oldest
        log.warning("backfill: raw trades of a gap could not all be fetched", extra={**data, "error": error})
        if self.on_event is not None:
            reason = f"REST failed: {error}" if error else "REST history does not reach back that far"
            self.on_event("WARNING", f"{symbol}: raw trades {after_id + 1}..{oldest - 1} lost ({reason}); "
                          f"{len(trades)} of the gap backfilled", data)

    async def close(self) -> None:
        for task in (*self._tasks.values(), *self._trade_tasks):
            task.cancel()
        for task in (*self._tasks.values(), *self._trade_tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass

    def start_of(self, request: RepairRequest) -> int:
        if request.start_ms is not None:
            return request.start_ms
        day = request.live_minute_ms - request.live_minute_ms % DAY_MS
        return day - (self.initial_lookback_ms + DAY_MS - 1) // DAY_MS * DAY_MS

    async def _repair(self, request: RepairRequest) -> None:
        symbol, m1 = request.symbol, request.live_minute_ms
        start = self.start_of(request)
        candles: list[Candle] = []
        ok = True
        try:
            if start < m1:
                candles.extend(await self._fetch(symbol, start, m1))
            waited = time.monotonic()
            while not self.engine.repair_ready(request):
                if time.monotonic() - waited > self.max_ready_wait:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(self.ready_delay)
            for attempt in range(self.last_minute_attempts):
                last = await self._fetch(symbol, m1, m1 + MINUTE_MS)
                if last:
                    candles.extend(last)
                    break
                await asyncio.sleep(0.5 * (attempt + 1))
        except REST_ERRORS as exc:
            ok = False
            log.warning("backfill: REST failed; applying what was fetched",
                        extra={"symbol": symbol, "error": str(exc)[:300]})
        if not self.engine.apply_repair(request, candles, start_ms=start):
            return  # a newer reconnect superseded this repair
        stats = self.stats[symbol]
        stats.minutes_fetched += len(candles)
        stats.last_repair_ms = int(time.time() * 1000)
        if ok:
            stats.repairs_done += 1
        else:
            stats.repairs_failed += 1
        if self.on_event is not None:
            level = "INFO" if ok else "WARNING"
            text = (f"{symbol}: backfilled {len(candles)} 1m candles" if ok
                    else f"{symbol}: backfill failed, gap left with {len(candles)} candles fetched")
            self.on_event(level, text, {"symbol": symbol, "start_ms": start, "end_ms": request.end_ms})
        self.on_applied()

    async def _fetch(self, symbol: str, start: int, end: int) -> list[Candle]:
        last: Exception | None = None
        for attempt in range(self.attempts):
            try:
                return await self.rest.minute_candles(symbol, start, end)
            except REST_ERRORS as exc:
                last = exc
                await asyncio.sleep(min(10.0, 0.5 * 2 ** attempt))
        raise TemporaryError(f"history-candles for {symbol} failed {self.attempts} times: {last}")


async def backfill_range(rest: MarketRest, engine: Engine, symbol: str, start_ms: int, end_ms: int,
                         timeframes: Sequence[Timeframe], exchange: str = "okx") -> dict[Timeframe, int]:
    """Fetch 1m candles for ``[start_ms, end_ms)``, upsert them, and roll up every higher timeframe
    bucket that the range touches and that is complete by ``end_ms`` (reading neighbouring stored
    minutes). Returns rows written per timeframe."""
    minutes = await rest.minute_candles(symbol, start_ms, end_ms)
    factory = make_session_factory(engine)
    written = {Timeframe.M1: 0}

    def store() -> None:
        with session_scope(factory) as session:
            written[Timeframe.M1] = upsert_candles(session, minutes)
        for tf in sorted(set(timeframes) - {Timeframe.M1}, key=lambda t: t.ms):
            lo, hi = tf.floor(start_ms), tf.floor(end_ms)  # buckets complete by end_ms
            with session_scope(factory) as session:
                stored = get_candles(session, exchange, symbol, Timeframe.M1, lo, hi)
                rolled = [c for c in rollup(stored, tf) if lo <= c.open_time_ms < hi]
                written[tf] = upsert_candles(session, rolled)

    await asyncio.to_thread(store)
    return written
