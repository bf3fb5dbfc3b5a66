"""Metrics against values computed by hand on a tiny series (each step written out)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtesting.metrics import compute_metrics
from backtesting.result import TradeTable

DAY = 86_400_000


def tiny_trades() -> TradeTable:
    # Four closed trades of 100 notional (entry 100 x size 1) and one still open.
    # pnl: +10, -5, +20, -5 (open: -0.5, its entry fee); fees 1 each, 0.5 for the open one.
    # held: 1, 2, 1 and 4 days.
    return TradeTable.from_columns(
        side=[1, 1, -1, 1, 1], entry_bar=[0, 1, 2, 3, 4], exit_bar=[1, 3, 3, 7, -1],
        entry_time=[0, DAY, 2 * DAY, 3 * DAY, 4 * DAY], exit_time=[DAY, 3 * DAY, 3 * DAY, 7 * DAY, -1],
        entry_price=[100.0] * 5, exit_price=[110.0, 95.0, 80.0, 95.0, float("nan")], size=[1.0] * 5,
        fees=[1.0, 1.0, 1.0, 1.0, 0.5], pnl=[10.0, -5.0, 20.0, -5.0, -0.5],
        exit_reason=["signal SELL"] * 4 + [""])


def tiny_metrics() -> dict:
    # Starting cash 100; equity at the close of four daily bars: 110, 99, 121, 121.
    return compute_metrics(equity=np.array([110.0, 99.0, 121.0, 121.0]), position=np.array([0, 1, 1, 0]),
                           close=np.array([50.0, 55.0, 45.0, 60.0]), trades=tiny_trades(), initial_cash=100.0,
                           bar_ms=DAY)


def test_returns_ratios_and_drawdown_match_the_hand_computation() -> None:
    m = tiny_metrics()
    # Bar returns: 110/100-1 = 1/10, 99/110-1 = -1/10, 121/99-1 = 2/9, 121/121-1 = 0.
    r = [1 / 10, -1 / 10, 2 / 9, 0.0]
    mean = (1 / 10 - 1 / 10 + 2 / 9 + 0) / 4  # = 1/18
    assert mean == pytest.approx(1 / 18)
    # Sample variance: sum((r - 1/18)^2) / 3.
    deviations = [x - 1 / 18 for x in r]  # 4/90, -14/90, 15/90, -5/90
    assert deviations == pytest.approx([4 / 90, -14 / 90, 15 / 90, -5 / 90])
    variance = (16 + 196 + 225 + 25) / 8100 / 3  # = 462 / 24300
    assert m["sharpe"] == pytest.approx((1 / 18) / math.sqrt(462 / 24300) * math.sqrt(365))
    # Downside deviation: only -1/10 is negative: sqrt((1/100) / 4) = 1/20.
    assert m["sortino"] == pytest.approx((1 / 18) / (1 / 20) * math.sqrt(365))
    assert variance == pytest.approx(np.var(r, ddof=1))
    # Total return 121/100 - 1 = 0.21 over 4 days; annualised (1.21)^(365/4) - 1.
    assert m["total_return"] == pytest.approx(0.21)
    assert m["annualised_return"] == pytest.approx(1.21 ** (365 / 4) - 1)
    # Peaks 100, 110, 110, 121, 121: the deepest fall is 99 after 110 = 10%, one bar under water.
    assert m["max_drawdown"] == pytest.approx(0.1)
    assert m["max_drawdown_duration_bars"] == 1
    assert m["max_drawdown_duration_ms"] == DAY
    assert m["calmar"] == pytest.approx((1.21 ** (365 / 4) - 1) / 0.1)
    assert m["final_equity"] == 121.0


def test_trade_statistics_match_the_hand_computation() -> None:
    m = tiny_metrics()
    assert m["trades"] == 4 and m["open_trades"] == 1
    assert m["win_rate"] == pytest.approx(2 / 4)
    assert m["profit_factor"] == pytest.approx((10 + 20) / (5 + 5))
    assert m["expectancy"] == pytest.approx((10 - 5 + 20 - 5) / 4)
    # Returns on the 100 notional: 0.10, -0.05, 0.20, -0.05.
    assert m["avg_trade_return"] == pytest.approx((0.10 - 0.05 + 0.20 - 0.05) / 4)
    assert m["best_trade_return"] == pytest.approx(0.20)
    assert m["worst_trade_return"] == pytest.approx(-0.05)
    assert m["avg_holding_ms"] == pytest.approx((1 + 2 + 1 + 4) / 4 * DAY)
    assert m["fees_paid"] == pytest.approx(4.5)  # the open trade's entry fee counts too


def test_exposure_and_buy_and_hold_match_the_hand_computation() -> None:
    m = tiny_metrics()
    assert m["exposure_time"] == pytest.approx(2 / 4)  # in a position at 2 of 4 closes
    assert m["buy_and_hold_return"] == pytest.approx(60 / 50 - 1)


def test_undefined_ratios_are_none_rather_than_infinite() -> None:
    m = compute_metrics(equity=np.full(5, 100.0), position=np.zeros(5), close=np.full(5, 10.0),
                        trades=TradeTable.empty(), initial_cash=100.0, bar_ms=DAY)
    assert m["trades"] == 0
    for key in ("sharpe", "sortino", "calmar", "win_rate", "profit_factor", "expectancy", "avg_holding_ms"):
        assert m[key] is None, key
    assert m["max_drawdown"] == 0.0 and m["total_return"] == 0.0
