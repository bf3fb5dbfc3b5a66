"""Performance metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot_manager.performance import (
    drawdown_series,
    max_drawdown,
    profit_factor,
    sharpe_ratio,
    summarize,
    total_return,
    win_rate,
)


def test_return_and_drawdown_of_a_small_curve() -> None:
    equity = np.array([100.0, 120.0, 90.0, 110.0, 130.0, 104.0])
    assert total_return(equity) == pytest.approx(0.04)
    assert drawdown_series(equity).tolist() == pytest.approx([0, 0, 0.25, 30 / 120 - 20 / 120, 0, 0.2])
    assert max_drawdown(equity) == pytest.approx(0.25)


def test_win_rate_and_profit_factor_of_trades() -> None:
    pnls = np.array([10.0, -5.0, 20.0, -15.0, 0.0])
    assert win_rate(pnls) == pytest.approx(0.4)
    assert profit_factor(pnls) == pytest.approx(30 / 20)
    assert profit_factor(np.array([5.0])) == math.inf
    assert (win_rate(np.array([])), profit_factor(np.array([]))) == (0.0, 0.0)


def test_sharpe_is_the_annualised_mean_over_the_sample_std_of_bar_returns() -> None:
    equity = np.array([100.0, 101.0, 100.0, 102.0])
    returns = [0.01, -1 / 101, 0.02]
    mean = sum(returns) / 3
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / 2)
    assert sharpe_ratio(equity, 365) == pytest.approx(mean / std * math.sqrt(365))
    assert sharpe_ratio(np.array([100.0, 100.0, 100.0]), 365) == 0.0


def test_summarize_starts_the_curve_at_the_starting_equity() -> None:
    perf = summarize(np.array([1100.0, 900.0]), np.array([100.0, -200.0]), starting_equity=1000.0,
                     bar_ms=86_400_000, fees_paid=3.5)
    assert (perf.total_return, perf.max_drawdown, perf.trades) == (pytest.approx(-0.1), pytest.approx(200 / 1100), 2)
    assert perf.to_dict()["profit_factor"] == pytest.approx(0.5) and perf.fees_paid == 3.5
    assert summarize(np.array([]), np.array([5.0]), starting_equity=1.0, bar_ms=1).to_dict()["profit_factor"] is None
