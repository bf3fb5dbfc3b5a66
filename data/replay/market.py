"""The replayed market, pure: a tape as an endless trade sequence (with ``--loop``), OKX ``trades``
pushes built from it, and the 1m candles OKX's REST would report at a given market time.

With ``loop``, pass ``p`` of the tape is shifted by ``p * tape.loop_shift_ms`` in time and by
``p * tape.id_span`` in trade id, so passes never share an id or a candle bucket.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from data.replay.tape import MINUTE_MS, Tape


@dataclass(frozen=True, slots=True)
class Bar:
    open_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote: float
    count: int = 0
    buy_volume: float = 0.0

    def okx_row(self, confirmed: bool = True) -> list[str]:
        return [str(self.open_ms), repr(self.open), repr(self.high), repr(self.low), repr(self.close),
                repr(self.volume), repr(self.quote), repr(self.quote), "1" if confirmed else "0"]

    def binance_row(self) -> list[object]:
        """A Binance ``klines`` row (taker-buy quote volume is not kept: 0)."""
        return [self.open_ms, repr(self.open), repr(self.high), repr(self.low), repr(self.close), repr(self.volume),
                self.open_ms + MINUTE_MS - 1, repr(self.quote), self.count, repr(self.buy_volume), "0", "0"]

    def bybit_row(self) -> list[str]:
        """A Bybit ``kline`` row: start, open, high, low, close, volume, turnover."""
        return [str(self.open_ms), repr(self.open), repr(self.high), repr(self.low), repr(self.close),
                repr(self.volume), repr(self.quote)]


def minute_bars(tape: Tape, upto: int | None = None) -> list[Bar]:
    """1m bars of the first ``upto`` trades, summed in tape order (like a live aggregator would)."""
    bars: list[Bar] = []
    n = len(tape) if upto is None else upto
    ts, px, sz = tape.ts_ms.tolist()[:n], tape.price.tolist()[:n], tape.size.tolist()[:n]
    buy = tape.is_buy.tolist()[:n]
    i = 0
    while i < n:
        first = i
        start = ts[i] - ts[i] % MINUTE_MS
        end = start + MINUTE_MS
        o = h = lo = c = px[i]
        v = sz[i]
        q = px[i] * sz[i]
        b = sz[i] if buy[i] else 0.0
        i += 1
        while i < n and ts[i] < end:
            p, s = px[i], sz[i]
            if p > h:
                h = p
            elif p < lo:
                lo = p
            c = p
            v += s
            q += p * s
            if buy[i]:
                b += s
            i += 1
        bars.append(Bar(start, o, h, lo, c, v, q, i - first, b))
    return bars


def bybit_exec_id(trade_id: int) -> str:
    """A UUID-shaped id made from a tape's trade id (Bybit derivatives' ``i``/``execId`` are UUIDs)."""
    return str(uuid.UUID(int=(trade_id * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % (1 << 128)))


class Feed:
    """One instrument's replayed market: trades by global index (across loop passes) and REST bars."""

    def __init__(self, symbol: str, tape: Tape, *, loop: bool = False, history_ms: int = 0,
                 passes: int | None = None) -> None:
        self.symbol = symbol
        self.tape = tape
        self.loop = loop or passes is not None
        self.size = len(tape)
        passes = passes if passes is not None else (None if loop else 1)
        self.end_index: int | None = None if passes is None else self.size * passes
        self._ids = tape.trade_id.tolist()
        self._ts = tape.ts_ms.tolist()
        self._px = [repr(p) for p in tape.price.tolist()]
        self._sz = [repr(s) for s in tape.size.tolist()]
        self._side = ["buy" if b else "sell" for b in tape.is_buy.tolist()]
        self.bars = minute_bars(tape)
        self._bar_open = [b.open_ms for b in self.bars]
        self.shift_ms = tape.loop_shift_ms
        self.id_span = tape.id_span
        # The market opens at the first trade at or after first_ts + history_ms.
        self.start_index = int(np.searchsorted(tape.ts_ms, tape.first_ts + history_ms, side="left"))
        if self.start_index >= self.size:
            self.start_index = self.size - 1
        self.seq = 0
        self._ticks: list[str] | None = None

    def exhausted(self, index: int) -> bool:
        return self.end_index is not None and index >= self.end_index

    def clamp(self, index: int) -> int:
        return index if self.end_index is None else min(index, self.end_index)

    def ts(self, index: int) -> int:
        p, i = divmod(index, self.size)
        return self._ts[i] + p * self.shift_ms

    def pass_start(self, index: int) -> bool:
        return index % self.size == 0 and index > 0

    def push(self, start: int, stop: int) -> str:
        """One ``trades`` push holding trades ``[start, stop)``."""
        entries = []
        sym = self.symbol
        for index in range(start, stop):
            p, i = divmod(index, self.size)
            self.seq += 1
            entries.append(
                f'{{"instId":"{sym}","tradeId":"{self._ids[i] + p * self.id_span}","px":"{self._px[i]}",'
                f'"sz":"{self._sz[i]}","side":"{self._side[i]}","ts":"{self._ts[i] + p * self.shift_ms}",'
                f'"count":"1","source":"0","seqId":{self.seq}}}'
            )
        return f'{{"arg":{{"channel":"trades","instId":"{sym}"}},"data":[{",".join(entries)}]}}'

    def binance_frames(self, start: int, stop: int, venue_symbol: str, *, usdm: bool, combined: bool) -> list[str]:
        """Binance ``@trade`` events for trades ``[start, stop)``, one frame each (``m``: the buyer was the
        maker, i.e. the taker sold); ``combined`` wraps each in the ``/stream`` envelope."""
        frames = []
        stream = f"{venue_symbol.lower()}@trade"
        for index in range(start, stop):
            p, i = divmod(index, self.size)
            ts = self._ts[i] + p * self.shift_ms
            maker = "true" if self._side[i] == "sell" else "false"
            tid = self._ids[i] + p * self.id_span
            if usdm:
                event = (f'{{"e":"trade","E":{ts},"T":{ts},"s":"{venue_symbol}","t":{tid},"p":"{self._px[i]}",'
                         f'"q":"{self._sz[i]}","X":"MARKET","m":{maker}}}')
            else:
                event = (f'{{"e":"trade","E":{ts},"s":"{venue_symbol}","t":{tid},"p":"{self._px[i]}",'
                         f'"q":"{self._sz[i]}","T":{ts},"m":{maker},"M":true}}')
            frames.append(f'{{"stream":"{stream}","data":{event}}}' if combined else event)
        return frames

    def bybit_push(self, start: int, stop: int, venue_symbol: str, *, linear: bool) -> str:
        """One Bybit ``publicTrade`` push of trades ``[start, stop)`` (oldest first); on linear markets ``i`` is a
        UUID (:func:`bybit_exec_id`) and ``L`` the tick direction, on spot ``i`` is the tape's id."""
        entries = []
        ticks = self._tick_directions() if linear else None
        for index in range(start, stop):
            p, i = divmod(index, self.size)
            tid = self._ids[i] + p * self.id_span
            side = "Buy" if self._side[i] == "buy" else "Sell"
            head = (f'{{"T":{self._ts[i] + p * self.shift_ms},"s":"{venue_symbol}","S":"{side}",'
                    f'"v":"{self._sz[i]}","p":"{self._px[i]}"')
            if ticks is not None:
                entries.append(f'{head},"L":"{ticks[i]}","i":"{bybit_exec_id(tid)}","BT":false}}')
            else:
                entries.append(f'{head},"i":"{tid}","BT":false}}')
        last = self.ts(stop - 1)
        return (f'{{"topic":"publicTrade.{venue_symbol}","type":"snapshot","ts":{last + 1},'
                f'"data":[{",".join(entries)}]}}')

    def _tick_directions(self) -> list[str]:
        """Bybit's ``L`` of each tape trade: Plus/Minus when the price moved, ZeroPlus/ZeroMinus when it did not
        (after the last move up / down); the first trade counts as a move up."""
        if self._ticks is None:
            ticks, last, up = [], None, True
            for px in self.tape.price.tolist():
                if last is None or px != last:
                    up = last is None or px > last
                    ticks.append("PlusTick" if up else "MinusTick")
                else:
                    ticks.append("ZeroPlusTick" if up else "ZeroMinusTick")
                last = px
            self._ticks = ticks
        return self._ticks

    def trades_from(self, market_ms: int, from_id: int | None, limit: int) -> list[dict[str, object]]:
        """Binance ``historicalTrades`` rows, oldest first: trades done by ``market_ms`` with id >= ``from_id``
        (``None``: the newest ``limit``)."""
        if from_id is None:
            newest = self.history_trades(market_ms, limit=limit)
            from_id = int(newest[-1]["tradeId"]) if newest else 0
        lowest = self._ids[0]
        p = max(0, (from_id - lowest) // self.id_span) if self.loop else 0
        index = p * self.size + bisect_left(self._ids, from_id - p * self.id_span)
        rows: list[dict[str, object]] = []
        while len(rows) < limit and not self.exhausted(index) and (self.loop or index < self.size):
            if self.ts(index) > market_ms:
                break
            q, i = divmod(index, self.size)
            rows.append({"id": self._ids[i] + q * self.id_span, "price": self._px[i], "qty": self._sz[i],
                         "quoteQty": repr(float(self._px[i]) * float(self._sz[i])), "time": self.ts(index),
                         "isBuyerMaker": self._side[i] == "sell", "isBestMatch": True})
            index += 1
        return rows

    def group_end(self, start: int, limit: int, max_trades: int, same_ts_side: bool) -> int:
        """End of the push starting at ``start``: trades before ``limit``, at most ``max_trades``,
        and (``same_ts_side``) only while time and side stay the same."""
        stop = min(limit, start + max_trades)
        if not same_ts_side:
            return stop
        ts0 = self.ts(start)
        side0 = self._side[start % self.size]
        end = start + 1
        while end < stop and self.ts(end) == ts0 and self._side[end % self.size] == side0:
            end += 1
        return end

    def first_index_after(self, index: int, market_ms: int) -> int:
        """The first index >= ``index`` whose trade time is after ``market_ms``."""
        end = index
        while not self.exhausted(end) and self.ts(end) <= market_ms:
            end += 1
        return end

    def history(self, market_ms: int, *, after: int | None = None, before: int | None = None, limit: int = 100,
                include_forming: bool = False) -> Iterator[tuple[Bar, bool]]:
        """Bars newest first with ``before < open < after``, as known at ``market_ms``.

        Yields ``(bar, confirmed)``. Complete bars (end <= market_ms) are confirmed; the forming
        bar is included (unconfirmed) only with ``include_forming``.
        """
        hi = market_ms + 1 if include_forming else market_ms - MINUTE_MS + 1
        if after is not None:
            hi = min(hi, after)
        lo = before if before is not None else -(1 << 62)
        passes = (market_ms - self.tape.first_ts) // self.shift_ms if self.loop else 0
        if self.end_index is not None:
            passes = min(passes, (self.end_index - 1) // self.size)
        count = 0
        for p in range(max(passes, 0), -1, -1):
            shift = p * self.shift_ms
            i_hi = bisect_left(self._bar_open, hi - shift)
            i_lo = bisect_right(self._bar_open, lo - shift)
            for i in range(i_hi - 1, i_lo - 1, -1):
                bar = self.bars[i]
                open_ms = bar.open_ms + shift
                if open_ms + MINUTE_MS > market_ms:
                    forming = self._forming(p, i, market_ms)
                    if forming is not None:
                        yield forming, False
                        count += 1
                else:
                    yield (bar if shift == 0 else replace(bar, open_ms=open_ms)), True
                    count += 1
                if count >= limit:
                    return

    def history_trades(self, market_ms: int, *, after: int | None = None, before: int | None = None,
                       limit: int = 100) -> list[dict[str, str]]:
        """OKX ``history-trades`` rows (type 1), newest first: trades done by ``market_ms`` with
        ``before < tradeId < after``."""
        passes = (market_ms - self.tape.first_ts) // self.shift_ms if self.loop else 0
        if self.end_index is not None:
            passes = min(passes, (self.end_index - 1) // self.size)
        rows: list[dict[str, str]] = []
        for p in range(max(passes, 0), -1, -1):
            shift, base = p * self.shift_ms, p * self.id_span
            i_hi = bisect_right(self._ts, market_ms - shift)
            if self.end_index is not None:
                i_hi = min(i_hi, self.end_index - p * self.size)
            if after is not None:
                i_hi = min(i_hi, bisect_left(self._ids, after - base))
            i_lo = bisect_right(self._ids, before - base) if before is not None else 0
            for i in range(i_hi - 1, i_lo - 1, -1):
                rows.append({"instId": self.symbol, "tradeId": str(self._ids[i] + base), "px": self._px[i],
                             "sz": self._sz[i], "side": self._side[i], "source": "0",
                             "ts": str(self._ts[i] + shift)})
                if len(rows) >= limit:
                    return rows
        return rows

    def _forming(self, p: int, i: int, market_ms: int) -> Bar | None:
        shift = p * self.shift_ms
        start = self.bars[i].open_ms
        lo = bisect_left(self._ts, start)
        hi = bisect_right(self._ts, market_ms - shift)
        if hi <= lo:
            return None
        sub = Tape(self.tape.trade_id[lo:hi], self.tape.ts_ms[lo:hi], self.tape.price[lo:hi],
                   self.tape.size[lo:hi], self.tape.is_buy[lo:hi])
        bar = minute_bars(sub)[0]
        return replace(bar, open_ms=bar.open_ms + shift)
