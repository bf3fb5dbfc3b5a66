"""Each built-in's rule on a tiny series written by hand, with the expected signal bars reasoned in
comments (bar = 0-based row index). All bars lie within one UTC day, so each window is the prefix."""

from __future__ import annotations

import numpy as np

from config.domain import SignalType
from strategies.registry import create_strategy
from tests.strategies.candles import bars_at, make_frame


def test_sma_cross_buys_on_the_bar_the_fast_average_crosses_above_and_sells_when_it_crosses_below() -> None:
    # fast=2, slow=3 on closes 10 10 10 10 13 13 7 7 7
    # SMA2 (bars 1..8): 10 10 10 11.5 13 10 7 7;  SMA3 (bars 2..8): 10 10 11 12 11 9 7
    # bar 3: 10 vs 10 (equal); bar 4: 11.5 > 11 after 10 <= 10 -> BUY
    # bar 6: 10 < 11 after 13 >= 12 -> SELL; bar 8: 7 == 7 is not a cross -> nothing
    codes = create_strategy("sma_cross", {"fast": 2, "slow": 3}).generate_signals(
        make_frame([10, 10, 10, 10, 13, 13, 7, 7, 7]))
    assert bars_at(codes, 1) == [4]
    assert bars_at(codes, -1) == [6]


def test_ema_cross_follows_a_step_up_then_a_step_down() -> None:
    # fast=2 (k=2/3), slow=4 (k=0.4). Flat at 10: both EMAs are exactly 10 (no cross while equal).
    # bar 8 steps to 20: fast 16.67 > slow 14 after 10 <= 10 -> BUY
    # bars 9, 10 at 20: fast 18.89 / 19.63 stay above slow 16.4 / 17.84
    # bar 11 drops to 5: fast 19.63 + (5 - 19.63) * 2/3 = 9.88 < slow 17.84 + (5 - 17.84) * 0.4 = 12.70 -> SELL
    codes = create_strategy("ema_cross", {"fast": 2, "slow": 4}).generate_signals(
        make_frame([10] * 8 + [20, 20, 20, 5]))
    assert bars_at(codes, 1) == [8]
    assert bars_at(codes, -1) == [11]


def test_rsi_reversion_buys_when_rsi_leaves_oversold_and_sells_when_it_leaves_overbought() -> None:
    # period=2, Wilder smoothing. Changes from bar 1: -1 -1 -1 +1 +1 +1 +1 -1 -1
    # bar 2: avg gain 0, avg loss 1 -> RSI 0;  bar 3: 0 / 1 -> 0
    # bar 4: gain (0+1)/2 = .5, loss (1+0)/2 = .5 -> RSI 50: crossed back above 30 -> BUY
    # bars 5..7: RSI 75, 87.5, 93.75 (entering overbought is not a signal)
    # bar 8: gain .46875, loss .53125 -> RSI 46.9: crossed back below 70 -> SELL
    # bar 9: RSI 23.4 (entering oversold is not a signal)
    codes = create_strategy("rsi_reversion", {"period": 2, "lower": 30, "upper": 70}).generate_signals(
        make_frame([10, 9, 8, 7, 8, 9, 10, 11, 10, 9]))
    assert bars_at(codes, 1) == [4]
    assert bars_at(codes, -1) == [8]


def test_macd_cross_buys_on_a_step_up_and_sells_when_momentum_fades() -> None:
    # fast=2 (k=2/3), slow=3 (k=1/2), signal=2 (k=2/3). Flat at 10: MACD = signal = 0 exactly.
    # bar 8 steps to 20: fast 16.667, slow 15 -> MACD 1.667; signal 1.111 -> MACD above, was 0 <= 0 -> BUY
    # bar 9: fast 18.889, slow 17.5 -> MACD 1.389; signal 1.296 -> still above
    # bar 10: fast 19.630, slow 18.75 -> MACD 0.880; signal 1.019 -> crossed below -> SELL
    codes = create_strategy("macd_cross", {"fast": 2, "slow": 3, "signal": 2}).generate_signals(
        make_frame([10] * 8 + [20, 20, 20, 20]))
    assert bars_at(codes, 1) == [8]
    assert bars_at(codes, -1) == [10]


