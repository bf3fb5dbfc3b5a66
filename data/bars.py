"""Mutable bar accumulators for the candle engine (pure, no I/O).

A :class:`MinuteBar` holds one forming 1m bucket. Trades usually arrive in id order; the engine
updates the bar inline for those. :meth:`MinuteBar.add` is the general path for a trade that arrives
out of order (open/close follow the smallest/largest trade id, so the result does not depend on
arrival order) and :meth:`MinuteBar.has` answers "was this trade id already counted?".
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable

from config.domain import Candle, Timeframe

MINUTE_MS = 60_000


class MinuteBar:
    """``ids`` holds every counted trade id, ascending: the count, the first and the last id."""

    __slots__ = ("start", "open", "high", "low", "close", "volume", "quote", "buy", "ids")

    def __init__(self, start: int, trade_id: int, price: float, size: float, is_buy: bool) -> None:
        self.start = start
        self.open = self.high = self.low = self.close = price
        self.volume = size
        self.quote = price * size
        self.buy = size if is_buy else 0.0
        self.ids = [trade_id]

    @property
    def count(self) -> int:
        return len(self.ids)

    def has(self, trade_id: int) -> bool:
        ids = self.ids
        i = bisect_left(ids, trade_id)
        return i < len(ids) and ids[i] == trade_id

    def add(self, trade_id: int, price: float, size: float, is_buy: bool) -> None:
        """Count a trade that is not the newest by id (the engine checked it is not a duplicate)."""
        ids = self.ids
        if trade_id > ids[-1]:
            self.close = price
            ids.append(trade_id)
        else:
            if trade_id < ids[0]:
                self.open = price
            insort(ids, trade_id)
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.volume += size
        self.quote += price * size
        if is_buy:
            self.buy += size

    def candle(self, exchange: str, symbol: str, closed: bool = True) -> Candle:
        return Candle(exchange, symbol, Timeframe.M1, self.start, self.open, self.high, self.low, self.close,
                      self.volume, self.quote, self.buy, len(self.ids), closed)


def combine(exchange: str, symbol: str, timeframe: Timeframe, start: int, minutes: Iterable[Candle],
            closed: bool = True) -> Candle | None:
    """One ``timeframe`` candle from its 1m candles (ascending by open time); None when there are none."""
    first: Candle | None = None
    high = low = close = volume = quote = buy = 0.0
    count = 0
    for m in minutes:
        if first is None:
            first = m
            high, low = m.high, m.low
        else:
            if m.high > high:
                high = m.high
            if m.low < low:
                low = m.low
        close = m.close
        volume += m.volume
        quote += m.quote_volume
        buy += m.buy_volume
        count += m.trade_count
    if first is None:
        return None
    return Candle(exchange, symbol, timeframe, start, first.open, high, low, close, volume, quote, buy, count,
                  closed)


class RollingBucket:
    """The forming bucket of one higher timeframe, updated as final 1m candles are appended."""

    __slots__ = ("timeframe", "start", "open", "high", "low", "close", "volume", "quote", "buy", "count",
                 "first_minute", "last_minute")

    def __init__(self, timeframe: Timeframe, start: int) -> None:
        self.timeframe = timeframe
        self.start = start
        self.count = -1  # -1: no minute yet
        self.first_minute = self.last_minute = -1
        self.open = self.high = self.low = self.close = self.volume = self.quote = self.buy = 0.0

    @property
    def end(self) -> int:
        return self.start + self.timeframe.ms

    @property
    def empty(self) -> bool:
        return self.count < 0

    def append(self, m: Candle) -> None:
        """Add the next final minute (open time after every minute already in the bucket)."""
        if self.count < 0:
            self.open, self.high, self.low = m.open, m.high, m.low
            self.volume = self.quote = self.buy = 0.0
            self.count = 0
            self.first_minute = m.open_time_ms
        else:
            if m.high > self.high:
                self.high = m.high
            if m.low < self.low:
                self.low = m.low
        self.close = m.close
        self.volume += m.volume
        self.quote += m.quote_volume
        self.buy += m.buy_volume
        self.count += m.trade_count
        self.last_minute = m.open_time_ms

    def revise_last(self, old: Candle, new: Candle) -> None:
        """Its last minute changed from ``old`` to ``new`` (a late trade was added to it)."""
        if new.open_time_ms != self.last_minute:
            raise ValueError(f"can only revise the last minute {self.last_minute}, got {new.open_time_ms}")
        if new.open_time_ms == self.first_minute:
            self.open = new.open
        self.high = max(self.high, new.high)
        self.low = min(self.low, new.low)
        self.close = new.close
        self.volume += new.volume - old.volume
        self.quote += new.quote_volume - old.quote_volume
        self.buy += new.buy_volume - old.buy_volume
        self.count += new.trade_count - old.trade_count

    def candle(self, exchange: str, symbol: str, live: MinuteBar | None = None,
               closed: bool = True) -> Candle | None:
        """The bucket as a candle; with ``live`` (a forming minute inside it) merged in."""
        if live is not None and self.start <= live.start < self.end and live.start > self.last_minute:
            if self.count < 0:
                o, h, lo, v, q, b, n = live.open, live.high, live.low, 0.0, 0.0, 0.0, 0
            else:
                o, h, lo = self.open, max(self.high, live.high), min(self.low, live.low)
                v, q, b, n = self.volume, self.quote, self.buy, self.count
            return Candle(exchange, symbol, self.timeframe, self.start, o, h, lo, live.close, v + live.volume,
                          q + live.quote, b + live.buy, n + live.count, closed)
        if self.count < 0:
            return None
        return Candle(exchange, symbol, self.timeframe, self.start, self.open, self.high, self.low, self.close,
                      self.volume, self.quote, self.buy, self.count, closed)


def rollup(candles: Iterable[Candle], timeframe: Timeframe) -> list[Candle]:
    """Roll 1m candles (any order) up to ``timeframe``, one candle per bucket that holds a minute."""
    by_bucket: dict[int, list[Candle]] = {}
    for c in sorted(candles, key=lambda c: c.open_time_ms):
        by_bucket.setdefault(timeframe.floor(c.open_time_ms), []).append(c)
    out = []
    for start, minutes in by_bucket.items():
        first = minutes[0]
        candle = combine(first.exchange, first.symbol, timeframe, start, minutes)
        if candle is not None:
            out.append(candle)
    return out
