"""The bar-by-bar engine's trading rules, on small hand-made candle series."""

from __future__ import annotations

import numpy as np
import pytest

from backtesting.data import CandleData
from backtesting.engine import RunCancelled, run_bars
from backtesting.runner import Prepared, run_backtest
from backtesting.spec import BacktestSpec
from strategies.registry import create_strategy
from tests.backtesting.builders import make_bot, okx_5m

T0 = 1_700_006_400_000  # a UTC midnight
STRATEGY = create_strategy("sma_cross", {})


def candles(rows: list[tuple[float, float, float, float]]) -> CandleData:
    """(open, high, low, close) per 1-minute bar."""
    array = np.array(rows, dtype=np.float64)
    times = T0 + np.arange(len(rows), dtype=np.int64) * 60_000
    return CandleData(times, array[:, 0], array[:, 1], array[:, 2], array[:, 3], np.full(len(rows), 5.0))


FIVE_BARS = candles([(100, 101, 99, 100), (100, 102, 99, 101), (102, 104, 101, 103),
                     (103, 106, 102, 105), (110, 111, 108, 109)])


def test_a_signal_fills_at_the_next_open_with_slippage_and_a_fee_on_each_fill() -> None:
    bot = make_bot(timeframe="1m", cash=1_000.0, fee=0.001, slippage_bps=10.0, size_fraction=0.5)
    signals = np.array([0, 1, 0, -1, 0], dtype=np.int8)  # BUY on bar 1, SELL on bar 3
    run = run_bars(bot, STRATEGY, FIVE_BARS, signals)
    (trade,) = run.trades.records()
    # Entry: bar 2 opens at 102, +10 bps slippage = 102.102. Size: 50% of 1000 at the signal close
    # 101 = 4.95049504 (rounded down to the lot); the fill allows 1000 / (102.102 * 1.001) = 9.78.
    assert (trade.entry_bar, trade.entry_price) == (2, pytest.approx(102.102))
    assert trade.size == pytest.approx(4.95049504)
    # Exit: bar 4 opens at 110, -10 bps = 109.89.
    assert (trade.exit_bar, trade.exit_price) == (4, pytest.approx(109.89))
    # Money is kept to 1e-8 USDT, half-even:
    #   entry notional 4.95049504 x 102.102 = 505.45544457|408 -> 505.45544457, fee 0.1% 0.50545544|457 -> 0.50545544
    #   exit notional  4.95049504 x 109.89  = 544.00989994|56  -> 544.00989995, fee 0.1% 0.54400989|995 -> 0.54400990
    #   PnL 544.00989995 - 505.45544457 - 0.50545544 - 0.54400990 = 38.55445538 - 1.04946534 = 37.50499004
    assert trade.fees == pytest.approx(0.50545544 + 0.54400990, abs=1e-9)
    assert trade.pnl == pytest.approx(37.50499004, abs=1e-9)
    assert run.equity[-1] == pytest.approx(1_000 + trade.pnl)
    assert run.position.tolist() == [0, 0, 1, 1, 0]


def test_a_signal_on_the_last_bar_is_never_traded() -> None:
    run = run_bars(make_bot(timeframe="1m"), STRATEGY, FIVE_BARS, np.array([0, 0, 0, 0, 1], dtype=np.int8))
    assert len(run.trades) == 0 and run.equity.tolist() == [10_000.0] * 5


def test_stop_loss_and_take_profit_inside_one_bar_assume_the_stop_first() -> None:
    # Entry at 100 (bar 2 open); stop 2% = 98, take-profit 3% = 103. Bar 3 touches both.
    data = candles([(100, 100, 100, 100), (100, 100, 100, 100), (100, 101, 99.5, 100.5),
                    (100.5, 104, 97, 101), (101, 101, 101, 101)])
    bot = make_bot(timeframe="1m", fee=0.0, stop_loss_pct=2.0, take_profit_pct=3.0)
    run = run_bars(bot, STRATEGY, data, np.array([0, 1, 0, 0, 0], dtype=np.int8))
    (trade,) = run.trades.records()
    assert trade.exit_reason == "stop_loss" and trade.exit_price == pytest.approx(98.0)
    assert trade.exit_bar == 3


