"""PaperBroker: one simulated account on one instrument, shared by live bots and the backtester.

Pure: no I/O, no database, no clock. Time only enters through ``on_bar(open_time_ms, ...)``.
The full API, fill rules and rounding rules are documented in docs/paper_trading.md.

Accounting is margin style (the same for spot-long and long/short):
``balance = starting balance + realised PnL - fees`` and ``equity = balance + unrealised PnL``.
Money (balance, cost basis, fees, PnL) is :class:`~decimal.Decimal` quantised half-even to
``MONEY_UNIT`` (1e-8 quote currency, the precision exchanges keep USDT balances and fees in) at each
fill, so it is exact and never drifts; reports round it to the cent. Quantities are rounded down to
``lot_size`` and fill prices to ``price_tick``. Trigger checks (limits, stops, take-profits) compare
floats, so a bar with nothing to do costs a few attribute checks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any, Protocol

from config.domain import Side

MONEY_UNIT = Decimal("0.00000001")  # balances, notionals, fees and PnL are kept to 1e-8 quote currency
PRICE_UNIT = Decimal("1E-10")  # a book walk's average fill price (the precision the database keeps)
_ZERO = Decimal(0)


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"  # a protective stop-loss / trailing stop (created by the broker)
    TAKE_PROFIT = "take_profit"  # a protective take-profit (created by the broker)
    LIQUIDATION = "liquidation"  # the venue closing a position whose margin ran out (created by the broker)


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


@dataclass(frozen=True, slots=True)
class FeeModel:
    """Fee rates as fractions of notional (default: OKX spot regular tier, taker 0.10%, maker 0.08%)."""

    maker_rate: Decimal = Decimal("0.0008")
    taker_rate: Decimal = Decimal("0.0010")

    @classmethod
    def for_venue(cls, exchange: str, symbol: str) -> FeeModel:
        """The venue's published regular-tier (VIP 0, no fee-token discount) rates for this market; perpetual
        swaps are our ``*-SWAP`` symbols. Raises ``ValueError`` for a venue without a schedule here."""
        kind = "perp" if symbol.endswith("-SWAP") else "spot"
        try:
            maker, taker = VENUE_FEES[(exchange, kind)]
        except KeyError:
            known = ", ".join(sorted({e for e, _ in VENUE_FEES}))
            raise ValueError(f"no fee schedule for exchange {exchange!r} (known: {known})") from None
        return cls(Decimal(maker), Decimal(taker))


# (exchange, spot|perp) -> (maker, taker) fractions of notional: each venue's regular tier as published on its
# fee page (docs/paper_trading.md lists the sources). USDⓈ-M / linear perps are the ``perp`` rows.
VENUE_FEES: dict[tuple[str, str], tuple[str, str]] = {
    ("okx", "spot"): ("0.0008", "0.0010"), ("okx", "perp"): ("0.0002", "0.0005"),
    ("binance", "spot"): ("0.0010", "0.0010"), ("binance", "perp"): ("0.0002", "0.0005"),
    ("bybit", "spot"): ("0.0010", "0.0010"), ("bybit", "perp"): ("0.0002", "0.00055"),
}


class BookView(Protocol):
    """What the broker reads of an order book (``data.books.Book`` is one): the best prices, and each side's
    levels from the best outwards as ``(price, size)``."""

    @property
    def best_bid(self) -> float | None: ...

    @property
    def best_ask(self) -> float | None: ...

    def iter_bids(self) -> Iterator[tuple[float, float]]: ...

    def iter_asks(self) -> Iterator[tuple[float, float]]: ...


class SlippageModel(Protocol):
    def bps(self, quantity: float, price: float, reference_volume: float) -> float:
        """Adverse slippage in basis points for a taker order of ``quantity`` at ``price``."""
        ...


@dataclass(frozen=True, slots=True)
class FixedSlippage:
    """The same adverse slippage for every taker fill."""

    bps_value: float = 0.0

    def bps(self, quantity: float, price: float, reference_volume: float) -> float:
        return self.bps_value


@dataclass(frozen=True, slots=True)
class VolumeSlippage:
    """Square-root market impact: ``base_bps + impact_bps * sqrt(quantity / reference_volume)``.

    ``reference_volume`` is the base-currency volume of the last bar before the fill, so an order
    that is 1% of that bar's volume pays ``base_bps + impact_bps * 0.1``. Capped at ``max_bps``
    (also used when the reference bar traded nothing).
    """

    base_bps: float = 1.0
    impact_bps: float = 50.0
    max_bps: float = 100.0

    def bps(self, quantity: float, price: float, reference_volume: float) -> float:
        if reference_volume <= 0.0:
            return self.max_bps
        return min(self.max_bps, self.base_bps + self.impact_bps * math.sqrt(quantity / reference_volume))


@dataclass(frozen=True, slots=True)
class Protection:
    """Exits attached to every position, in percent of the average entry price (None = off)."""

    stop_loss_pct: float | None = None
    take_profit_pct: float | None = None
    trailing_stop_pct: float | None = None


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: float | None = None
    reason: str = ""
    reduce_only: bool = False
    created_ms: int | None = None
    spend: Decimal | None = None  # sized at the fill: this share of the equity there (``quantity`` is an estimate)


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution. ``price`` includes slippage (a book walk's: the average price, to :data:`PRICE_UNIT`);
    ``notional`` is quantity x price to the money unit (a walk's: the exact sum over its levels, which the fee
    is charged on); ``position_after`` is signed (short < 0)."""

    order_id: str
    order_type: OrderType
    ts_ms: int
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    liquidity: Liquidity
    slippage_bps: float
    realised_pnl: Decimal
    reason: str
    position_after: Decimal
    balance_after: Decimal
    notional: Decimal


