"""Spreads between two markets and a paper arbitrage bot that trades them, pure (no I/O).

**Quotes.** For two markets of the same pair (two venues, or a spot market and its perpetual), buying on ``buy``
at its best ask and selling on ``sell`` at its best bid earns ``gross_bps = (bid - ask) / ask * 1e4`` before
fees; ``net_bps`` takes off both taker fees. :func:`spread_quotes` gives both directions; :func:`basis_bps` the
perpetual's premium over spot at the mids. The dashboard's spread page shows these.

**ArbitrageBot.** Two legs, each a :class:`~bot_manager.broker.PaperBroker` of its own (its own balance, the
venue's fees, latency) in order-book mode. On each book top of either leg (:meth:`ArbitrageBot.on_book`) the
leg's broker fills what is live against that book (a market order walks it), then the bot decides on the two
latest tops, when both are younger than ``max_age_ms``:

* flat: if a direction's ``net_bps >= entry_bps`` and the top of both books holds ``quantity``, buy
  ``quantity`` on the cheap leg and sell it on the rich one (two market orders, sent at the top's time);
* open: once the spread has come back, i.e. undoing the trade (sell the leg bought at its bid, buy the other at
  its ask) costs at most ``exit_bps`` gross, send the two closing orders.

A leg that is sold while flat is a short (a perpetual, or a margin sell on spot). Each order fills at its own
leg's next book at least ``latency_ms`` after it was sent; the bot waits for both legs' fills before it acts
again, so a leg never trades alone for longer than one book of the other. When the legs end up holding
different sizes (a leg's balance could not carry the margin: its order refused, or cut short) the larger leg is
brought back to the smaller at market (decision ``trim``, or ``abort`` when the smaller holds nothing).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot_manager.broker import FeeModel, Fill, Order, PaperBroker
from config.domain import BookTop, Side


@dataclass(frozen=True, slots=True)
class Leg:
    exchange: str
    symbol: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.exchange, self.symbol)

    def __str__(self) -> str:
        return f"{self.exchange}:{self.symbol}"


@dataclass(frozen=True, slots=True)
class SpreadQuote:
    """Buy on ``buy`` at ``buy_price`` (its ask), sell on ``sell`` at ``sell_price`` (its bid), up to ``size``
    (the smaller top-level size); ``fees_bps`` is both taker fees."""

    buy: Leg
    sell: Leg
    buy_price: float
    sell_price: float
    size: float
    gross_bps: float
    fees_bps: float
    ts_ms: int

    @property
    def net_bps(self) -> float:
        return self.gross_bps - self.fees_bps


def quote(buy: BookTop, sell: BookTop, buy_fees: FeeModel, sell_fees: FeeModel) -> SpreadQuote | None:
    """Buying on ``buy``'s ask and selling on ``sell``'s bid (``None`` when a side is empty)."""
    if not buy.asks or not sell.bids:
        return None
    ask, ask_size = buy.asks[0]
    bid, bid_size = sell.bids[0]
    return SpreadQuote(Leg(buy.exchange, buy.symbol), Leg(sell.exchange, sell.symbol), ask, bid,
                       min(ask_size, bid_size), (bid - ask) / ask * 1e4,
                       float(buy_fees.taker_rate + sell_fees.taker_rate) * 1e4, max(buy.ts_ms, sell.ts_ms))


def spread_quotes(a: BookTop, b: BookTop, fees_a: FeeModel, fees_b: FeeModel
                  ) -> tuple[SpreadQuote | None, SpreadQuote | None]:
    """(buy ``a`` / sell ``b``, buy ``b`` / sell ``a``)."""
    return quote(a, b, fees_a, fees_b), quote(b, a, fees_b, fees_a)


def basis_bps(spot: BookTop, perp: BookTop) -> float | None:
    """The perpetual's premium over spot at the mids, in bps (negative: a discount)."""
    s, p = spot.mid, perp.mid
    return None if s is None or p is None else (p - s) / s * 1e4


