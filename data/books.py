"""Order books, pure: a price-level book and Binance's ``depth`` sequencing (snapshot + diff updates).

**Book.** Levels are ``price -> size`` dicts per side; an update sets a level, size 0 removes it. The best
prices are kept incrementally (an update that removes the best level finds the next one by a scan of that
side, which is rare), so :meth:`Book.best` is O(1) and :meth:`Book.top` sorts only when asked.

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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Levels = Iterable[Sequence[str | float]]  # [[price, size], ...] as the venue sends them (strings or numbers)
Outcome = Literal["applied", "stale", "buffered", "gap"]
APPLIED: Outcome = "applied"
STALE: Outcome = "stale"
BUFFERED: Outcome = "buffered"
GAP: Outcome = "gap"


class Book:
    """One market's price levels."""

    __slots__ = ("bids", "asks", "best_bid", "best_ask")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.best_bid: float | None = None
        self.best_ask: float | None = None

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.best_bid = self.best_ask = None

    def apply(self, bids: Levels, asks: Levels) -> None:
        self.best_bid = _apply_side(self.bids, bids, self.best_bid, bid=True)
        self.best_ask = _apply_side(self.asks, asks, self.best_ask, bid=False)

    def top(self, n: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The best ``n`` levels of each side: bids high to low, asks low to high."""
        bids = sorted(self.bids.items(), reverse=True)[:n]
        asks = sorted(self.asks.items())[:n]
        return bids, asks

    def crossed(self) -> bool:
        return self.best_bid is not None and self.best_ask is not None and self.best_bid >= self.best_ask


def _apply_side(side: dict[float, float], levels: Levels, best: float | None, *, bid: bool) -> float | None:
    """Apply ``levels`` to one side; returns its new best price (a scan only when the best level went)."""
    rescan = False
    for price_s, size_s in levels:
        price, size = float(price_s), float(size_s)
        if size == 0.0:
            if side.pop(price, None) is not None and price == best:
                rescan = True
        else:
            side[price] = size
            if best is None or (price > best if bid else price < best):
                best = price
                rescan = False
    if not side:
        return None
    if rescan:
        return max(side) if bid else min(side)
    return best


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
        self.resyncs = 0
        self._buffer: list[DepthEvent] = []
        self._max_buffer = max_buffer

    def snapshot(self, last_update_id: int, bids: Levels, asks: Levels) -> int:
        """Start from a REST snapshot; applies what was buffered after it. Returns how many buffered events
        were applied (a gap inside them makes the book wait for the next snapshot again)."""
        if self.gaps or self.last_id is not None:
            self.resyncs += 1
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

    def _gap(self) -> Outcome:
        self.gaps += 1
        self.book.clear()
        self.last_id = None
        self.synced = False
        return GAP
