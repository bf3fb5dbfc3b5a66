"""Backtest statistics: pure functions of the equity curve, the trades and the prices.

Definitions (docs/backtesting.md has the same list):

* per-bar returns ``r_k = E_k / E_{k-1} - 1`` with ``E_{-1}`` the starting cash;
* annualisation uses 365-day years (crypto trades every day): ``bars_per_year = 365 d / bar``;
* Sharpe ``mean(r) / std(r, ddof=1) * sqrt(bars_per_year)`` (risk-free rate 0);
* Sortino ``mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(bars_per_year)``;
* max drawdown ``max_k (1 - E_k / max_{j<=k} E_j)`` with the starting cash as the first peak; its
  duration is the longest run of consecutive bars closing below the running peak;
* Calmar ``annualised_return / max_drawdown``;
* trade statistics use closed trades; ``expectancy`` is the mean net PnL per trade in cash;
* buy and hold is ``close_last / close_first - 1`` over the traded window.

Undefined values (no trades, zero volatility, no losing trade) are ``None``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from backtesting.result import TradeTable

YEAR_MS = 365 * 86_400_000


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def bar_returns(equity: np.ndarray, initial_cash: float) -> np.ndarray:
    previous = np.concatenate([[initial_cash], equity[:-1]])
    return np.asarray(equity / previous - 1.0, dtype=np.float64)


def max_drawdown(equity: np.ndarray, initial_cash: float) -> tuple[float, int]:
    """Deepest fall from a running peak (a fraction) and the longest underwater stretch in bars."""
    if equity.size == 0:
        return 0.0, 0
    curve = np.concatenate([[initial_cash], equity])
    peaks = np.maximum.accumulate(curve)
    depth = float(np.max(1.0 - curve / peaks))
    underwater = curve < peaks
    longest = 0
    if underwater.any():
        # Lengths of runs of True: bars spent below the last peak.
        padded = np.concatenate([[False], underwater, [False]]).astype(np.int8)
        starts = np.flatnonzero(np.diff(padded) == 1)
        ends = np.flatnonzero(np.diff(padded) == -1)
        longest = int(np.max(ends - starts))
    return depth, longest


def sharpe_ratio(returns: np.ndarray, bars_per_year: float) -> float | None:
    if returns.size < 2:
        return None
    std = float(np.std(returns, ddof=1))
    if std == 0.0 or not math.isfinite(std):
        return None
    return _finite(float(np.mean(returns)) / std * math.sqrt(bars_per_year))


def sortino_ratio(returns: np.ndarray, bars_per_year: float) -> float | None:
    if returns.size == 0:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if downside == 0.0:
        return None
    return _finite(float(np.mean(returns)) / downside * math.sqrt(bars_per_year))


def annualised_return(total_return: float, duration_ms: float) -> float | None:
    if duration_ms <= 0 or total_return <= -1.0:
        return None
    return _finite((1.0 + total_return) ** (YEAR_MS / duration_ms) - 1.0)


def trade_statistics(trades: TradeTable) -> dict[str, Any]:
    closed = trades.closed
    pnl = trades.pnl[closed]
    returns = trades.return_pct[closed]
    held = (trades.exit_time[closed] - trades.entry_time[closed]).astype(np.float64)
    gains, losses = float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum())
    n = int(pnl.size)
    return {
        "trades": n,
        "open_trades": len(trades) - n,
        "win_rate": None if n == 0 else float(np.count_nonzero(pnl > 0)) / n,
        "profit_factor": None if losses == 0 else gains / losses,
        "expectancy": None if n == 0 else float(pnl.mean()),
        "avg_trade_return": None if n == 0 else float(returns.mean()),
        "best_trade_return": None if n == 0 else float(returns.max()),
        "worst_trade_return": None if n == 0 else float(returns.min()),
        "avg_holding_ms": None if n == 0 else float(held.mean()),
        "fees_paid": float(trades.fees.sum()),
    }


def compute_metrics(*, equity: np.ndarray, position: np.ndarray, close: np.ndarray, trades: TradeTable,
                    initial_cash: float, bar_ms: int) -> dict[str, Any]:
    """Every metric of a run, as a JSON-ready dict (floats or ``None``)."""
    n = int(equity.size)
    duration_ms = float(n * bar_ms)
    bars_per_year = YEAR_MS / bar_ms if bar_ms > 0 else 0.0
    final = float(equity[-1]) if n else initial_cash
    total = final / initial_cash - 1.0
    returns = bar_returns(equity, initial_cash) if n else np.empty(0)
    depth, underwater_bars = max_drawdown(equity, initial_cash)
    annual = annualised_return(total, duration_ms)
    metrics: dict[str, Any] = {
        "initial_cash": float(initial_cash),
        "final_equity": final,
        "total_return": total,
        "annualised_return": annual,
        "sharpe": sharpe_ratio(returns, bars_per_year),
        "sortino": sortino_ratio(returns, bars_per_year),
        "calmar": None if depth == 0 or annual is None else annual / depth,
        "max_drawdown": depth,
        "max_drawdown_duration_bars": underwater_bars,
        "max_drawdown_duration_ms": underwater_bars * bar_ms,
        "exposure_time": float(np.count_nonzero(position)) / n if n else 0.0,
        "buy_and_hold_return": float(close[-1] / close[0] - 1.0) if close.size else None,
        "bars": n,
        "duration_ms": duration_ms,
    }
    metrics.update(trade_statistics(trades))
    return metrics