class TopView:
    """A :class:`BookTop` as the broker's :class:`~bot_manager.broker.BookView` (its levels, nothing deeper)."""

    __slots__ = ("top",)

    def __init__(self, top: BookTop) -> None:
        self.top = top

    @property
    def best_bid(self) -> float | None:
        return self.top.bids[0][0] if self.top.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.top.asks[0][0] if self.top.asks else None

    def iter_bids(self) -> Iterator[tuple[float, float]]:
        return iter(self.top.bids)

    def iter_asks(self) -> Iterator[tuple[float, float]]:
        return iter(self.top.asks)


@dataclass(frozen=True)
class ArbitrageConfig:
    name: str
    legs: tuple[Leg, Leg]
    quantity: Decimal  # base units bought on one leg and sold on the other
    entry_bps: float  # open when a direction's net edge (after both taker fees) is at least this
    exit_bps: float  # close when undoing the trade costs at most this (gross bps)
    balances: tuple[Decimal, Decimal]  # quote balance of each leg's account
    fees: tuple[FeeModel, FeeModel] | None = None  # default: each venue's schedule (FeeModel.for_venue)
    latency_ms: int = 0
    max_age_ms: int = 1_000  # both tops must be this fresh (and this close to each other)
    lot_size: str = "0.00001"


@dataclass(frozen=True, slots=True)
class Decision:
    """The bot opened (bought leg ``long``, sold leg ``short``) or closed at ``ts_ms``; ``bps``: the open's net
    edge, or what the close gave back (gross)."""

    ts_ms: int
    action: str  # "open" | "close" | "trim" / "abort": the legs' sizes differed, leg ``long`` was cut back
    long: int
    short: int
    bps: float


@dataclass
class LegFill:
    leg: Leg
    fill: Fill


@dataclass
class _Trade:
    """The open arbitrage: ``long`` was bought, ``short`` sold."""

    long: int
    short: int
    entry_edge_bps: float
    opened_ms: int


