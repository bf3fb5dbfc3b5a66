"""What the spread page shows, pure: for every two live markets of the same pair (two venues, or a spot market
and its perpetual) both directions' top-of-book edge net of the venues' taker fees, and each perpetual's basis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from bot_manager.arbitrage import SpreadQuote, basis_bps, spread_quotes
from bot_manager.broker import FeeModel
from config.domain import BookTop

STALE_MS = 10_000  # a top older than this (against the newest one) is left out


@dataclass(frozen=True, slots=True)
class BasisRow:
    spot: BookTop
    perp: BookTop
    basis_bps: float


def pair_of(symbol: str) -> str:
    """``BTC-USDT`` for ``BTC-USDT`` and ``BTC-USDT-SWAP``: what the markets trade, whatever the venue."""
    return "-".join(symbol.split("-")[:2])


def venue_fees(top: BookTop) -> FeeModel:
    try:
        return FeeModel.for_venue(top.exchange, top.symbol)
    except ValueError:
        return FeeModel()  # a venue without a schedule here: the default (OKX spot) rates


def live_tops(tops: Sequence[BookTop], stale_ms: int = STALE_MS) -> list[BookTop]:
    newest = max((t.ts_ms for t in tops), default=0)
    return [t for t in tops if newest - t.ts_ms <= stale_ms and t.bids and t.asks]


def spread_rows(tops: Sequence[BookTop]) -> list[SpreadQuote]:
    """Both directions of every two markets of the same pair, best net edge first."""
    rows: list[SpreadQuote] = []
    live = live_tops(tops)
    for a, b in combinations(live, 2):
        if pair_of(a.symbol) != pair_of(b.symbol):
            continue
        rows += [q for q in spread_quotes(a, b, venue_fees(a), venue_fees(b)) if q is not None]
    return sorted(rows, key=lambda q: -q.net_bps)


def basis_rows(tops: Sequence[BookTop]) -> list[BasisRow]:
    """Each perpetual against each spot market of its pair (same venue first)."""
    live = live_tops(tops)
    rows = []
    for perp in (t for t in live if t.symbol.endswith("-SWAP")):
        for spot in (t for t in live if not t.symbol.endswith("-SWAP") and pair_of(t.symbol) == pair_of(perp.symbol)):
            value = basis_bps(spot, perp)
            if value is not None:
                rows.append(BasisRow(spot, perp, value))
    return sorted(rows, key=lambda r: (r.spot.exchange != r.perp.exchange, r.spot.exchange, r.perp.exchange))
