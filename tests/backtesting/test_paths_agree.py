"""The vectorised path gives the same trades as the bar-by-bar path through the PaperBroker.

Bars, sides, prices and exit reasons are identical. Sizes and money differ only because the broker
floors sizes to the lot and keeps money as Decimal to 1e-8 while the fast path keeps float64: about
1e-7 relative here, checked at 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest

from backtesting.data import CandleData
from backtesting.engine import run_bars
from backtesting.result import TradeTable
from backtesting.runner import Prepared, compute_signals, run_backtest
from backtesting.spec import BacktestSpec
from backtesting.vectorised import fast_path_blocker, run_fast
from bot_manager.config import BotConfig
from strategies.registry import create_strategy
from tests.backtesting.builders import coinbase_1d, make_bot, make_candles, okx_5m


def assert_same_trades(fast: TradeTable, slow: TradeTable, final_fast: float, final_slow: float) -> None:
    assert len(fast) == len(slow) > 0
    assert np.array_equal(fast.side, slow.side)
    assert np.array_equal(fast.entry_bar, slow.entry_bar)
    assert np.array_equal(fast.exit_bar, slow.exit_bar)
    assert np.array_equal(fast.entry_price, slow.entry_price)
    assert np.array_equal(fast.exit_price, slow.exit_price, equal_nan=True)
    assert fast.exit_reason == slow.exit_reason
    np.testing.assert_allclose(fast.size, slow.size, rtol=1e-6)
    np.testing.assert_allclose(fast.fees, slow.fees, rtol=1e-6)
    assert final_fast == pytest.approx(final_slow, rel=1e-6)


def reversals(trades: TradeTable) -> int:
    """Trades entered on the bar the previous one exited, the other way (stop and reverse)."""
    return int(np.sum((trades.entry_bar[1:] == trades.exit_bar[:-1]) & (trades.side[1:] != trades.side[:-1])))


def both_paths(bot: BotConfig, data: CandleData, trade_start: int = 0) -> tuple:
    results = [run_backtest(BacktestSpec(bot=bot, path=path), Prepared(data, trade_start))
               for path in ("vectorised", "bar")]
    assert [r.path for r in results] == ["vectorised", "bar"]
    return tuple(results)


@pytest.mark.parametrize("options", [
    {},
    {"allow_short": True},
    {"allow_short": True, "slippage_bps": 5.0, "fee": 0.0005},
    {"size_fraction": 0.5, "fee": 0.002},
    {"allow_short": True, "size_fraction": 0.5},
    {"allow_short": True, "leverage": 3.0, "size_fraction": 2.0},
], ids=["long-only", "long-short", "slippage", "half-size", "half-size-long-short", "leverage"])
def test_sma_crossover_on_real_candles_gives_the_same_trades_on_both_paths(options: dict) -> None:
    data = okx_5m(20_000)
    fast, slow = both_paths(make_bot(**options), data, trade_start=500)
    assert_same_trades(fast.trades, slow.trades, fast.final_equity, slow.final_equity)
    assert np.array_equal(fast.position, slow.position)
    np.testing.assert_allclose(fast.equity, slow.equity, rtol=1e-6)
    assert fast.metrics["trades"] == slow.metrics["trades"]
    # A crossover alternates, so long/short every trade after the first is a stop-and-reverse.
    assert reversals(slow.trades) == (len(slow.trades) - 1 if options.get("allow_short") else 0)


def with_gapping_opens(walk: CandleData, rng: np.random.Generator) -> CandleData:
    """The same walk with every open gapping away from the last close (as daily data does)."""
    gaps = walk.open * np.exp(rng.normal(0.0, 0.003, len(walk)))
    return CandleData(walk.open_time, gaps, np.maximum(walk.high, gaps), np.minimum(walk.low, gaps), walk.close,
                      walk.volume, "random walk with gaps")


@pytest.mark.parametrize("size_at", ["signal_close", "fill"])
@pytest.mark.parametrize("seed", range(12))
def test_random_signal_sequences_give_the_same_trades_on_both_paths(seed: int, size_at: str) -> None:
    rng = np.random.default_rng(seed)
    data = make_candles(1_500, seed=seed)
    if size_at == "fill":  # sizing at the fill only differs from the close where the open gaps
        data = with_gapping_opens(data, np.random.default_rng(100 + seed))
    # Sparse random events with runs of repeated signals: exercises entries from flat, exits,
    # ignored repeats, and (with shorts) stop-and-reverse on every opposite signal.
    signals = rng.choice([-1, 0, 0, 0, 0, 0, 1], size=len(data)).astype(np.int8)
    bot = make_bot(timeframe="1m", allow_short=bool(seed % 2), slippage_bps=float(seed % 3), size_at=size_at,
                   size_fraction=1.0 if seed % 4 < 2 else 0.6)
    strategy = create_strategy("sma_cross", {})
    fast = run_fast(bot, data, signals, trade_start=seed * 10)
    slow = run_bars(bot, strategy, data, signals, trade_start=seed * 10)
    assert fast is not None
    assert_same_trades(fast.trades, slow.trades, float(fast.equity[-1]), float(slow.equity[-1]))
    assert np.array_equal(fast.position, slow.position)
    assert (reversals(slow.trades) > 0) == bool(seed % 2)


@pytest.mark.parametrize("options", [
    {},
    {"allow_short": True},
    {"size_fraction": 0.5, "slippage_bps": 3.0},
    {"allow_short": True, "size_fraction": 0.7},
    {"allow_short": True, "leverage": 2.0, "size_fraction": 1.5},
], ids=["long-only", "long-short", "half-size-slippage", "part-size-long-short", "leverage"])
def test_entries_sized_at_the_fill_give_the_same_trades_on_both_paths_on_gapping_opens(options: dict) -> None:
    data = coinbase_1d()  # real daily candles: most opens gap from the previous close
    bot = make_bot(params={"fast": 5, "slow": 20}, timeframe="1d", size_at="fill", **options)
    fast, slow = both_paths(bot, data)
    assert_same_trades(fast.trades, slow.trades, fast.final_equity, slow.final_equity)
    np.testing.assert_allclose(fast.equity, slow.equity, rtol=1e-6)
    # Sizing at the fill is not sizing at the close: same trades, other sizes, another final equity.
    at_close = run_backtest(BacktestSpec(bot=make_bot(params={"fast": 5, "slow": 20}, timeframe="1d", **options),
                                         path="bar"), Prepared(data, 0))
    assert np.array_equal(at_close.trades.entry_bar, slow.trades.entry_bar)
    assert abs(at_close.final_equity / slow.final_equity - 1) > 1e-6  # the paths agree to ~1e-9


def test_the_fast_path_steps_aside_for_rules_that_watch_prices_inside_a_position() -> None:
    strategy = create_strategy("sma_cross", {})
    assert fast_path_blocker(make_bot(), strategy) is None
    assert "stop-loss" in str(fast_path_blocker(make_bot(stop_loss_pct=2.0), strategy))
    data = okx_5m(3_000)
    result = run_backtest(BacktestSpec(bot=make_bot(stop_loss_pct=2.0)), Prepared(data, 0))
    assert result.path == "bar"


def test_signals_come_from_the_strategy_contract_on_the_whole_history() -> None:
    data = okx_5m(3_000)
    strategy = create_strategy("sma_cross", {"fast": 10, "slow": 30})
    codes = compute_signals(strategy, data)
    # The last closed candle's live signal equals the vectorised value for that bar.
    for row in (200, 1_234, 2_999):
        live = strategy.generate_signal(data.slice(0, row + 1).frame())
        assert {"BUY": 1, "SELL": -1, "HOLD": 0}[live.signal_type.value] == codes[row]


@pytest.mark.parametrize("allow_short", [False, True], ids=["long-only", "long-short"])
def test_equity_drained_by_fees_below_the_minimum_order_runs_on_both_paths_alike(allow_short: bool) -> None:
    """Dense signals at a 5% fee, all equity per entry: the equity falls below the minimum order, the
    broker skips that entry and every later one. The fast path ends the same way (it used to refuse)."""
    rng = np.random.default_rng(7)
    data = make_candles(4_000, seed=7)
    signals = rng.choice([-1, 0, 1], size=len(data)).astype(np.int8)
    bot = make_bot(timeframe="1m", fee=0.05, allow_short=allow_short)
    strategy = create_strategy("sma_cross", {})
    fast = run_fast(bot, data, signals)
    slow = run_bars(bot, strategy, data, signals)
    assert fast is not None
    assert slow.events.get("entry_blocked", 0) > 0  # the drain really happened, long before the end
    assert slow.trades.exit_bar[-1] < len(data) - 100
    f, s = fast.trades, slow.trades
    assert len(f) == len(s) > 50
    for column in ("side", "entry_bar", "exit_bar", "entry_price", "exit_price"):
        assert np.array_equal(getattr(f, column), getattr(s, column), equal_nan=True), column
    assert f.exit_reason == s.exit_reason
    assert np.array_equal(fast.position, slow.position)
    # Money differs by the broker's rounding (sizes floored to the 1e-8 lot, cash kept to 1e-8), which is
    # large relative to a drained equity (the 1e-8 lot is 2e-4 USDT at these prices): checked to 1e-7 of
    # the starting 10,000.
    np.testing.assert_allclose(f.fees, s.fees, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(fast.equity, slow.equity, rtol=1e-6, atol=1e-3)
    auto = run_backtest(BacktestSpec(bot=bot, path="vectorised"), Prepared(data, 0), signals=signals)
    assert auto.path == "vectorised" and len(auto.trades) == len(slow.trades)


def test_a_skipped_reversal_followed_by_an_entry_that_fits_again_is_left_to_the_bar_path() -> None:
    """The broker sizes a reversal on the equity at the signal close (the long still marked there); the
    price gaps up 1% to the next open, where the long exits. With the minimum order between the two
    equities the reversal entry is skipped, yet the next entry from flat fits: only the bar path knows
    that sequence, so the fast path steps aside."""
    from decimal import Decimal

    base = make_candles(600, seed=3)
    opens = base.open.copy()
    opens[101] = base.close[100] * 1.01
    data = CandleData(base.open_time, opens, np.maximum(base.high, opens), base.low, base.close, base.volume,
                      "random walk with a gap")
    signals = np.zeros(len(data), dtype=np.int8)
    signals[[50, 100, 160]] = [1, -1, 1]  # long (a loser), stop-and-reverse to short at the gap, long again
    bot = make_bot(timeframe="1m", fee=0.001, allow_short=True)
    free = run_fast(bot, data, signals)
    assert free is not None and len(free.trades) == 3
    t = free.trades
    marked = 10_000 + t.size[0] * (data.close[100] - t.entry_price[0]) - 0.001 * t.size[0] * t.entry_price[0]
    after_exit = 10_000 + t.pnl[0]
    assert marked < after_exit < 10_000  # the gap: the exit fills above the signal close
    bot = bot.model_copy(update={"min_order_quote": Decimal(round((marked + after_exit) / 2, 2))})
    assert run_fast(bot, data, signals) is None
    slow = run_bars(bot, create_strategy("sma_cross", {}), data, signals)
    assert list(slow.trades.entry_bar) == [51, 161] and list(slow.trades.side) == [1, 1]
    assert run_backtest(BacktestSpec(bot=bot), Prepared(data, 0), signals=signals).path == "bar"