@dataclass
class ArbitrageBot:
    config: ArbitrageConfig
    brokers: tuple[PaperBroker, PaperBroker] = field(init=False)
    fees: tuple[FeeModel, FeeModel] = field(init=False)
    tops: list[BookTop | None] = field(init=False)
    trade: _Trade | None = field(default=None, init=False)
    trades_opened: int = field(default=0, init=False)
    trades_closed: int = field(default=0, init=False)
    rejections: list[tuple[Leg, str, str]] = field(default_factory=list, init=False)  # (leg, order id, why)
    decisions: list[Decision] = field(default_factory=list, init=False)
    sent: list[tuple[int, Order]] = field(default_factory=list, init=False)  # (leg, order): the caller drains it
    _seq: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        c = self.config
        if c.legs[0].key == c.legs[1].key:
            raise ValueError("an arbitrage needs two different markets")
        if not c.quantity > 0:
            raise ValueError(f"quantity must be > 0, got {c.quantity}")
        self.fees = c.fees or (FeeModel.for_venue(*c.legs[0].key), FeeModel.for_venue(*c.legs[1].key))
        self.brokers = tuple(PaperBroker(balance, fees=fees, allow_short=True, latency_ms=c.latency_ms,  # type: ignore
                                         lot_size=c.lot_size, price_tick="1E-10", order_id_prefix=f"{c.name}-{i}-")
                             for i, (balance, fees) in enumerate(zip(c.balances, self.fees, strict=True)))
        self.tops = [None, None]

    def leg_index(self, top: BookTop) -> int | None:
        for i, leg in enumerate(self.config.legs):
            if leg.key == (top.exchange, top.symbol):
                return i
        return None

    @property
    def busy(self) -> bool:
        """An order of either leg has not filled yet."""
        return any(not b.idle for b in self.brokers)

    def equity(self) -> Decimal:
        return sum((b.equity_decimal() for b in self.brokers), Decimal(0))

    def on_book(self, top: BookTop) -> list[LegFill]:
        """Fill ``top``'s leg against it, then open or close the arbitrage (see the module doc)."""
        i = self.leg_index(top)
        if i is None:
            return []
        broker = self.brokers[i]
        fills = [LegFill(self.config.legs[i], f) for f in broker.on_book(top.ts_ms, TopView(top))]
        if broker.rejected:  # e.g. the leg's balance cannot carry the margin: said, never silent
            self.rejections += [(self.config.legs[i], o.order_id, why) for o, why in broker.rejected]
            broker.rejected.clear()
        self.tops[i] = top
        if self.busy:
            return fills
        if self.trade is not None and self.brokers[0].quantity != -self.brokers[1].quantity:
            self._balance(top.ts_ms)  # a leg was refused or filled short: never leave the other alone
            return fills
        a, b = self.tops
        if a is None or b is None or abs(a.ts_ms - b.ts_ms) > self.config.max_age_ms:
            return fills
        if self.trade is None:
            self._maybe_open(a, b, top.ts_ms)
        else:
            self._maybe_close(top.ts_ms)
        return fills

    def _maybe_open(self, a: BookTop, b: BookTop, ts: int) -> None:
        c = self.config
        q = float(c.quantity)
        for long, short in ((0, 1), (1, 0)):
            tops = (a, b)
            offer = quote(tops[long], tops[short], self.fees[long], self.fees[short])
            if offer is None or offer.net_bps < c.entry_bps or offer.size < q:
                continue
            self._send(long, Side.BUY, ts, f"open: buy {c.legs[long]}, net edge {offer.net_bps:.2f} bps")
            self._send(short, Side.SELL, ts, f"open: sell {c.legs[short]}, net edge {offer.net_bps:.2f} bps")
            self.trade = _Trade(long, short, offer.net_bps, ts)
            self.trades_opened += 1
            self.decisions.append(Decision(ts, "open", long, short, offer.net_bps))
            return

    def _maybe_close(self, ts: int) -> None:
        trade = self.trade
        assert trade is not None
        long_top, short_top = self.tops[trade.long], self.tops[trade.short]
        assert long_top is not None and short_top is not None
        back = quote(short_top, long_top, self.fees[trade.short], self.fees[trade.long])
        if back is None or -back.gross_bps > self.config.exit_bps:
            return
        self._send(trade.long, Side.SELL, ts, f"close: sell {self.config.legs[trade.long]}, "
                                              f"cost {-back.gross_bps:.2f} bps", reduce_only=True)
        self._send(trade.short, Side.BUY, ts, f"close: buy {self.config.legs[trade.short]}, "
                                              f"cost {-back.gross_bps:.2f} bps", reduce_only=True)
        self.trade = None
        self.trades_closed += 1
        self.decisions.append(Decision(ts, "close", trade.long, trade.short, -back.gross_bps))

    def _balance(self, ts: int) -> None:
        """The legs of the open trade hold different sizes (one refused its order, or the margin cut it short):
        bring the larger back to the smaller at market; when the smaller is nothing, the trade is over (abort)."""
        sizes = [abs(b.quantity) for b in self.brokers]
        large = 0 if sizes[0] > sizes[1] else 1
        broker = self.brokers[large]
        side = Side.SELL if broker.quantity > 0 else Side.BUY
        self._send(large, side, ts, f"balance: the other leg holds {sizes[1 - large]}", reduce_only=True,
                   quantity=sizes[large] - sizes[1 - large])
        if sizes[1 - large] == 0:
            self.trade = None
        self.decisions.append(Decision(ts, "abort" if self.trade is None else "trim", large, 1 - large, 0.0))

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe state; :meth:`restore` on a bot built from the same config resumes it exactly."""
        t = self.trade
        return {"brokers": [b.snapshot() for b in self.brokers], "seq": self._seq,
                "opened": self.trades_opened, "closed": self.trades_closed,
                "trade": None if t is None else [t.long, t.short, t.entry_edge_bps, t.opened_ms]}

    def restore(self, state: dict[str, Any]) -> None:
        for broker, saved in zip(self.brokers, state["brokers"], strict=True):
            broker.restore(saved)
        self._seq = int(state["seq"])
        self.trades_opened, self.trades_closed = int(state["opened"]), int(state["closed"])
        t = state.get("trade")
        self.trade = None if t is None else _Trade(int(t[0]), int(t[1]), float(t[2]), int(t[3]))

    def _send(self, leg: int, side: Side, ts: int, reason: str, *, reduce_only: bool = False,
              quantity: Decimal | None = None) -> None:
        self._seq += 1
        broker = self.brokers[leg]
        self.sent.append((leg, broker.submit_market(f"{broker.order_id_prefix}{self._seq}", side,
                                                    quantity or self.config.quantity, reason=reason,
                                                    reduce_only=reduce_only, at_ms=ts)))