def test_bollinger_breakout_and_reversion_take_opposite_sides_of_the_same_band_crossings() -> None:
    # period=3, std=1. Flat at 10: bands collapse onto 10.
    # bar 5 = 12: SMA 10.667, population sd 0.943 -> upper 11.61; 12 > 11.61 after 10 <= 10 -> crossed above
    # bar 6 = 12: SMA 11.333, sd 0.943 -> upper 12.28; 12 is inside -> nothing
    # bar 7 = 6: SMA 10, sd 2.83 -> lower 7.17; 6 < 7.17 after 12 >= 10.39 -> crossed below
    frame = make_frame([10, 10, 10, 10, 10, 12, 12, 6])
    breakout = create_strategy("bollinger", {"period": 3, "std": 1.0, "mode": "breakout"}).generate_signals(frame)
    reversion = create_strategy("bollinger", {"period": 3, "std": 1.0, "mode": "reversion"}).generate_signals(frame)
    assert (bars_at(breakout, 1), bars_at(breakout, -1)) == ([5], [7])
    assert (bars_at(reversion, 1), bars_at(reversion, -1)) == ([7], [5])


def test_donchian_breakout_trades_the_first_close_beyond_the_previous_channel() -> None:
    # period=3; high = close + 1, low = close - 1.
    # closes 10 10 10 10 12 12 13 9 5
    # top (max high of the 3 bars before): bar 3: 11, 4: 11, 5: 13, 6: 13, 7: 14, 8: 14
    # bottom (min low of the 3 bars before): bar 3: 9, 4: 9, 5: 9, 6: 9, 7: 11, 8: 8
    # bar 4: 12 > 11 after 10 <= 11 -> BUY; bars 5, 6: 12 and 13 are not above 13 -> nothing
    # bar 7: 9 < 11 after 13 >= 9 -> SELL; bar 8: 5 < 8 but already below at bar 7 -> nothing
    closes = np.array([10, 10, 10, 10, 12, 12, 13, 9, 5], dtype=float)
    codes = create_strategy("donchian_breakout", {"period": 3}).generate_signals(
        make_frame(closes, highs=closes + 1, lows=closes - 1))
    assert bars_at(codes, 1) == [4]
    assert bars_at(codes, -1) == [7]


def test_signals_before_the_warmup_are_hold_even_when_the_rule_would_fire() -> None:
    # sma_cross fast=2 slow=3 needs 4 candles: a cross visible from bar 2 to bar 3 is the first possible.
    # closes 10 10 13: SMA3 exists only on bar 2, so no bar before 3 may carry a signal.
    strategy = create_strategy("sma_cross", {"fast": 2, "slow": 3})
    assert strategy.warmup == 4
    assert not strategy.generate_signals(make_frame([10, 10, 13])).any()
    signal = strategy.generate_signal(make_frame([10, 10, 13]))
    assert signal.signal_type is SignalType.HOLD and "warming up" in signal.reason


def test_a_live_signal_carries_strength_reason_price_and_candle_time() -> None:
    frame = make_frame([10, 10, 10, 10, 13])
    signal = create_strategy("sma_cross", {"fast": 2, "slow": 3}).generate_signal(frame)
    assert signal.signal_type is SignalType.BUY
    assert signal.price == 13.0 and signal.candle_time_ms == int(frame["open_time"].iloc[-1])
    assert "crossed above" in signal.reason and 0.0 < signal.strength <= 1.0


def test_the_example_user_strategy_buys_when_momentum_rises_through_its_threshold() -> None:
    # period=1, threshold=1%: ROC(1) = one-bar change. 100 -> 100.5 (+0.5%) -> 102 (+1.49%): BUY on bar 2;
    # 102 -> 100 (-1.96%): SELL on bar 3 (rose/fell *through* the level, not merely beyond it).
    codes = create_strategy("example_momentum", {"period": 1, "threshold": 1.0}).generate_signals(
        make_frame([100, 100.5, 102, 100, 99]))
    assert bars_at(codes, 1) == [2]
    assert bars_at(codes, -1) == [3]
