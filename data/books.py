"""Order books, pure: a price-level book, Binance's ``depth`` sequencing (snapshot + diff updates) and OKX's
``books`` sequencing (``seqId``/``prevSeqId``, CRC32 checksum of the top 25 levels: :class:`OkxBookSync`).

**Book.** Levels are ``price -> size`` dicts per side; an update sets a level, size 0 removes it. Each side's
prices are also kept in a sorted list (touched only when a price appears or goes), so the best prices are O(1),
:meth:`Book.top` is a slice and :meth:`Book.iter_asks`/:meth:`Book.iter_bids` walk the book in price order.

**Binance sequencing** (``DepthSync``), as Binance documents the local book:

* Buffer the stream's events, fetch a REST snapshot (``lastUpdateId``), drop the buffered events it already
  holds, apply the rest.
* Spot (``depth@100ms``: ``U`` first and ``u`` last update id of the event): drop ``u <= lastUpdateId``; the
  first applied event has ``U <= lastUpdateId + 1 <= u``; each later one ``U == previous u + 1``.
* USDⓈ-M (``depth@0ms``/``@100ms``, also ``pu`` = the previous event's ``u``): drop ``u < lastUpdateId``; the
  first applied event has ``U <= lastUpdateId <= u``; each later one ``pu == previous u``.

Anything else is a **gap**: :meth:`DepthSync.on_event` returns :data:`GAP`, counts it, empties the book and
waits for a new snapshot (the shell fetches one: a resync). The captured streams of 2024-08-08 chain with no
gap over all 3 451 spot and 6 551 USDⓈ-M events.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from config.domain import BookTop

Levels = Iterable[Sequence[str | float]]  # [[price, size], ...] as the venue sends them (strings or numbers)
Outcome = Literal["applied", "stale", "buffered", "gap"]
APPLIED: Outcome = "applied"
STALE: Outcome = "stale"
BUFFERED: Outcome = "buffered"
GAP: Outcome = "gap"


class Book:
    """One market's price levels: ``price -> size`` per side, plus each side's prices kept sorted (ascending).

    A size change is one dict store; only a new or removed price touches the sorted list (a bisect and a
    ``memmove``), so the best prices are O(1), :meth:`top` is a slice and a book walk reads levels in order."""

    __slots__ = ("bids", "asks", "_bid_px", "_ask_px")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self._bid_px: list[float] = []  # ascending: the best bid is the last
        self._ask_px: list[float] = []  # ascending: the best ask is the first

    @property
    def best_bid(self) -> float | None:
        return self._bid_px[-1] if self._bid_px else None

    @property
    def best_ask(self) -> float | None:
        return self._ask_px[0] if self._ask_px else None

    def mid(self) -> float | None:
        if not (self._bid_px and self._ask_px):
            return None
        return (self._bid_px[-1] + self._ask_px[0]) / 2

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._bid_px.clear()
        self._ask_px.clear()

    def apply(self, bids: Levels, asks: Levels) -> None:
        _apply_side(self.bids, self._bid_px, bids)
        _apply_side(self.asks, self._ask_px, asks)

    def top(self, n: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The best ``n`` levels of each side: bids high to low, asks low to high."""
        bids, asks = self.bids, self.asks
        return ([(p, bids[p]) for p in self._bid_px[:-n - 1:-1]] if n > 0 else [],
                [(p, asks[p]) for p in self._ask_px[:n]])

    def iter_bids(self) -> Iterator[tuple[float, float]]:
        """Bid levels from the best (highest) down, lazily (what a sell walks)."""
        bids = self.bids
        return ((p, bids[p]) for p in reversed(self._bid_px))

    def iter_asks(self) -> Iterator[tuple[float, float]]:
        """Ask levels from the best (lowest) up, lazily (what a buy walks)."""
        asks = self.asks
        return ((p, asks[p]) for p in self._ask_px)

    def crossed(self) -> bool:
        return bool(self._bid_px and self._ask_px and self._bid_px[-1] >= self._ask_px[0])


def _apply_side(side: dict[float, float], prices: list[float], levels: Levels) -> None:
    """Apply ``levels`` to one side: set a level, size 0 removes it; ``prices`` stays sorted."""
    for price_s, size_s in levels:
        price, size = float(price_s), float(size_s)
        if size == 0.0:
            if side.pop(price, None) is not None:
                del prices[bisect_left(prices, price)]
        else:
            if price not in side:
                insort(prices, price)
            side[price] = size


def book_top(exchange: str, symbol: str, ts_ms: int, book: Book, depth: int,
             update_id: int | None = None) -> BookTop:
    """The best ``depth`` levels of ``book`` as the frozen message the bus carries and the database stores."""
    bids, asks = book.top(depth)
    return BookTop(exchange, symbol, ts_ms, tuple(bids), tuple(asks), update_id)


@dataclass(frozen=True, slots=True)
class DepthEvent:
    """One Binance ``depthUpdate``: ``U``/``u`` first/last update id, ``pu`` (USDⓈ-M) the previous ``u``."""

    first_id: int
    last_id: int
    bids: Sequence[Sequence[str]]
    asks: Sequence[Sequence[str]]
    prev_last_id: int | None = None

    @classmethod
    def from_binance(cls, data: dict[str, object]) -> DepthEvent:
        pu = data.get("pu")
        return cls(int(data["U"]), int(data["u"]), data["b"], data["a"],  # type: ignore[arg-type, call-overload]
                   None if pu is None else int(pu))  # type: ignore[call-overload]