def test_a_gap_through_the_stop_fills_at_the_open() -> None:
    data = candles([(100, 100, 100, 100), (100, 100, 100, 100), (100, 100, 100, 100),
                    (95, 96, 94, 95), (95, 95, 95, 95)])
    bot = make_bot(timeframe="1m", fee=0.0, stop_loss_pct=2.0)
    run = run_bars(bot, STRATEGY, data, np.array([0, 1, 0, 0, 0], dtype=np.int8))
    assert run.trades.records()[0].exit_price == pytest.approx(95.0)


def test_later_candles_cannot_change_earlier_trades() -> None:
    data = okx_5m(6_000)
    cut = 4_000
    rng = np.random.default_rng(7)
    factor = np.concatenate([np.ones(cut), rng.uniform(0.97, 1.03, len(data) - cut)])
    altered = CandleData(data.open_time, data.open * factor, data.high * factor * 1.3, data.low * factor * 0.7,
                         data.close * factor, data.volume)
    for path in ("vectorised", "bar"):
        spec = BacktestSpec(bot=make_bot(allow_short=True), path=path)
        original = run_backtest(spec, Prepared(data, 0))
        changed = run_backtest(spec, Prepared(altered, 0))
        before = original.trades.exit_bar[(original.trades.exit_bar >= 0) & (original.trades.exit_bar < cut)]
        k = before.size
        assert k > 50
        assert np.array_equal(original.trades.entry_price[:k], changed.trades.entry_price[:k])
        assert np.array_equal(original.trades.exit_price[:k], changed.trades.exit_price[:k])
        assert np.array_equal(original.equity[:cut], changed.equity[:cut])


def test_nothing_is_traded_before_the_start_of_the_period() -> None:
    data = okx_5m(3_000)
    result = run_backtest(BacktestSpec(bot=make_bot()), Prepared(data, 1_000))
    assert result.trades.entry_bar.min() > 1_000
    assert result.times[0] == data.open_time[1_000] and result.equity.size == 2_000
    assert result.signal_bars.min() >= 1_000


def test_close_at_end_exits_at_the_last_close_with_a_fee() -> None:
    bot = make_bot(timeframe="1m", fee=0.001)
    run = run_bars(bot, STRATEGY, FIVE_BARS, np.array([0, 0, 1, 0, 0], dtype=np.int8), close_at_end=True)
    (trade,) = run.trades.records()
    assert trade.exit_reason == "end_of_data" and trade.exit_price == 109.0
    assert trade.exit_time_ms == FIVE_BARS.open_time[-1] + 60_000
    assert run.equity[-1] == pytest.approx(10_000 + trade.pnl)


def test_the_drawdown_kill_switch_closes_and_stops_trading() -> None:
    data = okx_5m(20_000)
    bot = make_bot().model_copy(update={"risk": make_bot().risk.model_copy(update={"max_drawdown_pct": 5.0})})
    result = run_backtest(BacktestSpec(bot=bot), Prepared(data, 0))
    assert result.path == "bar"
    assert "kill switch" in result.metrics["halted_reason"]
    last_exit = result.trades.records()[-1]
    assert last_exit.exit_reason == "kill_switch"
    assert result.position[last_exit.exit_bar:].max() == 0


def test_a_progress_callback_can_cancel_a_run() -> None:
    data = okx_5m()
    seen: list[float] = []

    def progress(fraction: float) -> bool:
        seen.append(fraction)
        return True

    with pytest.raises(RunCancelled):
        run_bars(make_bot(), STRATEGY, data, np.zeros(len(data), dtype=np.int8), progress=progress)
    assert seen == [65_536 / len(data)]
