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


def test_a_market_round_trip_matches_the_hand_computation_to_the_cent() -> None:
    broker = make_broker()
    assert broker.on_bar(0, 49_000, 49_500, 48_900, 49_200, 10) == ()
    broker.submit_market("b1", Side.BUY, D("0.1"))
    [buy] = broker.on_bar(MIN, 50_000, 50_100, 49_900, 51_000, 10)
    # 50000 + 10 bps = 50050.00; notional 5005.00; taker fee 0.1% = 5.005 -> 5.01 (half up)
    assert (buy.price, buy.fee, buy.liquidity, buy.balance_after) == (D("50050.00"), D("5.01"), Liquidity.TAKER,
                                                                       D("9994.99"))
    assert broker.equity() == pytest.approx(9994.99 + 0.1 * 51_000 - 5005.00)
    assert broker.equity_decimal() == D("10089.99")
    broker.submit_market("s1", Side.SELL, D("0.1"))
    [sell] = broker.on_bar(2 * MIN, 52_000, 52_000, 51_500, 51_800, 10)
    # 52000 - 10 bps = 51948.00; notional 5194.80; fee 5.1948 -> 5.19; realised 5194.80 - 5005.00 = 189.80
    assert (sell.price, sell.fee, sell.realised_pnl) == (D("51948.00"), D("5.19"), D("189.80"))
    assert broker.balance == D("10000") - D("5.01") + D("189.80") - D("5.19") == D("10179.60")
    assert broker.fees_paid == D("10.20") and broker.realised_pnl == D("189.80")
    assert broker.position_side == 0 and broker.quantity == 0


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
    assert (fill.price, fill.liquidity, fill.fee) == (D("95"), Liquidity.MAKER, D("0.08"))  # 95 x 0.08%


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


def test_partial_exits_split_the_cost_basis_to_the_cent() -> None:
    broker = make_broker(slippage=FixedSlippage(0), fees=FeeModel(D(0), D(0)))
    broker.on_bar(0, 30, 30, 30, 30, 1)
    broker.submit_market("b", Side.BUY, D("3"))
    broker.on_bar(MIN, 10.01, 10.01, 10.01, 10.01, 1)  # cost 30.03
    broker.submit_market("s", Side.SELL, D("1"))
    [fill] = broker.on_bar(2 * MIN, 11, 11, 11, 11, 1)
    assert fill.realised_pnl == D("0.99")  # 11.00 - 10.01
    assert broker.cost == D("20.02") and broker.quantity == D("2")


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
