"""PaperBroker fills, fees, slippage, exits and accounting, checked against hand computations."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot_manager.broker import FeeModel, FixedSlippage, Liquidity, PaperBroker, Protection, VolumeSlippage
from config.domain import Side

D = Decimal
MIN = 60_000


def make_broker(**kwargs: object) -> PaperBroker:
    options: dict[str, object] = {"fees": FeeModel(D("0.0008"), D("0.001")), "slippage": FixedSlippage(10.0)}
    options.update(kwargs)
    return PaperBroker(D("10000"), **options)  # type: ignore[arg-type]


def test_a_market_round_trip_matches_the_hand_computation_exactly() -> None:
    broker = make_broker()
    assert broker.on_bar(0, 49_000, 49_500, 48_900, 49_200, 10) == ()
    broker.submit_market("b1", Side.BUY, D("0.1"))
    [buy] = broker.on_bar(MIN, 50_000, 50_100, 49_900, 51_000, 10)
    # 50000 + 10 bps = 50050.00; notional 0.1 x 50050 = 5005.00; taker fee 0.1% = 5.005 (kept, not
    # rounded to the cent); balance 10000 - 5.005 = 9994.995
    assert (buy.price, buy.fee, buy.liquidity, buy.balance_after) == (D("50050.00"), D("5.005"), Liquidity.TAKER,
                                                                       D("9994.995"))
    assert broker.equity() == pytest.approx(9994.995 + 0.1 * 51_000 - 5005.00)
    assert broker.equity_decimal() == D("10089.995")  # 9994.995 + (5100.00 - 5005.00)
    broker.submit_market("s1", Side.SELL, D("0.1"))
    [sell] = broker.on_bar(2 * MIN, 52_000, 52_000, 51_500, 51_800, 10)
    # 52000 - 10 bps = 51948.00; notional 5194.80; fee 5.1948; realised 5194.80 - 5005.00 = 189.80
    assert (sell.price, sell.fee, sell.realised_pnl) == (D("51948.00"), D("5.1948"), D("189.80"))
    assert broker.balance == D("10000") - D("5.005") + D("189.80") - D("5.1948") == D("10179.6002")
    assert broker.fees_paid == D("10.1998") and broker.realised_pnl == D("189.80")
    assert broker.position_side == 0 and broker.quantity == 0


def test_fees_are_kept_to_1e8_and_exact_halves_round_to_even_without_bias() -> None:
    # A token priced 0.000025 and 0.000035 (1e-8 tick and lot), 1 unit per fill, taker fee 0.1%:
    # fees of exactly 2.5e-8 and 3.5e-8. Half-even gives 2e-8 and 4e-8 (sum 6e-8 = the exact sum);
    # half-up would give 3e-8 and 4e-8, always in the exchange's favour.
    broker = make_broker(slippage=FixedSlippage(0))
    broker.on_bar(0, 0.000025, 0.000025, 0.000025, 0.000025, 1)
    broker.submit_market("b", Side.BUY, D("1"))
    [buy] = broker.on_bar(MIN, 0.000025, 0.000025, 0.000025, 0.000025, 1)
    broker.submit_market("s", Side.SELL, D("1"))
    [sell] = broker.on_bar(2 * MIN, 0.000035, 0.000035, 0.000035, 0.000035, 1)
    assert (buy.fee, sell.fee) == (D("0.00000002"), D("0.00000004"))
    # realised 0.000035 - 0.000025 = 0.00001; balance 10000 - 0.00000002 + 0.00001 - 0.00000004
    assert sell.realised_pnl == D("0.00001") and broker.balance == D("10000.00000994")


def test_a_flat_broker_with_no_orders_only_marks_the_bar() -> None:
    broker = make_broker()
    for i in range(5):
        assert broker.on_bar(i * MIN, 100.0, 101.0, 99.0, 100.5, 3.0) == ()
    assert broker.last_close == 100.5 and broker.last_time_ms == 4 * MIN and broker.equity() == 10_000.0


def test_quantities_are_rounded_down_to_the_lot() -> None:
    broker = make_broker(lot_size="0.001")
    order = broker.submit_market("b", Side.BUY, 0.12345)
    assert order.quantity == D("0.123")
    with pytest.raises(ValueError, match="at least one lot"):
        broker.submit_market("c", Side.BUY, 0.0009)


def test_a_buy_limit_fills_only_when_the_market_trades_through_it() -> None:
    broker = make_broker(slippage=FixedSlippage(0))
    broker.on_bar(0, 100, 101, 99, 100, 1)
    broker.submit_limit("l", Side.BUY, D("1"), 95.0)
    assert not broker.on_bar(MIN, 100, 100, 95.0, 96, 1)  # touched, not traded through
    [fill] = broker.on_bar(2 * MIN, 96, 97, 94.5, 96, 1)
    assert (fill.price, fill.liquidity, fill.fee) == (D("95"), Liquidity.MAKER, D("0.076"))  # 95 x 0.08%


def test_a_limit_already_better_than_the_open_fills_at_the_open_as_taker() -> None:
    broker = make_broker(slippage=FixedSlippage(0))
    broker.on_bar(0, 100, 101, 99, 100, 1)
    broker.submit_limit("l", Side.BUY, D("1"), 105.0)
    [fill] = broker.on_bar(MIN, 101, 102, 100, 101, 1)
    assert (fill.price, fill.liquidity) == (D("101"), Liquidity.TAKER)


def test_when_stop_and_take_profit_are_both_touched_the_stop_fills_first() -> None:
    broker = make_broker(slippage=FixedSlippage(0), protection=Protection(stop_loss_pct=2, take_profit_pct=3))
    broker.on_bar(0, 100, 100, 100, 100, 1)
    broker.submit_market("b", Side.BUY, D("10"))
    broker.on_bar(MIN, 100, 100.5, 99.5, 100, 1)  # entry 100: stop 98, take-profit 103
    assert (broker.stop_price, broker.take_profit_price) == (pytest.approx(98), pytest.approx(103))
    [exit_fill] = broker.on_bar(2 * MIN, 100, 104, 97, 101, 1)
    assert exit_fill.reason == "stop_loss" and exit_fill.price == D("98")
    assert exit_fill.realised_pnl == D("-20.00") and broker.position_side == 0


def test_a_gap_through_the_stop_fills_at_the_open_not_at_the_stop() -> None:
    broker = make_broker(slippage=FixedSlippage(0), protection=Protection(stop_loss_pct=2))
    broker.on_bar(0, 100, 100, 100, 100, 1)
    broker.submit_market("b", Side.BUY, D("1"))
    broker.on_bar(MIN, 100, 100, 99, 99, 1)
    [fill] = broker.on_bar(2 * MIN, 95, 96, 94, 95, 1)
    assert fill.price == D("95") and fill.order_type == "stop"


def test_take_profit_fills_at_its_price_as_maker() -> None:
    broker = make_broker(slippage=FixedSlippage(5), protection=Protection(take_profit_pct=5))
    broker.on_bar(0, 200, 200, 200, 200, 1)
    broker.submit_market("b", Side.BUY, D("1"))
    broker.on_bar(MIN, 200, 201, 199, 200, 1)  # entry at 200.1 (5 bps)
    assert broker.take_profit_price == pytest.approx(200.1 * 1.05)
    [fill] = broker.on_bar(2 * MIN, 205, 211, 204, 209, 1)
    assert fill.reason == "take_profit" and fill.liquidity is Liquidity.MAKER
    assert fill.price == D("210.105")  # 200.1 x 1.05, no slippage on a resting limit


def test_the_trailing_stop_follows_the_best_price_from_previous_bars() -> None:
    broker = make_broker(slippage=FixedSlippage(0), protection=Protection(trailing_stop_pct=10))
    broker.on_bar(0, 100, 100, 100, 100, 1)
    broker.submit_market("b", Side.BUY, D("1"))
    [entry] = broker.on_bar(MIN, 100, 120, 95, 118, 1)  # stop 90 during this bar; peak 120 after it
    assert entry.price == D("100")
    assert broker.trailing_extreme == 120
    [fill] = broker.on_bar(2 * MIN, 117, 125, 107, 110, 1)  # stop 108 (120 x 0.9) checked before the new high
    assert fill.reason == "trailing_stop" and fill.price == D("108")


def test_a_short_position_gains_when_the_price_falls() -> None:
    broker = make_broker(slippage=FixedSlippage(0), allow_short=True)
    broker.on_bar(0, 100, 100, 100, 100, 1)
    broker.submit_market("s", Side.SELL, D("2"))
    broker.on_bar(MIN, 100, 100, 90, 90, 1)
    assert broker.position_side == -1 and broker.unrealised_pnl() == pytest.approx(20.0)
    broker.close_position("c")
    [fill] = broker.on_bar(2 * MIN, 90, 91, 89, 90, 1)
    # entry fee 200 x 0.1% = 0.20, exit fee 180 x 0.1% = 0.18, realised 200 - 180 = 20
    assert fill.realised_pnl == D("20.00") and broker.balance == D("10019.62")


def test_a_long_only_account_refuses_a_sell_that_would_open_a_short() -> None:
    broker = make_broker()
    with pytest.raises(ValueError, match="long-only"):
        broker.submit_market("s", Side.SELL, D("1"))


def test_an_entry_larger_than_equity_times_leverage_is_clamped() -> None:
    broker = make_broker(slippage=FixedSlippage(0), lot_size="0.0001")
    broker.on_bar(0, 100, 100, 100, 100, 1)
    broker.submit_market("b", Side.BUY, D("500"))  # 50 000 notional on a 10 000 account
    [fill] = broker.on_bar(MIN, 100, 100, 100, 100, 1)
    assert fill.quantity == D("99.9000")  # 10000 / (100 x 1.001), rounded down to the lot


def test_partial_exits_split_the_cost_basis_half_even_to_1e8() -> None:
    broker = make_broker(slippage=FixedSlippage(0), fees=FeeModel(D(0), D(0)))
    broker.on_bar(0, 30, 30, 30, 30, 1)
    broker.submit_market("b1", Side.BUY, D("1"))
    broker.submit_market("b2", Side.BUY, D("2"))
    broker.on_bar(MIN, 10.00000001, 10.00000001, 10.00000001, 10.00000001, 1)  # cost 3 x 10.00000001 = 30.00000003
    broker.submit_market("s", Side.SELL, D("1"))
    broker.on_bar(2 * MIN, 10, 10, 10, 10, 1)
    broker.submit_market("b3", Side.BUY, D("1"))
    broker.on_bar(3 * MIN, 10, 10, 10, 10, 1)  # cost 20.00000002 + 10 = 30.00000002 for 3 units
    broker.submit_market("s2", Side.SELL, D("1"))
    [fill] = broker.on_bar(4 * MIN, 11, 11, 11, 11, 1)
    # cost removed: 30.00000002 / 3 = 10.000000006666... -> 10.00000001; realised 11 - 10.00000001
    assert fill.realised_pnl == D("0.99999999")
    assert broker.cost == D("20.00000001") and broker.quantity == D("2")  # 30.00000002 - 10.00000001


def test_volume_slippage_grows_with_the_square_root_of_participation() -> None:
    model = VolumeSlippage(base_bps=1, impact_bps=50, max_bps=80)
    assert model.bps(1.0, 100.0, 100.0) == pytest.approx(1 + 50 * 0.1)
    assert model.bps(4.0, 100.0, 100.0) == pytest.approx(1 + 50 * 0.2)
    assert model.bps(1.0, 100.0, 0.0) == 80
    broker = make_broker(slippage=model)
    broker.on_bar(0, 100, 100, 100, 100, 25.0)  # the reference volume for the next fill
    broker.submit_market("b", Side.BUY, D("1"))
    [fill] = broker.on_bar(MIN, 100, 100, 100, 100, 999.0)
    assert fill.slippage_bps == pytest.approx(11.0) and fill.price == D("100.11")


def test_a_snapshot_restores_the_same_account_and_open_orders() -> None:
    broker = make_broker(protection=Protection(stop_loss_pct=5, trailing_stop_pct=3))
    broker.on_bar(0, 100, 100, 100, 100, 1)
    broker.submit_market("b", Side.BUY, D("2"))
    broker.on_bar(MIN, 100, 104, 99, 103, 1)
    broker.submit_limit("l", Side.SELL, D("1"), 110.0)
    copy = make_broker(protection=Protection(stop_loss_pct=5, trailing_stop_pct=3))
    copy.restore(broker.snapshot())
    bars = [(2 * MIN, 103, 111, 102, 108, 1), (3 * MIN, 108, 109, 100, 101, 1)]
    assert [copy.on_bar(*b) for b in bars] == [broker.on_bar(*b) for b in bars]
    assert copy.snapshot() == broker.snapshot()


def test_one_sell_larger_than_the_long_closes_it_and_opens_a_short_with_the_rest() -> None:
    broker = make_broker(slippage=FixedSlippage(0), allow_short=True, lot_size="0.001")
    broker.on_bar(0, 100, 100, 100, 100, 1)
    broker.submit_market("b", Side.BUY, D("10"))
    broker.on_bar(MIN, 100, 100, 100, 100, 1)  # long 10 @ 100, fee 1.00, balance 9999.00
    broker.submit_market("s", Side.SELL, D("200"))
    [fill] = broker.on_bar(2 * MIN, 110, 110, 110, 110, 1)
    # The 10 closed realise 10 x (110 - 100) = 100. The short is clamped to the equity at 110:
    # 9999.00 + 100 = 10099.00, / (110 x 1.001 = 110.11) = 91.7173... -> 91.717 (lot 0.001). One fill
    # of 101.717 @ 110 = 11188.87, fee 11.18887; balance 9999.00 + 100 - 11.18887 = 10087.81113.
    assert (fill.quantity, fill.realised_pnl, fill.fee, fill.position_after) == (
        D("101.717"), D("100"), D("11.18887"), D("-91.717"))
    assert broker.balance == D("10087.81113") and broker.cost == D("10088.87")  # 91.717 x 110


def test_the_broker_is_idle_when_a_bar_could_only_be_marked() -> None:
    plain = make_broker(slippage=FixedSlippage(0))
    guarded = make_broker(slippage=FixedSlippage(0), protection=Protection(stop_loss_pct=5))
    for broker in (plain, guarded):
        assert broker.idle
        broker.on_bar(0, 100, 100, 100, 100, 1)
        broker.submit_market("b", Side.BUY, D("1"))
        assert not broker.idle  # an order to fill
        broker.on_bar(MIN, 100, 100, 100, 100, 1)
    assert plain.idle and not guarded.idle  # in a position: only the stop needs every bar


def test_an_order_sized_at_the_fill_spends_its_share_of_the_equity_at_the_fill_price() -> None:
    broker = make_broker(slippage=FixedSlippage(0.0), lot_size="0.0001")
    broker.on_bar(0, 49_000, 49_500, 48_900, 50_000, 10)
    # Sized at the close this would be 0.1 BTC (5000 / 50000); the next bar gaps down to 40000.
    order = broker.submit_market("b1", Side.BUY, D("0.1"), spend=D("0.5"))
    assert order.quantity == D("0.1") and broker.snapshot()["orders"][0]["spend"] == "0.5"
    [buy] = broker.on_bar(MIN, 40_000, 40_100, 39_900, 40_000, 10)
    # 0.5 x 10000 / 40000 = 0.125 BTC; notional 5000.00, fee 5.00
    assert (buy.quantity, buy.price, buy.fee, buy.balance_after) == (D("0.125"), D("40000"), D("5.000"),
                                                                     D("9995.000"))
    # Adding on an open position: equity at the fill is marked there (9995 + 0.125 x (44000 - 40000) = 10495).
    broker.submit_market("b2", Side.BUY, D("0.01"), spend=D("0.1"))
    [add] = broker.on_bar(2 * MIN, 44_000, 44_000, 44_000, 44_000, 10)
    # 0.1 x 10495 / 44000 = 0.02385227…, floored to the lot 0.0001
    assert add.quantity == D("0.0238")


def test_all_equity_sized_at_the_fill_is_clamped_to_what_the_fee_leaves() -> None:
    broker = make_broker(slippage=FixedSlippage(0.0))
    broker.on_bar(0, 100, 100, 100, 100, 1)
    broker.submit_market("b1", Side.BUY, D("100"), spend=D("1"))
    [buy] = broker.on_bar(MIN, 80, 80, 80, 80, 1)
    # All of 10000 at 80 would be 125 units, but the 0.1% fee must be paid too: 10000 / (80 x 1.001)
    assert buy.quantity == broker.round_quantity(D("10000") / (D("80") * D("1.001")))
    left = D("10000") - buy.quantity * buy.price - buy.fee  # cash not spent: less than one more lot with its fee
    assert D(0) <= left < D("0.00000001") * D("80.08") + D("0.00000001")


def test_an_order_sized_at_the_fill_below_one_lot_is_rejected_not_filled() -> None:
    broker = make_broker(slippage=FixedSlippage(0.0), lot_size="1")
    broker.on_bar(0, 100, 100, 100, 100, 1)
    broker.submit_market("b1", Side.BUY, D("1"), spend=D("0.01"))  # 100 at the close: one lot
    assert broker.on_bar(MIN, 20_000, 20_000, 20_000, 20_000, 1) == []
    [(order, why)] = broker.rejected
    assert order.order_id == "b1" and "less than one lot" in why and broker.position_side == 0
    with pytest.raises(ValueError, match="spend must be a positive share"):
        broker.submit_market("b2", Side.BUY, D("1"), spend=D("0"))