class DepthSync:
    """Keeps one :class:`Book` in sequence with a Binance depth stream (``usdm``: the futures rules)."""

    def __init__(self, *, usdm: bool, max_buffer: int = 10_000) -> None:
        self.usdm = usdm
        self.book = Book()
        self.last_id: int | None = None  # the last update id applied; None: waiting for a snapshot
        self.synced = False  # the first event after the snapshot has been applied
        self.gaps = 0
        self.resyncs = 0  # snapshots after the first (after a gap or a reconnection)
        self.snapshots = 0
        self._buffer: list[DepthEvent] = []
        self._max_buffer = max_buffer

    def snapshot(self, last_update_id: int, bids: Levels, asks: Levels) -> int:
        """Start from a REST snapshot; applies what was buffered after it. Returns how many buffered events
        were applied (a gap inside them makes the book wait for the next snapshot again)."""
        if self.snapshots:
            self.resyncs += 1
        self.snapshots += 1
        self.book.clear()
        self.book.apply(bids, asks)
        self.last_id = last_update_id
        self.synced = False
        buffered, self._buffer = self._buffer, []
        applied = 0
        for event in buffered:
            outcome = self.on_event(event)
            if outcome == GAP:
                break
            applied += outcome == APPLIED
        return applied

    def on_event(self, event: DepthEvent) -> Outcome:
        last = self.last_id
        if last is None:
            self._buffer.append(event)
            del self._buffer[:-self._max_buffer]
            return BUFFERED
        if not self.synced:
            if event.last_id < last or (not self.usdm and event.last_id == last):
                return STALE  # the snapshot already holds it
            start = last if self.usdm else last + 1
            if not event.first_id <= start <= event.last_id:
                return self._gap()
            self.synced = True
        elif self.usdm:
            if event.prev_last_id != last:
                return self._gap()
        elif event.first_id != last + 1:
            if event.last_id <= last:
                return STALE  # a repeat
            return self._gap()
        self.book.apply(event.bids, event.asks)
        self.last_id = event.last_id
        return APPLIED

    def reset(self) -> None:
        """The stream was lost (a reconnection, not a gap): empty the book and wait for a new snapshot."""
        self.book.clear()
        self.last_id = None
        self.synced = False
        self._buffer.clear()

    def _gap(self) -> Outcome:
        self.gaps += 1
        self.reset()
        return GAP


def okx_checksum(bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]]) -> int:
    """OKX's book checksum: CRC32 (as a signed 32-bit int) of ``bid px:bid sz:ask px:ask sz:...`` over the best
    25 levels, interleaved, a side's entries left out once it has no more levels; prices and sizes as sent."""
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts += (bids[i][0], bids[i][1])
        if i < len(asks):
            parts += (asks[i][0], asks[i][1])
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


class OkxBookSync:
    """Keeps one :class:`Book` in sequence with an OKX ``books`` stream: ``action: snapshot`` then ``update``s.

    An update is in sequence when its ``prevSeqId`` is the last ``seqId`` (a keep-alive repeats it with empty
    sides); when the push carries a non-zero ``checksum`` (OKX's captures of 2022 do; it is fixed to 0 today),
    the top 25 levels after the update must match it. Anything else is a gap: counted, the book is emptied and
    the next ``snapshot`` push (the shell re-subscribes to get one) resyncs it."""

    def __init__(self) -> None:
        self.book = Book()
        self.text: tuple[dict[float, tuple[str, str]], dict[float, tuple[str, str]]] = ({}, {})
        self.seq_id: int | None = None
        self.ready = False
        self.gaps = 0
        self.resyncs = 0
        self.checked = 0  # updates whose checksum was verified

    def on_push(self, action: str, data: dict[str, object]) -> Outcome:
        bids, asks = data.get("bids", []), data.get("asks", [])
        seq, prev = data.get("seqId"), data.get("prevSeqId")
        if action == "snapshot":
            if self.gaps or self.ready:
                self.resyncs += 1
            self.book.clear()
            self.text[0].clear()
            self.text[1].clear()
            self.ready = True
        elif not self.ready:
            return BUFFERED  # waiting for a snapshot
        elif prev is not None and self.seq_id is not None and prev != self.seq_id:
            return self._gap()
        self._apply(bids, asks)  # type: ignore[arg-type]
        if seq is not None:
            self.seq_id = int(seq)  # type: ignore[call-overload]
        checksum = data.get("checksum")
        if checksum:
            bids_25, asks_25 = self.book.top(25)
            top_bids = [self.text[0][p] for p, _ in bids_25]
            top_asks = [self.text[1][p] for p, _ in asks_25]
            if okx_checksum(top_bids, top_asks) != checksum:
                return self._gap()
            self.checked += 1
        return APPLIED

    def _apply(self, bids: Levels, asks: Levels) -> None:
        bids, asks = list(bids), list(asks)
        self.book.apply(((p, s) for p, s, *_ in bids), ((p, s) for p, s, *_ in asks))
        for text, levels in zip(self.text, (bids, asks), strict=True):
            for price, size, *_ in levels:
                if float(size) == 0.0:
                    text.pop(float(price), None)
                else:
                    text[float(price)] = (str(price), str(size))

    def _gap(self) -> Outcome:
        self.gaps += 1
        self.book.clear()
        self.text[0].clear()
        self.text[1].clear()
        self.ready = False
        self.seq_id = None
        return GAP