_NO_FILLS: tuple[Fill, ...] = ()


def _cut(levels: list[tuple[Decimal, Decimal, float]], quantity: Decimal) -> list[tuple[Decimal, Decimal, float]]:
    """The first ``quantity`` of a walk's levels."""
    out = []
    for q, p, raw in levels:
        if quantity <= 0:
            break
        out.append((min(q, quantity), p, raw))
        quantity -= q
    return out


def money(value: Decimal) -> Decimal:
    """``value`` quantised half-even to :data:`MONEY_UNIT` (how the broker rounds every amount of money)."""
    return value.quantize(MONEY_UNIT, ROUND_HALF_EVEN)


# Book walks convert each level's float price and size to exact decimals; a live book's levels repeat from one
# update to the next (prices on the tick grid, most sizes unchanged), so the conversions are kept, up to this many.
LEVEL_CACHE = 50_000
_LEVEL_PRICES: dict[float, Decimal] = {}


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """Exact decimal of a float's shortest repr (``0.1`` -> ``Decimal('0.1')``)."""
    return value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else value)


class PaperBroker:
    """A simulated account trading one instrument bar by bar (see docs/paper_trading.md).

    Call :meth:`on_bar` once per bar, in time order. Orders submitted after bar ``t`` fill during
    bar ``t+1``: market orders at its open plus slippage, limit orders when the bar trades
    through the limit. Protective exits are checked on every bar a position is open, stop first.
    """

    def __init__(
        self,
        starting_balance: Decimal | float | int | str,
        *,
        fees: FeeModel | None = None,
        slippage: SlippageModel | None = None,
        protection: Protection | None = None,
        leverage: float = 1.0,
        allow_short: bool = False,
        lot_size: Decimal | str = "0.00000001",
        price_tick: Decimal | str = "0.00000001",
        order_id_prefix: str = "",
        latency_ms: int = 0,
        maintenance_margin_rate: float | None = None,
    ) -> None:
        balance = to_decimal(starting_balance)
        if not balance > 0:
            raise ValueError(f"starting balance must be > 0, got {balance}")
        if not 1.0 <= leverage:
            raise ValueError(f"leverage must be >= 1, got {leverage}")
        if latency_ms < 0:
            raise ValueError(f"latency must be >= 0 ms, got {latency_ms}")
        if maintenance_margin_rate is not None and not 0.0 <= maintenance_margin_rate < 1.0 / leverage:
            raise ValueError(f"maintenance margin rate must be in [0, 1/leverage), got {maintenance_margin_rate}")
        self.starting_balance = money(balance)
        self.fees = fees or FeeModel()
        self.slippage: SlippageModel = slippage or FixedSlippage(0.0)
        self.protection = protection or Protection()
        self.leverage = leverage
        self._leverage = to_decimal(leverage)
        self.allow_short = allow_short
        self.lot_size = to_decimal(lot_size)
        self.price_tick = to_decimal(price_tick)
        # a power of ten (0.001, 1, 1E-8): one quantize rounds to it
        self._tick_pow10 = self.price_tick.as_tuple().digits == (1,)
        self._lot_pow10 = self.lot_size.as_tuple().digits == (1,)
        self._level_lots: dict[float, Decimal] = {}  # book walks: a level size (float) in whole lots
        self.order_id_prefix = order_id_prefix
        self.latency_ms = latency_ms  # order-book mode: an order is live this long after it was submitted
        self.maintenance_margin_rate = maintenance_margin_rate  # None: positions are never liquidated
        self._mmr = None if maintenance_margin_rate is None else to_decimal(maintenance_margin_rate)

        self.balance = self.starting_balance
        self.fees_paid = _ZERO
        self.realised_pnl = _ZERO
        self.funding_paid = _ZERO  # funding paid (> 0) or received (< 0) on the position, already in the balance
        self.quantity = _ZERO  # signed position size
        self.cost = _ZERO  # entry notional of the open quantity (quote, money units, >= 0)
        self.entries = 0  # entry fills since the position was opened
        self.stop_price: float | None = None
        self.take_profit_price: float | None = None
        self.trailing_extreme: float | None = None  # best price since entry (high if long, low if short)
        self.last_time_ms: int | None = None
        self.last_close = 0.0
        self.last_volume = 0.0
        self.rejected: list[tuple[Order, str]] = []  # orders the broker refused at fill time; caller drains
        self._orders: dict[str, Order] = {}
        p = self.protection
        self._guarded = any(x is not None for x in (p.stop_loss_pct, p.take_profit_pct, p.trailing_stop_pct))
        self._resting: set[str] = set()  # limit orders past their first (taker) look: they now fill as makers
        self._book_mode = False  # set by the first on_book: market and new limit orders then fill from books
        self._idle = True
        self._direction = 0  # +1 long, -1 short, 0 flat (mirror of the sign of ``quantity``)
        self._qty_f = 0.0
        self._cost_f = 0.0

    # ------------------------------------------------------------------ accessors

    @property
    def position_side(self) -> int:
        """+1 long, -1 short, 0 flat."""
        return self._direction

    @property
    def entry_price(self) -> Decimal | None:
        """Average entry price of the open position (cost / size), or None when flat."""
        if not self._direction:
            return None
        return self.cost / abs(self.quantity)

    @property
    def liquidation_price(self) -> float | None:
        """Where the venue would liquidate the open position: the mark at which equity falls to the maintenance
        margin (``maintenance_margin_rate`` x position notional). The whole balance backs the one position (cross
        margin on this account). None when flat, when liquidation is off, or when no positive price gets there."""
        if self._mmr is None or not self._direction:
            return None
        size = abs(self.quantity)
        if self._direction > 0:  # balance + P*q - cost = mmr*P*q
            price = (self.cost - self.balance) / (size * (1 - self._mmr))
        else:  # balance + cost - P*q = mmr*P*q
            price = (self.balance + self.cost) / (size * (1 + self._mmr))
        return float(price) if price > 0 else None

    @property
    def open_orders(self) -> list[Order]:
        return list(self._orders.values())

    @property
    def idle(self) -> bool:
        """True when :meth:`on_bar` could only mark the bar: no open order, and no position or one
        without protective exits. A caller may then skip bars until it next needs the mark."""
        return self._idle

    def unrealised_pnl(self, price: float | None = None) -> float:
        """Unrealised PnL (float) at ``price`` (default: last close)."""
        if not self._direction:
            return 0.0
        mark = self.last_close if price is None else price
        return self._direction * (mark * self._qty_f - self._cost_f)

    def equity(self, price: float | None = None) -> float:
        """Balance plus unrealised PnL (float, for curves and risk checks)."""
        return float(self.balance) + self.unrealised_pnl(price)

    def exposure(self, price: float | None = None) -> float:
        """Absolute notional of the open position at ``price`` (default: last close)."""
        return self._qty_f * (self.last_close if price is None else price)

    def unrealised_pnl_decimal(self, price: float | None = None) -> Decimal:
        """Unrealised PnL to the money unit (what is stored in equity snapshots)."""
        if not self._direction:
            return _ZERO
        mark = to_decimal(self.last_close if price is None else price)
        value = money(mark * abs(self.quantity))
        return (value - self.cost) * self._direction

    def equity_decimal(self, price: float | None = None) -> Decimal:
        return self.balance + self.unrealised_pnl_decimal(price)

    # ------------------------------------------------------------------ orders

    def round_quantity(self, quantity: Decimal | float) -> Decimal:
        """Round a size down to a whole number of lots."""
        q = to_decimal(quantity)
        if self._lot_pow10:
            return q.quantize(self.lot_size, ROUND_DOWN)
        return (q / self.lot_size).to_integral_value(ROUND_DOWN) * self.lot_size

    def submit_market(self, order_id: str, side: Side, quantity: Decimal | float, *, reason: str = "",
                      reduce_only: bool = False, spend: Decimal | float | None = None,
                      at_ms: int | None = None) -> Order:
        """Queue a market order; it fills at the next bar's open plus slippage (taker fee).

        With ``spend`` (a share of equity, e.g. ``1`` = all of it) the size is set at the fill instead:
        ``spend * equity / fill price``, equity marked at the fill, floored to the lot and clamped to the
        margin like any entry; ``quantity`` is then the caller's estimate (what the order shows until it fills).
        ``at_ms`` is when it was sent (default: the last event's time); order-book fills wait ``latency_ms`` from it.
        """
        share = None if spend is None else to_decimal(spend)
        if share is not None and not (share > 0 and not reduce_only):
            raise ValueError(f"order {order_id}: spend must be a positive share of equity on an entry, got {spend}")
        return self._submit(Order(order_id, Side(side), OrderType.MARKET, self.round_quantity(quantity),
                                  None, reason, reduce_only, self.last_time_ms if at_ms is None else at_ms, share))

    def submit_limit(self, order_id: str, side: Side, quantity: Decimal | float, price: float, *,
                     reason: str = "", reduce_only: bool = False, at_ms: int | None = None) -> Order:
        """Queue a limit order; it fills at the limit when a later bar trades through it (maker fee),
        or at the bar's open when the open is already better than the limit (taker fee)."""
        if not (price > 0 and math.isfinite(price)):
            raise ValueError(f"limit price must be a positive finite number, got {price!r}")
        return self._submit(Order(order_id, Side(side), OrderType.LIMIT, self.round_quantity(quantity),
                                  float(price), reason, reduce_only, self.last_time_ms if at_ms is None else at_ms))

    def close_position(self, order_id: str, reason: str = "close") -> Order | None:
        """Queue a reduce-only market order for the whole position (None when flat)."""
        if not self._direction:
            return None
        side = Side.SELL if self._direction > 0 else Side.BUY
        return self.submit_market(order_id, side, abs(self.quantity), reason=reason, reduce_only=True)

    def cancel(self, order_id: str) -> Order | None:
        order = self._orders.pop(order_id, None)
        self._resting.discard(order_id)
        self._update_idle()
        return order

    def cancel_all(self) -> list[Order]:
        cancelled = list(self._orders.values())
        self._orders.clear()
        self._resting.clear()
        self._update_idle()
        return cancelled

    def _submit(self, order: Order) -> Order:
        if order.quantity <= 0:
            raise ValueError(f"order {order.order_id}: quantity must be at least one lot ({self.lot_size}), "
                             f"got {order.quantity}")
        if order.order_id in self._orders:
            raise ValueError(f"order id {order.order_id!r} is already open")
        if order.side is Side.SELL and not self.allow_short and not order.reduce_only:
            pending = sum((o.quantity for o in self._orders.values() if o.side is Side.SELL), _ZERO)
            if order.quantity + pending > max(self.quantity, _ZERO):
                raise ValueError(f"order {order.order_id}: selling {order.quantity} would open a short "
                                 f"(position {self.quantity}) and this account is long-only")
        self._orders[order.order_id] = order
        self._idle = False
        return order

    # ------------------------------------------------------------------ the bar loop

    def on_bar(self, open_time_ms: int, o: float, h: float, l: float, c: float, v: float,  # noqa: E741
               ) -> Sequence[Fill]:
        """Advance one bar: fill pending orders, check protective exits, mark to ``c``.

        Returns the fills of this bar in execution order (an empty tuple when nothing happened).
        """
        if self._idle:
            self.last_time_ms = open_time_ms
            self.last_close = c
            self.last_volume = v
            return _NO_FILLS
        fills: list[Fill] = []
        if self._orders:
            self._fill_orders(open_time_ms, o, h, l, fills)
        self._exits(open_time_ms, o, h, l, fills)
        self.last_time_ms = open_time_ms
        self.last_close = c
        self.last_volume = v
        self._update_idle()
        return fills

    def _fill_orders(self, ts: int, o: float, h: float, l: float, fills: list[Fill]) -> None:  # noqa: E741
        for order in list(self._orders.values()):
            if order.order_type is OrderType.MARKET:
                bps = self.slippage.bps(float(order.quantity), o, self.last_volume)
                price = o * (1 + bps / 10_000) if order.side is Side.BUY else o * (1 - bps / 10_000)
                liquidity, slip = Liquidity.TAKER, bps
            else:
                limit = order.limit_price
                assert limit is not None
                buy = order.side is Side.BUY
                if (o <= limit) if buy else (o >= limit):
                    price, liquidity = o, Liquidity.TAKER  # already marketable at the open
                elif (l < limit) if buy else (h > limit):
                    price, liquidity = limit, Liquidity.MAKER  # the bar traded through the limit
                else:
                    continue
                slip = 0.0
            self._drop(order.order_id)
            fill = self._execute(order, ts, price, liquidity, slip)
            if fill is not None:
                fills.append(fill)

    def _check_protection(self, ts: int, o: float, h: float, l: float, fills: list[Fill]) -> None:  # noqa: E741
        long = self._direction > 0
        stop, reason = self.stop_price, "stop_loss"
        trail_pct = self.protection.trailing_stop_pct
        if trail_pct is not None and self.trailing_extreme is not None:
            trail = self.trailing_extreme * (1 - trail_pct / 100) if long \
                else self.trailing_extreme * (1 + trail_pct / 100)
            if stop is None or (trail > stop if long else trail < stop):
                stop, reason = trail, "trailing_stop"
        side = Side.SELL if long else Side.BUY
        if stop is not None and ((l <= stop) if long else (h >= stop)):
            # Worst case first: when the stop and the take-profit are both inside this bar,
            # the stop is assumed to have been hit first. A gap through the stop fills at the open.
            trigger = min(o, stop) if long else max(o, stop)
            bps = self.slippage.bps(self._qty_f, trigger, self.last_volume)
            price = trigger * (1 - bps / 10_000) if long else trigger * (1 + bps / 10_000)
            order = Order(self._protective_id(ts, "sl" if reason == "stop_loss" else "ts"), side,
                          OrderType.STOP, abs(self.quantity), stop, reason, True, ts)
            fill = self._execute(order, ts, price, Liquidity.TAKER, bps)
        else:
            take = self.take_profit_price
            if take is None or not ((h > take) if long else (l < take)):
                return
            order = Order(self._protective_id(ts, "tp"), side, OrderType.TAKE_PROFIT, abs(self.quantity),
                          take, "take_profit", True, ts)
            fill = self._execute(order, ts, take, Liquidity.MAKER, 0.0)
        if fill is not None:
            fills.append(fill)
            self._orders = {k: v for k, v in self._orders.items() if not v.reduce_only}
            self._resting &= self._orders.keys()

    def _check_liquidation(self, ts: int, o: float, h: float, l: float, fills: list[Fill]) -> None:  # noqa: E741
        liq = self.liquidation_price
        if liq is None:
            return
        long = self._direction > 0
        if not ((l <= liq) if long else (h >= liq)):
            return
        price = min(o, liq) if long else max(o, liq)  # a gap through it closes at the open, as a stop does
        order = Order(self._protective_id(ts, "liq"), Side.SELL if long else Side.BUY, OrderType.LIQUIDATION,
                      abs(self.quantity), liq, "liquidation", True, ts)
        fill = self._execute(order, ts, price, Liquidity.TAKER, 0.0)
        if fill is not None:
            fills.append(fill)
            self._orders = {k: v for k, v in self._orders.items() if not v.reduce_only}
            self._resting &= self._orders.keys()

    # ------------------------------------------------------------------ order-book mode: books, trades, funding

    def on_book(self, ts_ms: int, book: BookView) -> Sequence[Fill]:
        """Fill live orders against a venue's book at ``ts_ms`` and mark the position to the mid.

        A market order walks the book from the best level out, one fill per level, each a taker fill at that
        level's price (``slippage_bps`` = how far the level is from the best); if the book runs out, the rest
        waits for the next book. A new limit order first takes what its limit crosses the same way, then rests;
        a resting one fills only on trades (:meth:`on_trade`). Liquidity one call takes is not taken twice. An
        order is live ``latency_ms`` after it was sent. Protective exits and liquidation are checked at the mid.
        """
        self._book_mode = True
        self.last_time_ms = ts_ms
        bid, ask = book.best_bid, book.best_ask
        if bid is not None and ask is not None:
            self.last_close = (bid + ask) / 2
        if self._idle:
            return _NO_FILLS
        fills: list[Fill] = []
        if self._orders:
            used: dict[float, Decimal] = {}
            for order in list(self._orders.values()):
                if order.order_id in self._resting or not self._live(order, ts_ms):
                    continue
                self._walk(order, ts_ms, book, used, fills)
                if order.order_type is OrderType.LIMIT and order.order_id in self._orders:
                    self._resting.add(order.order_id)
        self._after_tick(ts_ms, self.last_close, fills)
        return fills

    def on_trade(self, ts_ms: int, price: float, size: float) -> Sequence[Fill]:
        """A trade printed on the venue at ``price`` for ``size`` (base): resting limits it prints through fill.

        A buy limit fills when a trade prints below its limit, a sell when one prints above (a print at the
        limit may be another order ahead in the queue): maker fills at the limit, at most the print's size in
        all, so a small print fills an order partly. Without books (no :meth:`on_book` yet), market orders fill
        here at the print plus the slippage model, and a new limit already marketable fills at the print as
        taker. Protective exits and liquidation are checked at the print, which becomes the mark.
        """
        self.last_time_ms = ts_ms
        self.last_close = price
        if self._idle:
            return _NO_FILLS
        fills: list[Fill] = []
        left = size
        for order in list(self._orders.values()):
            if not self._live(order, ts_ms):
                continue
            buy = order.side is Side.BUY
            if order.order_id not in self._resting:
                if self._book_mode:
                    continue  # its first look is at the next book
                if order.order_type is OrderType.MARKET:
                    bps = self.slippage.bps(float(order.quantity), price, self.last_volume)
                    self._fill_whole(order, ts_ms, price * (1 + bps / 10_000) if buy else price * (1 - bps / 10_000),
                                     Liquidity.TAKER, bps, fills)
                    continue
                limit = order.limit_price
                assert limit is not None
                if (price <= limit) if buy else (price >= limit):
                    self._fill_whole(order, ts_ms, price, Liquidity.TAKER, 0.0, fills)
                    continue
                self._resting.add(order.order_id)
            limit = order.limit_price
            assert limit is not None
            if left <= 0.0 or not ((price < limit) if buy else (price > limit)):
                continue
            take = min(order.quantity, self.round_quantity(left))
            if take <= 0:
                continue
            fill = self._execute(order, ts_ms, limit, Liquidity.MAKER, 0.0, take)
            if fill is None:
                self._drop(order.order_id)
                continue
            fills.append(fill)
            left -= float(fill.quantity)
            self._reduce(order, fill.quantity, done=fill.quantity < take)
        self._after_tick(ts_ms, price, fills)
        return fills

    def apply_funding(self, ts_ms: int, rate: float, mark_price: float) -> Decimal:
        """Settle one funding payment on the open perp position: ``rate`` x notional at ``mark_price``, paid by
        longs to shorts when the rate is positive (the reverse when negative). Returns what the balance gained
        (negative = paid); ``funding_paid`` accumulates what was paid."""
        if not self._direction:
            return _ZERO
        payment = money(abs(self.quantity) * to_decimal(mark_price) * to_decimal(rate)) * self._direction
        self.balance -= payment
        self.funding_paid += payment
        self.last_time_ms = max(self.last_time_ms or ts_ms, ts_ms)
        return -payment

    def _live(self, order: Order, ts_ms: int) -> bool:
        return order.created_ms is None or ts_ms >= order.created_ms + self.latency_ms

    def _walk(self, order: Order, ts: int, book: BookView, used: dict[float, Decimal], fills: list[Fill]) -> None:
        """Take ``order`` from the book's levels (see :meth:`on_book`): one fill at the walk's average price."""
        buy = order.side is Side.BUY
        best = book.best_ask if buy else book.best_bid
        if best is None:
            return
        limit = order.limit_price if order.order_type is OrderType.LIMIT else None
        want = order.quantity
        if order.spend is not None:  # sized at the best price, then walked like any quantity
            at = to_decimal(best)
            want = self.round_quantity(order.spend * self._equity_at(at) / at)
            if want <= 0:
                self.rejected.append((order, f"spending {order.spend} of equity at {at} is less than one lot"))
                self._drop(order.order_id)
                return
            order = replace(order, quantity=want, spend=None)
        if order.reduce_only:
            want = min(want, abs(self.quantity)) if self._direction == (-1 if buy else 1) else _ZERO
            if want <= 0:
                self.rejected.append((order, "nothing to reduce"))
                self._drop(order.order_id)
                return
        levels: list[tuple[Decimal, Decimal, float]] = []  # (quantity, price, raw price) taken per level
        remaining = want
        lots_of, prices = self._level_lots, _LEVEL_PRICES  # a level's size in lots / exact price, by float
        if len(lots_of) > LEVEL_CACHE:
            lots_of.clear()
        if len(prices) > LEVEL_CACHE:
            prices.clear()
        for raw, size in (book.iter_asks() if buy else book.iter_bids()):
            if limit is not None and (raw > limit if buy else raw < limit):
                break
            lots = lots_of.get(size)
            if lots is None:
                lots = lots_of[size] = self.round_quantity(size)
            if used:
                lots -= used.get(raw, _ZERO)
            take = remaining if remaining < lots else lots
            if take > 0:
                price = prices.get(raw)
                if price is None:
                    price = prices[raw] = Decimal(repr(raw))
                levels.append((take, price, raw))
                remaining -= take
                if remaining <= 0:
                    break
        if not levels:
            return
        taken = want - remaining
        notional = sum((q * p for q, p, _ in levels), _ZERO)
        sign = 1 if buy else -1
        closing = min(taken, abs(self.quantity)) if self._direction == -sign else _ZERO
        if taken > closing:  # margin for the opening part, at the walk's average price
            allowed = closing + self._affordable(taken - closing, notional / taken, closing)
            if allowed < taken:
                levels = _cut(levels, allowed)
                if not levels:
                    self.rejected.append((order, "insufficient margin"))
                    self._drop(order.order_id)
                    return
                taken, remaining = allowed, _ZERO  # the margin allows no more: the order ends here
                notional = sum((q * p for q, p, _ in levels), _ZERO)
        slip = (levels[-1][2] if len(levels) == 1 else float(notional / taken))
        slip = (slip / best - 1) * 10_000 if buy else (1 - slip / best) * 10_000
        fill = self._execute(order, ts, 0.0, Liquidity.TAKER, slip, taken, notional)
        if fill is None:
            self._drop(order.order_id)
            return
        fills.append(fill)
        if len(self._orders) > 1:  # another order may walk this book in the same call: it finds these taken
            for q, _, raw in levels:
                used[raw] = used.get(raw, _ZERO) + q
        self._reduce(order, taken, done=remaining <= 0)

    def _fill_whole(self, order: Order, ts: int, price: float, liquidity: Liquidity, slip: float,
                    fills: list[Fill]) -> None:
        self._drop(order.order_id)
        fill = self._execute(order, ts, price, liquidity, slip)
        if fill is not None:
            fills.append(fill)

    def _reduce(self, order: Order, filled: Decimal, *, done: bool) -> None:
        """After a partial or full fill of ``order``: what is left stays open, or the order goes."""
        left = order.quantity - filled
        if done or left <= 0:
            self._drop(order.order_id)
        else:
            self._orders[order.order_id] = replace(order, quantity=left)

    def _drop(self, order_id: str) -> None:
        self._orders.pop(order_id, None)
        self._resting.discard(order_id)

    def _after_tick(self, ts: int, price: float, fills: list[Fill]) -> None:
        self._exits(ts, price, price, price, fills)
        self._update_idle()

    def _exits(self, ts: int, o: float, h: float, l: float, fills: list[Fill]) -> None:  # noqa: E741
        """Protective exits, then liquidation, then the trailing extreme, over a bar (or one price)."""
        if self._direction and self._guarded:
            self._check_protection(ts, o, h, l, fills)
        if self._direction and self._mmr is not None:
            self._check_liquidation(ts, o, h, l, fills)
        if self._direction and self.trailing_extreme is not None:
            self.trailing_extreme = max(self.trailing_extreme, h) if self._direction > 0 \
                else min(self.trailing_extreme, l)

    def _protective_id(self, ts: int, kind: str) -> str:
        return f"{self.order_id_prefix}{ts}-{kind}"

    # ------------------------------------------------------------------ execution and accounting

    def _execute(self, order: Order, ts: int, raw_price: float, liquidity: Liquidity, slip_bps: float,
                 quantity: Decimal | None = None, walked: Decimal | None = None) -> Fill | None:
        """Fill ``quantity`` (default: the whole order) at ``raw_price`` rounded to the tick; None if refused.
        ``walked``: the exact notional of a book walk of ``quantity`` (its fill price is then the average)."""
        if walked is not None:
            assert quantity is not None
            price = (walked / quantity).quantize(PRICE_UNIT, ROUND_HALF_EVEN)  # an average of tick prices
        elif self._tick_pow10:
            price = to_decimal(raw_price).quantize(self.price_tick, ROUND_HALF_EVEN)
        else:
            price = (to_decimal(raw_price) / self.price_tick).to_integral_value(ROUND_HALF_EVEN) * self.price_tick
        sign = 1 if order.side is Side.BUY else -1
        if quantity is None:
            quantity = order.quantity if order.spend is None else self.round_quantity(
                order.spend * self._equity_at(price) / price)
        if quantity <= 0:
            self.rejected.append((order, f"spending {order.spend} of equity at {price} is less than one lot"))
            return None
        if order.reduce_only:
            if self._direction != -sign:
                self.rejected.append((order, "nothing to reduce"))
                return None
            quantity = min(quantity, abs(self.quantity))
        closing = min(quantity, abs(self.quantity)) if self._direction == -sign else _ZERO
        opening = quantity - closing
        if opening > 0 and walked is None:  # a walk has had its margin check (the average moves if it is cut)
            opening = self._affordable(opening, price, closing)
            if opening <= 0 and closing <= 0:
                self.rejected.append((order, "insufficient margin"))
                return None
            quantity = closing + opening
        rate = self.fees.maker_rate if liquidity is Liquidity.MAKER else self.fees.taker_rate
        notional = money(quantity * price if walked is None else walked)
        fee = money(notional * rate)
        gross = notional
        realised = _ZERO
        if closing > 0:
            size = abs(self.quantity)
            exit_value = notional if opening == 0 else money(closing * price)
            cost_part = self.cost if closing == size else money(self.cost * closing / size)
            realised = (exit_value - cost_part) * self._direction
            self.cost -= cost_part
            self.quantity += sign * closing
            if self.quantity == 0:
                self._flat()
            notional -= exit_value
        if opening > 0:
            was_flat = self._direction == 0
            self.cost += notional
            self.quantity += sign * opening
            self._direction = sign
            self.entries = 1 if was_flat else self.entries + 1
            if self._guarded:
                self._set_levels(float(price), was_flat)
        self.balance += realised - fee
        self.realised_pnl += realised
        self.fees_paid += fee
        self._qty_f = float(abs(self.quantity))
        self._cost_f = float(self.cost)
        return Fill(order.order_id, order.order_type, ts, order.side, quantity, price, fee, liquidity,
                    slip_bps, realised, order.reason, self.quantity, self.balance, gross)

    def _affordable(self, quantity: Decimal, price: Decimal, closing: Decimal) -> Decimal:
        """Clamp a position-increasing quantity to what equity x leverage allows (fees included)."""
        p = float(price)
        held = self._qty_f - float(closing)
        room_f = (float(self.balance) + self._direction * (p * self._qty_f - self._cost_f)) * self.leverage - held * p
        if float(quantity) * p * (1.0 + float(self.fees.taker_rate)) < room_f * (1 - 1e-9):
            return quantity  # clearly affordable (a float check with a margin far above its rounding error)
        size = abs(self.quantity)
        room = self._equity_at(price) * self._leverage - (size - closing) * price
        if room <= 0:
            return _ZERO
        limit = self.round_quantity(room / (price * (1 + self.fees.taker_rate)))
        return min(quantity, limit)

    def _equity_at(self, price: Decimal) -> Decimal:
        """Balance plus the open position marked at ``price``."""
        size = abs(self.quantity)
        return self.balance + (money(price * size) - self.cost) * self._direction if size else self.balance

    def _set_levels(self, fill_price: float, new_position: bool) -> None:
        entry = float(self.cost / abs(self.quantity))
        long = self._direction > 0
        p = self.protection
        self.stop_price = None if p.stop_loss_pct is None else \
            entry * (1 - p.stop_loss_pct / 100) if long else entry * (1 + p.stop_loss_pct / 100)
        self.take_profit_price = None if p.take_profit_pct is None else \
            entry * (1 + p.take_profit_pct / 100) if long else entry * (1 - p.take_profit_pct / 100)
        if p.trailing_stop_pct is not None and (new_position or self.trailing_extreme is None):
            self.trailing_extreme = fill_price

    def _flat(self) -> None:
        self.quantity = _ZERO
        self.cost = _ZERO
        self._direction = 0
        self.entries = 0
        self.stop_price = self.take_profit_price = self.trailing_extreme = None

    def _update_idle(self) -> None:
        self._idle = not self._orders and not (self._direction and (self._guarded or self._mmr is not None))

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe state; :meth:`restore` on a broker built with the same settings resumes it exactly."""
        return {
            "balance": str(self.balance), "fees_paid": str(self.fees_paid),
            "realised_pnl": str(self.realised_pnl), "quantity": str(self.quantity), "cost": str(self.cost),
            "funding_paid": str(self.funding_paid), "resting": sorted(self._resting),
            "book_mode": self._book_mode,
            "entries": self.entries, "stop_price": self.stop_price, "take_profit_price": self.take_profit_price,
            "trailing_extreme": self.trailing_extreme, "last_time_ms": self.last_time_ms,
            "last_close": self.last_close, "last_volume": self.last_volume,
            "orders": [_order_to_dict(o) for o in self._orders.values()],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.balance = Decimal(state["balance"])
        self.fees_paid = Decimal(state["fees_paid"])
        self.realised_pnl = Decimal(state["realised_pnl"])
        self.funding_paid = Decimal(state.get("funding_paid", "0"))
        self.quantity = Decimal(state["quantity"])
        self.cost = Decimal(state["cost"])
        self.entries = int(state["entries"])
        self.stop_price = state["stop_price"]
        self.take_profit_price = state["take_profit_price"]
        self.trailing_extreme = state["trailing_extreme"]
        self.last_time_ms = state["last_time_ms"]
        self.last_close = float(state["last_close"])
        self.last_volume = float(state["last_volume"])
        self._orders = {d["order_id"]: _order_from_dict(d) for d in state["orders"]}
        self._resting = set(state.get("resting", ())) & self._orders.keys()
        self._book_mode = bool(state.get("book_mode", False))
        self._direction = (self.quantity > 0) - (self.quantity < 0)
        self._qty_f = float(abs(self.quantity))
        self._cost_f = float(self.cost)
        self._update_idle()


def _order_to_dict(order: Order) -> dict[str, Any]:
    return {"order_id": order.order_id, "side": order.side.value, "order_type": order.order_type.value,
            "quantity": str(order.quantity), "limit_price": order.limit_price, "reason": order.reason,
            "reduce_only": order.reduce_only, "created_ms": order.created_ms,
            "spend": None if order.spend is None else str(order.spend)}


def _order_from_dict(d: dict[str, Any]) -> Order:
    return Order(d["order_id"], Side(d["side"]), OrderType(d["order_type"]), Decimal(d["quantity"]),
                 d["limit_price"], d["reason"], d["reduce_only"], d["created_ms"],
                 None if d.get("spend") is None else Decimal(d["spend"]))


__all__ = [
    "MONEY_UNIT", "VENUE_FEES", "BookView", "FeeModel", "Fill", "FixedSlippage", "Liquidity", "Order", "OrderType",
    "PaperBroker", "Protection", "SlippageModel", "VolumeSlippage", "money", "to_decimal",
]
