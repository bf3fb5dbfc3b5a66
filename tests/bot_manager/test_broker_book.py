"""PaperBroker in order-book mode (issue 14.4): market orders walk the book, limit orders rest and fill on trades
that print through, partial fills, latency, per-venue fees, funding and liquidation, each against a hand
computation; then a walk through a real Binance USDⓈ-M book rebuilt from the captured depth stream."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot_manager.broker import FeeModel, FixedSlippage, Liquidity, OrderType, PaperBroker, money
from config.domain import Side
from data.books import Book, DepthSync
from tests.data.test_books import USDM_DEPTH, events

D = Decimal
PERP_FEES = FeeModel(D("0.0002"), D("0.0005"))


def book(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> Book:
    b = Book()
    b.apply(bids, asks)
    return b


def ladder() -> Book:
    return book([("99.5", "1"), ("99", "2")], [("100", "0.5"), ("100.5", "1"), ("101", "2")])


def broker(**kwargs: object) -> PaperBroker:
    options: dict[str, object] = {"fees": PERP_FEES, "allow_short": True}
    options.update(kwargs)
    return PaperBroker(D("10000"), **options)  # type: ignore[arg-type]


def test_a_market_buy_walks_the_levels_into_one_fill_at_the_average_price() -> None:
    b = broker()
    b.submit_market("m1", Side.BUY, D("1.2"), at_ms=0)
    [fill] = b.on_book(10, ladder())
    # 0.5 @ 100 = 50.00 and 0.7 @ 100.5 = 70.35: notional 120.35, average 100.291666..., taker fee 0.05% of
    # 120.35 = 0.060175; the average is 29.17 bps above the best ask
    assert (fill.quantity, fill.notional, fill.fee) == (D("1.2"), D("120.35"), D("0.060175"))
    assert fill.price == D("100.2916666667") and fill.liquidity is Liquidity.TAKER
    assert fill.slippage_bps == pytest.approx((120.35 / 1.2 / 100 - 1) * 1e4)
    assert b.quantity == D("1.2") and b.cost == D("120.35")
    assert b.balance == D("10000") - D("0.060175") == fill.balance_after
    assert b.open_orders == []
    assert b.last_close == 99.75  # marked at the mid
    assert b.unrealised_pnl_decimal() == D("119.70") - D("120.35")


def test_when_the_book_runs_out_the_rest_fills_on_the_next_book() -> None:
    b = broker()
    b.submit_market("m1", Side.BUY, 5, at_ms=0)
    [part] = b.on_book(1, ladder())
    assert (part.quantity, part.notional) == (D("3.5"), D("50") + D("100.5") + D("202"))
    [rest] = b.open_orders
    assert rest.quantity == D("1.5") and rest.order_id == "m1"
    [last] = b.on_book(2, book([("101", "1")], [("102", "9")]))
    assert (last.quantity, last.price, last.position_after) == (D("1.5"), D("102"), D("5"))
    assert b.open_orders == []


def test_liquidity_taken_once_is_not_taken_again_by_the_next_order_of_the_same_book() -> None:
    b = broker()
    b.submit_market("a", Side.BUY, D("0.4"), at_ms=0)
    b.submit_market("b", Side.BUY, D("0.4"), at_ms=0)
    fills = b.on_book(1, ladder())
    # a: 0.4 @ 100; b: the 0.1 left at 100, then 0.3 @ 100.5 = 10 + 30.15
    assert [(f.order_id, f.quantity, f.notional) for f in fills] == [("a", D("0.4"), D("40")),
                                                                      ("b", D("0.4"), D("40.15"))]


def test_an_order_waits_for_its_latency_before_it_can_fill() -> None:
    b = broker(latency_ms=50)
    b.submit_market("m", Side.SELL, D("1"), at_ms=1_000)
    assert b.on_book(1_049, ladder()) == []
    [fill] = b.on_book(1_050, ladder())
    assert (fill.price, fill.position_after) == (D("99.5"), D("-1"))


def test_a_limit_takes_what_it_crosses_then_rests_and_fills_on_prints_through_it_partly() -> None:
    b = broker()
    b.submit_limit("l", Side.BUY, D("2"), 100.5, at_ms=0)
    [taken] = b.on_book(1, ladder())  # 0.5 @ 100 and 1 @ 100.5; 101 is beyond the limit
    assert (taken.quantity, taken.notional, taken.liquidity) == (D("1.5"), D("150.5"), Liquidity.TAKER)
    [resting] = b.open_orders
    assert resting.quantity == D("0.5")
    assert b.on_book(2, book([("100", "1")], [("100.5", "3")])) == []  # resting: books no longer fill it
    assert b.on_trade(3, 100.5, 10) == []  # a print at the limit may be the queue ahead of us
    [part] = b.on_trade(4, 100.4, 0.2)  # a print through it fills at most its size, at the limit, as maker
    assert (part.quantity, part.price, part.liquidity) == (D("0.2"), D("100.5"), Liquidity.MAKER)
    assert part.fee == D("0.00402")  # 0.2 x 100.5 = 20.10, maker 0.02%
    [rest] = b.on_trade(5, 100.0, 7)
    assert rest.quantity == D("0.3") and b.open_orders == [] and b.quantity == D("2")
    # cost = 150.5 + 20.1 + 30.15; fees = 0.07525 + 0.00402 + 0.00603
    assert b.cost == D("200.75") and b.fees_paid == D("0.0853")


def test_one_print_is_shared_by_the_resting_orders_it_goes_through() -> None:
    b = broker()
    b.submit_limit("x", Side.SELL, 1, 101.0, at_ms=0)
    b.submit_limit("y", Side.SELL, 1, 100.8, at_ms=0)
    assert b.on_book(1, ladder()) == []
    fills = b.on_trade(2, 101.5, 1.5)
    assert [(f.order_id, f.quantity, f.price) for f in fills] == [("x", D("1"), D("101")), ("y", D("0.5"), D("100.8"))]
    assert [(o.order_id, o.quantity) for o in b.open_orders] == [("y", D("0.5"))]


def test_without_books_market_orders_fill_at_the_print_plus_the_slippage_model() -> None:
    b = broker(slippage=FixedSlippage(10.0))
    b.submit_market("m", Side.BUY, 1, at_ms=0)
    [fill] = b.on_trade(1, 200.0, 0.001)
    assert (fill.price, fill.slippage_bps, fill.fee) == (D("200.2"), 10.0, D("0.1001"))


def test_a_reduce_only_order_never_walks_past_the_position() -> None:
    b = broker()
    b.submit_market("open", Side.BUY, D("0.3"), at_ms=0)
    b.on_book(1, ladder())
    b.submit_market("close", Side.SELL, 5, reduce_only=True, at_ms=1)
    [fill] = b.on_book(2, ladder())
    assert (fill.quantity, fill.price, fill.position_after) == (D("0.3"), D("99.5"), D("0"))
    assert b.open_orders == [] and b.rejected == []


def test_venue_fee_schedules() -> None:
    assert FeeModel.for_venue("binance", "BTC-USDT-SWAP") == FeeModel(D("0.0002"), D("0.0005"))
    assert FeeModel.for_venue("binance", "BTC-USDT") == FeeModel(D("0.001"), D("0.001"))
    assert FeeModel.for_venue("okx", "BTC-USDT") == FeeModel()
    assert FeeModel.for_venue("bybit", "ETH-USDT-SWAP").taker_rate == D("0.00055")
    with pytest.raises(ValueError, match="no fee schedule for exchange 'mexc'"):
        FeeModel.for_venue("mexc", "BTC-USDT")


def test_funding_is_paid_by_longs_to_shorts_on_the_mark_notional() -> None:
    long, short = broker(), broker()
    long.submit_market("l", Side.BUY, D("0.5"), at_ms=0)
    short.submit_market("s", Side.SELL, D("0.5"), at_ms=0)
    long.on_book(1, ladder())
    short.on_book(1, ladder())
    before_long, before_short = long.balance, short.balance
    # 0.5 x 60 123.4 x 0.0001 = 3.00617
    assert long.apply_funding(8 * 3_600_000, 0.0001, 60_123.4) == D("-3.00617")
    assert short.apply_funding(8 * 3_600_000, 0.0001, 60_123.4) == D("3.00617")
    assert long.balance == before_long - D("3.00617") and short.balance == before_short + D("3.00617")
    assert long.apply_funding(16 * 3_600_000, -0.00002, 60_000) == D("0.6")  # a negative rate pays the longs
    assert long.funding_paid == D("2.40617")
    assert broker().apply_funding(0, 0.01, 1) == 0  # flat: nothing


def test_the_liquidation_price_and_the_liquidation_fill_match_the_hand_computation() -> None:
    b = PaperBroker(D("1000"), fees=PERP_FEES, leverage=10, allow_short=True, maintenance_margin_rate=0.005)
    b.submit_market("m", Side.BUY, D("0.9"), at_ms=0)
    [entry] = b.on_book(1, book([("9999", "5")], [("10000", "5")]))
    assert entry.fee == D("4.5") and b.balance == D("995.5")
    # long: balance + P q - cost = mmr P q  ->  P = (9000 - 995.5) / (0.9 x 0.995) = 8938.5818...
    liq = b.liquidation_price
    assert liq == pytest.approx(8004.5 / 0.8955)
    equity_there = 995.5 + 0.9 * liq - 9000
    assert equity_there == pytest.approx(0.005 * 0.9 * liq)
    assert not b.on_bar(60_000, 9_500, 9_600, 8_950, 9_000, 1)  # not reached
    [fill] = b.on_bar(120_000, 9_000, 9_100, 8_800, 8_900, 1)  # the low goes through it
    assert (fill.order_type, fill.reason, fill.liquidity) == (OrderType.LIQUIDATION, "liquidation", Liquidity.TAKER)
    assert fill.price == D("8938.58179788") and fill.position_after == 0
    assert fill.realised_pnl == money(D("0.9") * D("8938.58179788")) - D("9000") == D("-955.27638191")
    assert b.liquidation_price is None and b.balance > 0


def test_a_short_at_one_times_leverage_is_liquidated_near_twice_its_entry_at_the_print() -> None:
    b = PaperBroker(D("1000"), fees=FeeModel(D(0), D(0)), allow_short=True, maintenance_margin_rate=0.01)
    b.submit_market("s", Side.SELL, D("10"), at_ms=0)
    b.on_book(1, book([("100", "20")], [("100.1", "20")]))
    assert b.liquidation_price == pytest.approx(2000 / (10 * 1.01))
    assert b.on_trade(2, 190.0, 1) == []
    [fill] = b.on_trade(3, 199.0, 1)  # a print beyond it: closed at that print
    assert fill.price == D("199") and fill.side is Side.BUY and b.quantity == 0


def test_broker_state_in_book_mode_survives_a_snapshot() -> None:
    b = broker(latency_ms=5)
    b.submit_market("m", Side.BUY, 1, at_ms=0)
    b.on_book(10, ladder())
    b.submit_limit("l", Side.SELL, D("0.5"), 102.0, at_ms=10)
    b.on_book(20, ladder())
    b.apply_funding(30, 0.0001, 100)
    again = broker(latency_ms=5)
    again.restore(b.snapshot())
    assert again.snapshot() == b.snapshot() and again.funding_paid == D("0.01")
    [fill] = again.on_trade(40, 102.5, 1)
    assert (fill.order_id, fill.liquidity) == ("l", Liquidity.MAKER)


def test_a_walk_through_the_real_usdm_book_equals_a_sorted_level_reference() -> None:
    stream = events(USDM_DEPTH)
    sync = DepthSync(usdm=True)
    sync.snapshot(stream[0].first_id, [], [])
    for event in stream:
        sync.on_event(event)
    assert sync.gaps == 0
    _, asks = sync.book.top(10_000)
    want, cost, walked = D("3"), D(0), 0
    for price, size in asks:  # the reference walk: levels in price order, each rounded down to the lot
        take = min(want, D(repr(size)).quantize(D("0.001"), rounding="ROUND_DOWN"))
        cost += take * D(repr(price))
        want -= take
        walked += 1
        if want == 0:
            break
    assert want == 0 and walked > 3
    b = PaperBroker(D("1000000"), fees=PERP_FEES, lot_size="0.001", price_tick="0.1")
    b.submit_market("m", Side.BUY, 3, at_ms=0)
    [fill] = b.on_book(1, sync.book)
    assert (fill.quantity, fill.notional, b.cost) == (D("3"), cost, cost)
    assert fill.fee == (cost * D("0.0005")).quantize(D("1E-8")) and fill.price == (cost / 3).quantize(D("1E-10"))
    assert fill.slippage_bps == pytest.approx((float(cost) / 3 / sync.book.best_ask - 1) * 1e4)


def test_a_walk_the_margin_cannot_pay_for_is_cut_at_its_average_price_and_ends() -> None:
    b = PaperBroker(D("100"), fees=PERP_FEES)
    b.submit_market("m", Side.BUY, 5, at_ms=0)
    [fill] = b.on_book(1, ladder())
    # the book has 3.5 up to 101: average (50 + 100.5 + 202) / 3.5; room 100 there with the taker fee
    average = (D(50) + D("100.5") + D(202)) / D("3.5")
    allowed = (D(100) / (average * D("1.0005"))).quantize(D("1E-8"), rounding="ROUND_DOWN")
    assert fill.quantity == allowed == D("0.99241159")
    assert fill.notional == money(D("50") + (allowed - D("0.5")) * D("100.5"))  # 0.5 @ 100, the rest @ 100.5
    assert fill.notional + fill.fee < 100 and b.open_orders == []


def test_a_spend_order_too_small_for_one_lot_is_rejected_not_left_open() -> None:
    b = PaperBroker(D("1"), fees=PERP_FEES, lot_size="1")
    b.submit_market("m", Side.BUY, 1, spend=1, at_ms=0)
    assert b.on_book(1, ladder()) == []
    assert b.open_orders == []
    assert [why for _, why in b.rejected] == ["spending 1 of equity at 100.0 is less than one lot"]
