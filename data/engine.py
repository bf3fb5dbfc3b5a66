"""The candle engine: trades -> 1m candles -> higher timeframes, with gap repair (pure, injected clock).

* Buckets come from the **trade timestamp** floored to the UTC minute; nothing is bucketed by the
  wall clock. Only the 1m bar is updated per trade; 5m…1d are rolled up from final 1m candles.
* A 1m candle closes when a trade of a later minute arrives, or when the estimated exchange time
  (last trade time + wall time since it arrived) passes the minute end plus ``grace_ms``.
* The last closed minute stays revisable while the newest trade time is within ``grace_ms`` of its
  end: a late trade updates it and the candle (and the higher buckets holding it) is emitted again.
  Later trades for older minutes are dropped and counted. Duplicate trade ids are ignored.
* Minutes without trades produce no candle (live, backfill and replay REST alike).
* After every (re)connect, the first trade starts a **repair**: minutes from the last final minute
  through the first live minute (which the stream saw only partly) are taken from REST. Until the
  repair is applied, later live minutes are held back, so every channel stays in time order.

Outputs are collected and handed over by :meth:`CandleEngine.drain`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from config.domain import DEFAULT_TIMEFRAMES, Candle, Side, Timeframe, Trade
from data.bars import MINUTE_MS, MinuteBar, RollingBucket
from data.okx.frames import WireTrade

DEFAULT_GRACE_MS = 2_000
_NO_BAR = MinuteBar(0, -1, 1.0, 1.0, False)  # stands in while no minute is forming: start..end is empty
_NO_BAR.start = -MINUTE_MS - 1


@dataclass(frozen=True, slots=True)
class RepairRequest:
    """Fetch 1m candles ``[start_ms, end_ms)`` from REST; ``start_ms`` None = no history stored yet.

    The last minute, ``live_minute_ms``, was only partly seen live: fetch it once it is complete
    (:meth:`CandleEngine.repair_ready`).
    """

    symbol: str
    repair_id: int
    start_ms: int | None
    live_minute_ms: int

    @property
    def end_ms(self) -> int:
        return self.live_minute_ms + MINUTE_MS


@dataclass
class SymbolStats:
    trades: int = 0
    duplicates: int = 0
    late_revisions: int = 0
    late_dropped: int = 0
    repairs: int = 0
    repaired_minutes: int = 0
    unrepaired_minutes: int = 0
    last_trade_ms: int = 0
    last_received_ms: int = 0


@dataclass
class Drained:
    closed: list[Candle] = field(default_factory=list)
    repairs: list[RepairRequest] = field(default_factory=list)


class _Book:
    __slots__ = ("symbol", "cur", "prev", "max_id", "watermark", "watermark_recv", "trades", "connected", "resync",
                 "pending", "held", "partial", "final_through", "live_through", "buckets",
                 "closed_buckets", "dirty", "stats")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.cur: MinuteBar | None = None
        self.prev: MinuteBar | None = None  # last closed minute, revisable within the grace
        self.max_id = -1
        self.watermark = 0
        self.watermark_recv = 0
        self.trades = 0
        self.connected = True
        self.resync = False
        self.pending: RepairRequest | None = None
        self.held: list[Candle] = []
        self.partial: Candle | None = None  # the live (partial) view of the repair's last minute
        self.final_through: int | None = None  # every minute before this is final
        self.live_through = 0
        self.buckets: dict[Timeframe, RollingBucket] = {}
        self.closed_buckets: dict[Timeframe, RollingBucket] = {}  # the last closed bucket per timeframe
        self.dirty = False
        self.stats = SymbolStats()


class CandleEngine:
    """Builds candles for a fixed set of symbols. Not thread-safe; one event loop owns it."""

    def __init__(self, symbols: Iterable[str], timeframes: Sequence[Timeframe] = DEFAULT_TIMEFRAMES, *,
                 exchange: str = "okx", grace_ms: int = DEFAULT_GRACE_MS) -> None:
        self.exchange = exchange
        self.grace_ms = grace_ms
        self.higher = tuple(sorted((tf for tf in set(timeframes) if tf is not Timeframe.M1), key=lambda t: t.ms))
        self._books = {s: _Book(s) for s in symbols}
        self._out = Drained()
        self.has_output = False  # True when drain() would return something
        self._next_repair = 1
        self.unknown_symbol_trades = 0

    # ------------------------------------------------------------------ inputs

    def on_trades(self, symbol: str, trades: Sequence[WireTrade], received_ms: int) -> None:
        """Count the trades of one push (the hot path: bar fields live in locals inside the loop)."""
        book = self._books.get(symbol)
        if book is None:
            self.unknown_symbol_trades += len(trades)
            return
        if len(trades) == 1 and not book.resync:  # OKX's most common push: one new trade of the open minute
            t = trades[0]
            bar = book.cur
            tid = t.tradeId
            ts = t.ts
            if bar is not None and tid > book.max_id and bar.start <= ts < bar.start + MINUTE_MS:
                px = t.px
                sz = t.sz
                book.max_id = tid
                bar.ids.append(tid)
                bar.close = px
                if px > bar.high:
                    bar.high = px
                elif px < bar.low:
                    bar.low = px
                bar.volume += sz
                bar.quote += px * sz
                if t.side is Side.BUY:
                    bar.buy += sz
                if ts > book.watermark:
                    book.watermark = ts
                book.watermark_recv = received_ms
                book.trades += 1
                book.dirty = True
                return
        elif not trades:
            return
        if book.resync:
            self._begin_repair(book, min(t.ts for t in trades))
        buy_side = Side.BUY
        max_id = book.max_id
        bar = book.cur
        if bar is None:
            bar = _NO_BAR
        start, end = bar.start, bar.start + MINUTE_MS
        high, low, close, volume, quote, buy = bar.high, bar.low, bar.close, bar.volume, bar.quote, bar.buy
        append = bar.ids.append
        for t in trades:
            tid = t.tradeId
            ts = t.ts
            if tid > max_id and start <= ts < end:
                px = t.px
                sz = t.sz
                max_id = tid
                append(tid)
                close = px
                if px > high:
                    high = px
                elif px < low:
                    low = px
                volume += sz
                quote += px * sz
                if t.side is buy_side:
                    buy += sz
                continue
            bar.high, bar.low, bar.close, bar.volume, bar.quote, bar.buy = high, low, close, volume, quote, buy
            book.max_id = max_id
            self._slow_trade(book, tid, ts, t.px, t.sz, t.side is buy_side)
            max_id = book.max_id
            bar = book.cur
            if bar is None:
                bar = _NO_BAR
            start, end = bar.start, bar.start + MINUTE_MS
            high, low, close, volume, quote, buy = bar.high, bar.low, bar.close, bar.volume, bar.quote, bar.buy
            append = bar.ids.append
        bar.high, bar.low, bar.close, bar.volume, bar.quote, bar.buy = high, low, close, volume, quote, buy
        book.max_id = max_id
        last = trades[-1].ts
        if last > book.watermark:
            book.watermark = last
        book.watermark_recv = received_ms
        book.trades += len(trades)
        book.dirty = True

    def on_trade(self, trade: Trade) -> None:
        """One domain trade (convenience for REST trades and tests)."""
        wire = WireTrade(tradeId=trade.trade_id, px=trade.price, sz=trade.size, side=trade.side, ts=trade.ts_ms)
        self.on_trades(trade.symbol, (wire,), trade.received_ms or trade.ts_ms)

    def on_connected(self, symbol: str) -> None:
        """The stream for ``symbol`` (re)started: its first trade will start a repair."""
        book = self._books[symbol]
        book.connected = True
        book.resync = True

    def on_disconnected(self, symbol: str) -> None:
        """The stream stopped: the clock no longer closes or finalises anything for ``symbol``, and the
        first trade seen after it (even one pushed before the new subscription's ack) starts a repair,
        so a minute the old connection saw only partly is never closed with what it saw."""
        book = self._books[symbol]
        book.connected = False
        book.resync = True

    def seed(self, symbol: str, minutes: Sequence[Candle], final_through_ms: int) -> None:
        """Start from stored history: every minute before ``final_through_ms`` is final and stored;
        ``minutes`` are the stored 1m candles of the still-open higher buckets."""
        book = self._books[symbol]
        book.final_through = book.live_through = final_through_ms
        book.buckets = {tf: RollingBucket(tf, tf.floor(final_through_ms)) for tf in self.higher}
        for m in sorted(minutes, key=lambda c: c.open_time_ms):
            if m.open_time_ms >= final_through_ms:
                continue
            for b in book.buckets.values():
                if b.start <= m.open_time_ms:
                    b.append(m)

    def on_clock(self, now_ms: int, updates: bool = True, alive_ms: int | None = None,
                 exchange_ms: int | None = None) -> list[Candle]:
        """Close what the estimated exchange time has passed; return forming candles of changed symbols.

        ``alive_ms`` is when the connection last proved alive (any frame, a ``pong`` included): time is
        only counted up to then, so a socket that went silent without closing does not close the minute
        it went silent in (the reconnect repairs it from REST instead). ``exchange_ms`` is an exchange time
        the stream has proved it delivered everything before (a server-time sample followed by a frame):
        the estimate never stays behind it, so a fast replay's last minute closes on market time.
        """
        out: list[Candle] = []
        grace = self.grace_ms
        if alive_ms is not None:
            now_ms = min(now_ms, alive_ms)
        for book in self._books.values():
            if book.watermark_recv and book.connected and not book.resync:
                est = book.watermark + max(0, now_ms - book.watermark_recv)
                if exchange_ms is not None and exchange_ms > est:
                    est = exchange_ms
                if book.prev is not None and est >= book.prev.start + MINUTE_MS + grace:
                    book.prev = None
                cur = book.cur
                if cur is not None and est >= cur.start + MINUTE_MS + grace:
                    book.cur = None
                    self._close_minute(book, cur, revisable=False)
                if book.cur is None:
                    through = est - grace
                    through -= through % MINUTE_MS
                    if through > book.live_through:
                        book.live_through = through
                        if book.pending is None:
                            self._advance(book, through)
            if updates and book.dirty:
                book.dirty = False
                out.extend(self._forming(book))
        return out

    def repair_ready(self, request: RepairRequest) -> bool:
        """True once the live stream has moved past the repair's last minute (it is complete)."""
        book = self._books[request.symbol]
        if book.pending is None or book.pending.repair_id != request.repair_id:
            return True
        return book.cur is None or book.cur.start > request.live_minute_ms

    def is_current(self, request: RepairRequest) -> bool:
        book = self._books[request.symbol]
        return book.pending is not None and book.pending.repair_id == request.repair_id

    def apply_repair(self, request: RepairRequest, candles: Sequence[Candle], start_ms: int | None = None) -> bool:
        """Apply REST candles for ``request`` (covering ``[start_ms or request.start_ms, end_ms)``).

        Returns False (and changes nothing) when a newer reconnect superseded the request. If REST
        has no candle for the live minute, the partial live view of it is used and counted.
        """
        book = self._books[request.symbol]
        if not self.is_current(request):
            return False
        lo = start_ms if start_ms is not None else request.start_ms
        if lo is None:
            lo = min((c.open_time_ms for c in candles), default=request.live_minute_ms)
        end = request.end_ms
        fetched = {c.open_time_ms: c for c in candles if lo <= c.open_time_ms < end}
        m1 = request.live_minute_ms
        cur = book.cur
        if cur is not None and cur.start == m1:
            if m1 in fetched:
                book.cur = None
            else:
                book.stats.unrepaired_minutes += 1
        elif book.partial is not None and book.partial.open_time_ms == m1:
            if m1 not in fetched:
                fetched[m1] = book.partial
                book.stats.unrepaired_minutes += 1
            elif _same_prices_and_volume(book.partial, fetched[m1]):
                fetched[m1] = book.partial  # the stream saw the whole minute: keep its trade count
        book.pending = None
        book.partial = None
        book.prev = None
        first_out = len(self._out.closed)
        if book.final_through is None or not book.buckets:
            first = min(fetched, default=None)
            if first is None:
                first = min((c.open_time_ms for c in book.held), default=end)
            book.final_through = first
            book.buckets = {tf: RollingBucket(tf, tf.floor(first)) for tf in self.higher}
        for t in sorted(fetched):
            if t >= book.final_through:
                self._commit(book, fetched[t])
        book.stats.repaired_minutes += len(fetched)
        still_live = book.cur is not None and book.cur.start == m1  # REST gave up before m1 completed
        self._advance(book, m1 if still_live else end)
        closed = self._out.closed
        for i in range(first_out, len(closed)):  # all over before the stream's first minute: history
            if closed[i].close_time_ms <= m1:
                closed[i] = replace(closed[i], backfilled=True)
        held, book.held = book.held, []
        for c in held:
            if c.open_time_ms >= book.final_through:  # type: ignore[operator]
                self._commit(book, c)
        self._advance(book, m1 if still_live else max(end, book.live_through))
        return True

    def drain(self) -> Drained:
        """Hand over closed candles (in emission order) and repair requests since the last call."""
        out, self._out = self._out, Drained()
        self.has_output = False
        return out

    def stats(self, symbol: str) -> SymbolStats:
        book = self._books[symbol]
        book.stats.trades = book.trades
        book.stats.last_trade_ms = book.watermark
        book.stats.last_received_ms = book.watermark_recv
        return book.stats

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._books)

    def pending_repair(self, symbol: str) -> RepairRequest | None:
        return self._books[symbol].pending

    # ------------------------------------------------------------------ internals

    def _emit(self, candle: Candle) -> None:
        self._out.closed.append(candle)
        self.has_output = True

    def _slow_trade(self, book: _Book, tid: int, ts: int, px: float, sz: float, is_buy: bool) -> None:
        cur = book.cur
        if cur is not None and cur.start <= ts < cur.start + MINUTE_MS:
            if cur.has(tid):
                book.stats.duplicates += 1
                return
            cur.add(tid, px, sz, is_buy)
        elif (cur is None and ts >= book.live_through) or (cur is not None and ts >= cur.start + MINUTE_MS):
            start = ts - ts % MINUTE_MS
            if cur is not None:
                book.cur = None
                self._close_minute(book, cur, revisable=True)
            book.cur = MinuteBar(start, tid, px, sz, is_buy)
            if start > book.live_through:
                book.live_through = start
                if book.pending is None:
                    self._advance(book, start)
            if ts > book.watermark:
                book.watermark = ts
        else:
            self._late_trade(book, tid, ts, px, sz, is_buy)
            return
        if tid > book.max_id:
            book.max_id = tid

    def _late_trade(self, book: _Book, tid: int, ts: int, px: float, sz: float, is_buy: bool) -> None:
        """A trade for a closed minute: it revises that minute if it is the one that ended less than the
        grace before the newest trade time (creating it if it had no trade yet); otherwise it is dropped."""
        minute = ts - ts % MINUTE_MS
        prev = book.prev
        if prev is not None and prev.start == minute and prev.has(tid):
            book.stats.duplicates += 1
            return
        newest_minute = book.watermark - book.watermark % MINUTE_MS
        cur = book.cur
        if (book.pending is not None or minute != newest_minute - MINUTE_MS
                or book.watermark >= newest_minute + self.grace_ms or (cur is not None and minute >= cur.start)):
            book.stats.late_dropped += 1
            return
        book.stats.late_revisions += 1
        if prev is not None and prev.start == minute:
            before: Candle | None = prev.candle(self.exchange, book.symbol)
            prev.add(tid, px, sz, is_buy)
        else:  # the minute had no trade until now: it becomes a closed minute of its own
            before = None
            prev = book.prev = MinuteBar(minute, tid, px, sz, is_buy)
        revised = prev.candle(self.exchange, book.symbol)
        self._emit(revised)
        if not book.buckets:  # the very first minute of the stream arrived late
            book.buckets = {tf: RollingBucket(tf, tf.floor(minute)) for tf in self.higher}
        for tf in self.higher:
            bucket = book.buckets[tf]
            closed = book.closed_buckets.get(tf)
            if not bucket.start <= minute < bucket.end:
                if closed is None or not closed.start <= minute < closed.end:
                    closed = book.closed_buckets[tf] = RollingBucket(tf, tf.floor(minute))  # it had no minute
                bucket = closed
            if before is None:
                bucket.append(revised)
            else:
                bucket.revise_last(before, revised)
            if bucket is closed:
                candle = closed.candle(self.exchange, book.symbol)
                if candle is not None:
                    self._emit(candle)

    def _close_minute(self, book: _Book, bar: MinuteBar, *, revisable: bool) -> None:
        pending = book.pending
        if pending is not None:
            if bar.start == pending.live_minute_ms:
                book.partial = bar.candle(self.exchange, book.symbol)
            elif bar.start > pending.live_minute_ms:
                book.held.append(bar.candle(self.exchange, book.symbol))
            book.prev = None
            return
        self._commit(book, bar.candle(self.exchange, book.symbol))
        book.prev = bar if revisable else None

    def _commit(self, book: _Book, candle: Candle) -> None:
        """A final 1m candle: emit it and add it to the higher buckets."""
        if not book.buckets:
            book.buckets = {tf: RollingBucket(tf, tf.floor(candle.open_time_ms)) for tf in self.higher}
        self._advance(book, candle.open_time_ms)
        self._emit(candle)
        for bucket in book.buckets.values():
            bucket.append(candle)

    def _advance(self, book: _Book, through: int) -> None:
        """Every minute before ``through`` is final: close the higher buckets that end by then."""
        if book.final_through is not None and through <= book.final_through:
            return
        book.final_through = through
        for tf, bucket in book.buckets.items():
            if bucket.end <= through:
                candle = bucket.candle(self.exchange, book.symbol)
                if candle is not None:
                    self._emit(candle)
                    book.closed_buckets[tf] = bucket  # kept for a revision of its last minute
                book.buckets[tf] = RollingBucket(tf, tf.floor(through))

    def _begin_repair(self, book: _Book, first_ts: int) -> None:
        m1 = first_ts - first_ts % MINUTE_MS
        book.resync = False
        book.cur = None
        book.prev = None
        book.held = []
        book.partial = None
        start = book.pending.start_ms if book.pending is not None else book.final_through
        if start is not None and start > m1 + MINUTE_MS:
            # The source went back in time (a replay restarted behind what is stored): start afresh.
            book.buckets = {}
            book.closed_buckets.clear()
            book.final_through = None
            book.live_through = 0
            book.max_id = -1
            start = None
        elif start is not None and start > m1:
            start = m1
        request = RepairRequest(book.symbol, self._next_repair, start, m1)
        self._next_repair += 1
        book.pending = request
        book.live_through = max(book.live_through, m1)
        book.stats.repairs += 1
        self._out.repairs.append(request)
        self.has_output = True

    def _forming(self, book: _Book) -> list[Candle]:
        cur = book.cur
        if cur is None:
            return []
        out = [cur.candle(self.exchange, book.symbol, closed=False)]
        if book.pending is None:
            for bucket in book.buckets.values():
                candle = bucket.candle(self.exchange, book.symbol, live=cur, closed=False)
                if candle is not None:
                    out.append(candle)
        return out


def _same_prices_and_volume(live: Candle, rest: Candle) -> bool:
    return (live.open, live.high, live.low, live.close) == (rest.open, rest.high, rest.low, rest.close) and \
        abs(live.volume - rest.volume) <= 1e-9 * max(abs(rest.volume), 1e-12)
