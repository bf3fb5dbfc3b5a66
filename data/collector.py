"""The collector: a venue's trade stream (OKX, Binance: :mod:`data.venues`) -> candle engine -> storage
writer -> bus, with REST repairs and health.

Ordering: a closed candle is written to the database first and published after the commit
(:mod:`data.writer`); forming candles go straight to the bus. On stop, inputs stop first, then the
writer flushes, then the publisher drains, then a final health report says "stopped".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.domain import DEFAULT_TIMEFRAMES, Timeframe
from data.backfill import INITIAL_LOOKBACK_MS, Backfiller
from data.bars import MINUTE_MS
from data.bookkeeper import BookKeeper
from data.bus import Bus
from data.engine import DEFAULT_GRACE_MS, CandleEngine
from data.health import HealthReporter, Report, collector_component
from data.market_state import STATE_EXCHANGES, MarketStateKeeper, make_state_stream, perpetuals
from data.okx.frames import WireTrade
from data.publisher import CandlePublisher
from data.streams import ChannelStream, StreamState, now_ms
from data.venues import check_exchange, make_book_stream, make_rest, make_stream
from data.writer import StorageWriter
from database.engine import make_engine, make_session_factory, session_scope
from database.repositories.market import get_candles, latest_candle_time_ms
from database.repositories.trade_ids import latest_trade_id

if TYPE_CHECKING:
    from data.binance.depth import BinanceBookStream
    from data.okx.books import OkxBookStream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectorConfig:
    symbols: tuple[str, ...]
    ws_url: str
    rest_url: str
    database_url: str
    timeframes: tuple[Timeframe, ...] = DEFAULT_TIMEFRAMES
    exchange: str = "okx"  # see data/venues.py
    perp_ws_url: str | None = None  # Binance: the USDⓈ-M socket and REST (OKX serves swaps on ws_url)
    perp_rest_url: str | None = None
    store_trades: bool = True
    trade_retention_days: int | None = 7
    grace_ms: int = DEFAULT_GRACE_MS
    tick_s: float = 0.25
    flush_interval_s: float = 0.2
    health_interval_s: float = 5.0
    ping_after_s: float = 5.0  # silence before a ping: also how soon a quiet market's minute can close
    pong_timeout_s: float = 10.0
    initial_lookback_ms: int = INITIAL_LOOKBACK_MS
    repair_ready_delay_s: float = 1.0
    durable_commits: bool = False  # see data/writer.py: async commits + rewrite after a failure
    books: bool = False  # keep each market's order book (venues in data.venues.BOOK_EXCHANGES)
    market_state: bool = False  # funding, open interest, liquidations of the -SWAP symbols (data.market_state)
    book_depth: int = 20
    book_snapshot_s: float = 10.0
    okx_book_channel: str = "books"  # or books5
    component_suffix: str = ""  # ".binance": this collector's writer/bus/books/market_state health names, when
    #                             several venues' collectors share a process (data.service.run_venues)


class Collector:
    def __init__(self, config: CollectorConfig, bus: Bus) -> None:
        if not config.symbols:
            raise ValueError("the collector needs at least one symbol")
        check_exchange(config.exchange)
        self.config = config
        self.bus = bus
        self.db = make_engine(config.database_url)
        self.engine = CandleEngine(config.symbols, config.timeframes, exchange=config.exchange,
                                   grace_ms=config.grace_ms)
        self.publisher = CandlePublisher(bus)
        self.health = HealthReporter(self.db, bus, self._health, interval=config.health_interval_s)
        self.writer = StorageWriter(self.db, exchange=config.exchange, store_trades=config.store_trades,
                                    flush_interval=config.flush_interval_s,
                                    trade_retention_days=config.trade_retention_days,
                                    durable_commits=config.durable_commits,
                                    on_stored=self.publisher.closed,
                                    on_event=lambda lvl, msg, data: self.health.event(
                                        "writer" + config.component_suffix, lvl, msg, data))
        self.rest = make_rest(config.exchange, config.rest_url, config.perp_rest_url)
        self.backfiller = Backfiller(self.rest, self.engine, self._drain,
                                     initial_lookback_ms=config.initial_lookback_ms,
                                     ready_delay=config.repair_ready_delay_s, on_event=self._symbol_event)
        self.stream = make_stream(config.exchange, config.ws_url, config.symbols, self._on_trades,
                                  perp_ws_url=config.perp_ws_url, on_subscribed=self.engine.on_connected,
                                  on_disconnected=self._on_disconnected, flow=self.writer.flow,
                                  ping_after=config.ping_after_s, pong_timeout=config.pong_timeout_s)
        self.books: BookKeeper | None = None
        self.book_stream: BinanceBookStream | OkxBookStream | None = None
        if config.books:
            self.books = BookKeeper(config.exchange, bus, self.db, depth=config.book_depth,
                                    snapshot_interval_s=config.book_snapshot_s)
            self.book_stream = make_book_stream(config.exchange, config.ws_url, self.rest, config.symbols,
                                                self.books.on_book, perp_ws_url=config.perp_ws_url,
                                                okx_channel=config.okx_book_channel)
        self.market_state: MarketStateKeeper | None = None
        self.state_stream: ChannelStream | None = None
        swaps = perpetuals(config.symbols)
        if config.market_state and swaps and config.exchange in STATE_EXCHANGES:
            url = config.ws_url if config.exchange == "okx" else config.perp_ws_url
            if url is None:
                raise ValueError(f"funding, open interest and liquidations on {config.exchange} need the perpetuals' "
                                 "socket URL")
            self.market_state = MarketStateKeeper(config.exchange, bus, self.db)
            self.state_stream = make_state_stream(config.exchange, url, swaps, self.market_state.on_messages)
        self._store_trades = config.store_trades
        self._symbols = frozenset(config.symbols)
        self._last_counts: dict[str, int] = {}
        self._last_frames = 0
        self._exchange_sample: tuple[int, int] | None = None  # (exchange time, wall ms when it was taken)
        self._last_ids: dict[str, int] = {}  # the newest trade id seen per symbol
        self._trade_gap_from: dict[str, int | None] = {}  # a stream gap opened after this id

    # ------------------------------------------------------------------ hot path

    def _on_trades(self, symbol: str, trades: list[WireTrade], received_ms: int) -> None:
        engine = self.engine
        engine.on_trades(symbol, trades, received_ms)
        if self._store_trades and symbol in self._symbols:
            self.writer.add_trades(symbol, trades)
            if self._trade_gap_from and symbol in self._trade_gap_from:
                self._trade_gap_closed(symbol, trades)
            self._last_ids[symbol] = trades[-1].tradeId
        if engine.has_output:
            self._drain()

    def _drain(self) -> None:
        out = self.engine.drain()
        if out.closed:
            self.writer.add_candles(out.closed)
        for request in out.repairs:
            self.backfiller.submit(request)

    def _trade_gap_closed(self, symbol: str, trades: list[WireTrade]) -> None:
        """The first push after a gap: fetch the raw trades the stream missed from REST."""
        after = self._trade_gap_from.pop(symbol)
        first = min(t.tradeId for t in trades)
        if after is not None and first > after + 1:
            self.backfiller.submit_trades(symbol, after, first, self.writer.add_trades)

    def _on_disconnected(self, symbols: Sequence[str]) -> None:
        for symbol in symbols:
            self.engine.on_disconnected(symbol)
            if symbol not in self._trade_gap_from:
                self._trade_gap_from[symbol] = self._last_ids.get(symbol)

    def _symbol_event(self, level: str, message: str, data: dict[str, object]) -> None:
        symbol = str(data.get("symbol", ""))
        self.health.event(collector_component(self.config.exchange, symbol), level, message, data)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Collect until ``stop`` is set; then flush what is buffered and return."""
        await asyncio.to_thread(self._seed)
        inputs_stop, writer_stop, publisher_stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
        writer = asyncio.create_task(self.writer.run(writer_stop), name="writer")
        publisher = asyncio.create_task(self.publisher.run(publisher_stop), name="publisher")
        inputs = [
            asyncio.create_task(self.stream.run(inputs_stop), name=f"{self.config.exchange} stream"),
            asyncio.create_task(self._tick(inputs_stop), name="engine clock"),
            asyncio.create_task(self.health.run(inputs_stop), name="health"),
            asyncio.create_task(self._exchange_clock(inputs_stop), name="exchange clock"),
        ]
        if self.market_state is not None and self.state_stream is not None:
            inputs += [asyncio.create_task(self.state_stream.run(inputs_stop), name="market state stream"),
                       asyncio.create_task(self.market_state.run(inputs_stop), name="market state")]
        if self.books is not None and self.book_stream is not None:
            inputs += [asyncio.create_task(self.book_stream.run(inputs_stop), name="book stream"),
                       asyncio.create_task(self.books.run(inputs_stop), name="books")]
        log.info("collector: started", extra={"symbols": ",".join(self.config.symbols),
                                              "ws": self.config.ws_url, "rest": self.config.rest_url})
        try:
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([stopper, *inputs], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    log.error("collector: task failed", exc_info=task.exception())
            stopper.cancel()
        finally:
            inputs_stop.set()
            for task in inputs:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 5.0)
            await self.backfiller.close()
            self._drain()
            writer_stop.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
            publisher_stop.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(publisher, 10.0)
            with contextlib.suppress(Exception):
                await self.health.report(self.config.health_interval_s, final_status="stopped")
            await self.rest.close()
            self.db.dispose()
            log.info("collector: stopped", extra={"candles_written": self.writer.stats.candles_written,
                                                  "trades_written": self.writer.stats.trades_written})

    def _seed(self) -> None:
        """Continue from what is stored: the engine's repairs start after the last stored minute."""
        factory = make_session_factory(self.db)
        widest = max(self.config.timeframes, key=lambda t: t.ms)
        with session_scope(factory) as session:
            for symbol in self.config.symbols:
                if self._store_trades:  # the trades a killed collector never stored come from REST
                    self._trade_gap_from[symbol] = latest_trade_id(session, self.config.exchange, symbol)
                last = latest_candle_time_ms(session, self.config.exchange, symbol, Timeframe.M1)
                if last is None:
                    continue
                through = last + MINUTE_MS
                minutes = get_candles(session, self.config.exchange, symbol, Timeframe.M1,
                                      widest.floor(through), through)
                self.engine.seed(symbol, minutes, through)

    async def _tick(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.tick_s)
            last_frame = self.stream.stats.last_frame_ms
            sample = self._exchange_sample
            exchange = sample[0] if sample is not None and last_frame > sample[1] else None
            updates = self.engine.on_clock(now_ms(), alive_ms=last_frame, exchange_ms=exchange)
            if updates:
                self.publisher.updates(updates)
            if self.engine.has_output:
                self._drain()

    async def _exchange_clock(self, stop: asyncio.Event, quiet_ms: int = 1_000) -> None:
        """While the stream is quiet, sample the exchange's time (REST ``public/time``; a replay answers with
        its market clock) and ping: once a frame arrives after the sample, the engine's clock may use it.
        A stalled socket never answers, so it never closes a minute this way."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), quiet_ms / 1000)
            if stop.is_set() or not self.stream.stats.connected:
                continue
            if now_ms() - self.stream.stats.last_frame_ms < quiet_ms:
                continue
            try:
                exchange = await self.rest.server_time_ms()
            except Exception:  # noqa: BLE001 - only an optimisation of the clock; the stream decides
                continue
            taken = now_ms()
            if await self.stream.ping_now():
                self._exchange_sample = (exchange, taken)

    # ------------------------------------------------------------------ health

    def _health(self, elapsed: float) -> Report:
        reports: Report = {}
        now = now_ms()
        stream = self.stream.stats
        frames_rate = (stream.frames - self._last_frames) / elapsed
        self._last_frames = stream.frames
        for symbol in self.config.symbols:
            st = self.engine.stats(symbol)
            bf = self.backfiller.stats[symbol]
            state = self.stream.state[symbol]
            rate = (st.trades - self._last_counts.get(symbol, 0)) / elapsed
            self._last_counts[symbol] = st.trades
            pending = self.engine.pending_repair(symbol)
            if state is StreamState.SUBSCRIBED:
                status = "degraded" if pending is not None else "ok"
            elif state in (StreamState.CONNECTING, StreamState.SUBSCRIBING):
                status = "degraded"
            else:
                status = "down"
            data: dict[str, Any] = {
                "state": state.value, "last_trade_ms": st.last_trade_ms or None,
                "last_received_ms": st.last_received_ms or None, "trades_per_s": round(rate, 2),
                "connection_frames_per_s": round(frames_rate, 2), "reconnects": stream.reconnects,
                "gaps_backfilled": bf.repairs_done, "backfill_failures": bf.repairs_failed,
                "minutes_backfilled": bf.minutes_fetched, "unrepaired_minutes": st.unrepaired_minutes,
                "repair_pending": pending is not None, "malformed_frames": dict(stream.malformed),
                "duplicates": st.duplicates, "late_revisions": st.late_revisions,
                "late_dropped": st.late_dropped, "trades": st.trades,
                "trades_backfilled": bf.trades_backfilled, "trade_gaps_filled": bf.trade_gaps_filled,
                "trade_gaps_unfilled": bf.trade_gaps_unfilled,
            }
            if self.book_stream is not None:
                data["book"] = self.book_stream.health(symbol)
            if state is StreamState.REJECTED and stream.errors:
                data["last_error"] = next((e for e in reversed(stream.errors) if e["symbol"] == symbol), None)
            reports[collector_component(self.config.exchange, symbol)] = (status, data)
        if self.books is not None and self.book_stream is not None:
            books = self.books.health()
            books["malformed_frames"] = dict(self.book_stream.stats.malformed)
            books["reconnects"] = self.book_stream.stats.reconnects
            live = all(self.book_stream.live(s) for s in self.config.symbols)
            reports["books" + self.config.component_suffix] = ("ok" if live and books["db_ok"] else "degraded", books)
        if self.market_state is not None and self.state_stream is not None:
            state = self.market_state.health()
            stream_stats = self.state_stream.stats
            state |= {"connected": stream_stats.connected, "reconnects": stream_stats.reconnects,
                      "malformed_frames": dict(stream_stats.malformed)}
            ok = stream_stats.connected and state["db_ok"]
            reports["market_state" + self.config.component_suffix] = ("ok" if ok else "degraded", state)
        w = self.writer.stats
        reports["writer" + self.config.component_suffix] = ("ok" if w.db_ok else "down", {
            "db_ok": w.db_ok, "lag_ms": self.writer.lag_ms(), "candle_backlog": self.writer.candle_backlog,
            "trade_backlog": self.writer.trade_backlog, "candles_written": w.candles_written,
            "trades_written": w.trades_written, "candles_dropped": w.candles_dropped,
            "trades_dropped": w.trades_dropped, "outage_since_ms": w.outage_since_ms,
            # an error is reported while it lasts; once ok again it is history, not the current state
            "last_error": None if w.db_ok else w.last_error, "previous_error": w.last_error if w.db_ok else None,
            "last_write_ms": w.last_write_ms or None,
            "candles_rewritten": w.candles_rewritten, "trades_rewritten": w.trades_rewritten,
            "unflushed_batches": self.writer.unflushed,
        })
        b = self.bus.stats
        p = self.publisher.stats
        reports["bus" + self.config.component_suffix] = ("ok" if b.connected and not b.backlog else "degraded", {
            "kind": type(self.bus).__name__, "connected": b.connected, "backlog": b.backlog,
            "published": b.published, "dropped": b.dropped, "reconnects": b.reconnects,
            "last_error": None if b.connected else b.last_error,
            "previous_error": b.last_error if b.connected else None, "closed_published": p.closed_published,
            "updates_published": p.updates_published,
            "lag_ms": max(0, now - p.last_publish_ms) if self.publisher.backlog and p.last_publish_ms else 0,
        })
        return reports

