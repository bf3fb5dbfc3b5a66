"""A backtest makes the same fills as a live paper bot fed the same candles one by one.

The live side is ``BotEngine.process`` with the strategy asked on every closed candle (the path a
running bot takes); the backtest side is ``run_bars`` with the signals computed once for the whole
history. Same broker, same risk rules, same order ids.
"""

from __future__ import annotations

import pytest

from backtesting.engine import run_bars
from backtesting.runner import compute_signals
from bot_manager.engine import BotEngine
from strategies.bars import Bars
from strategies.registry import create_strategy
from tests.backtesting.builders import make_bot, okx_5m


def fill_key(fill: object) -> tuple:
    f = fill
    return (f.order_id, f.ts_ms, f.side, f.quantity, f.price, f.fee, f.reason, f.realised_pnl,  # type: ignore[attr-defined]
            f.position_after, f.balance_after)  # type: ignore[attr-defined]


@pytest.mark.parametrize("options", [
    {"allow_short": True},
    {"stop_loss_pct": 0.6, "take_profit_pct": 1.2, "trailing_stop_pct": 0.8, "slippage_bps": 3.0},
], ids=["plain", "exits"])
def test_backtest_fills_equal_a_live_bot_fed_the_same_candles(options: dict) -> None:
    data = okx_5m(2_500)
    bot = make_bot(**options)
    if "stop_loss_pct" in options:
        risk = bot.risk.model_copy(update={"daily_loss_limit_pct": 3.0, "cooldown_candles": 5,
                                           "max_drawdown_pct": 40.0})
        bot = bot.model_copy(update={"risk": risk})
    strategy = create_strategy("sma_cross", {"fast": 10, "slow": 30})

    live = BotEngine(bot, strategy)
    bars = Bars(data.open_time, data.open, data.high, data.low, data.close, data.volume)
    live_fills = []
    for k in range(len(data) - 1):  # the backtest never acts on the last bar (nothing fills it)
        outcome = live.process(int(data.open_time[k]), float(data.open[k]), float(data.high[k]),
                               float(data.low[k]), float(data.close[k]), float(data.volume[k]), bars.slice(0, k + 1))
        live_fills.extend(outcome.fills)
    outcome = live.process(int(data.open_time[-1]), float(data.open[-1]), float(data.high[-1]),
                           float(data.low[-1]), float(data.close[-1]), float(data.volume[-1]), None)
    live_fills.extend(outcome.fills)

    backtest = run_bars(bot, strategy, data, compute_signals(strategy, data))
    assert len(live_fills) > 100
    assert [fill_key(f) for f in backtest.fills] == [fill_key(f) for f in live_fills]
    assert backtest.equity[-1] == pytest.approx(live.broker.equity())
    if "stop_loss_pct" in options:
        reasons = {f.reason for f in live_fills}
        assert {"stop_loss", "take_profit"} <= reasons or {"stop_loss", "trailing_stop"} <= reasons
