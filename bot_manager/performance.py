"""Performance metrics as pure functions over arrays (shared with the backtester).

* ``equity``: equity at the close of each bar, in time order (float64).
* ``trade_pnls``: net PnL of each closed trade (realised PnL minus that trade's fees).
Ratios are fractions (0.05 = 5%), never percentages.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

YEAR_MS = 365 * 86_400_000


def total_return(equity: np.ndarray, starting_equity: float | None = None) -> float:
    """Final equity over the start (``starting_equity`` or the first point), minus one."""
    if len(equity) == 0:
        return 0.0
    start = float(equity[0]) if starting_equity is None else starting_equity
    return float(equity[-1]) / start - 1.0 if start > 0 else 0.0


def drawdown_series(equity: np.ndarray) -> np.ndarray:
    """Drawdown from the running peak at each point (0 at a new high, 0.25 = 25% below the peak)."""
    if len(equity) == 0:
        return np.empty(0)
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, 1.0 - equity / peak, 0.0)


def max_drawdown(equity: np.ndarray) -> float:
    """Largest drawdown from a running peak (fraction)."""
    series = drawdown_series(equity)
    return float(series.max()) if len(series) else 0.0


def sharpe_ratio(equity: np.ndarray, periods_per_year: float) -> float:
    """Annualised Sharpe ratio of per-bar simple returns (risk-free rate 0, sample std).

    0.0 when there are fewer than two returns or no variation.
    """
    if len(equity) < 3:
        return 0.0
    returns = np.diff(equity) / equity[:-1]
    std = float(returns.std(ddof=1))
    if std == 0.0 or not math.isfinite(std):
        return 0.0
    return float(returns.mean()) / std * math.sqrt(periods_per_year)


def win_rate(trade_pnls: np.ndarray) -> float:
    """Share of trades with a positive net PnL (0.0 without trades)."""
    return float((trade_pnls > 0).mean()) if len(trade_pnls) else 0.0


def profit_factor(trade_pnls: np.ndarray) -> float:
    """Gross profit over gross loss; ``inf`` with profits and no losses, 0.0 without trades."""
    gains = float(trade_pnls[trade_pnls > 0].sum())
    losses = float(-trade_pnls[trade_pnls < 0].sum())
    if losses == 0.0:
        return math.inf if gains > 0 else 0.0
    return gains / losses


@dataclass(frozen=True, slots=True)
class Performance:
    starting_equity: float
    final_equity: float
    total_return: float
    max_drawdown: float
    sharpe: float
    trades: int
    win_rate: float
    profit_factor: float
    realised_pnl: float
    unrealised_pnl: float
    fees_paid: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (an infinite profit factor becomes None)."""
        data = asdict(self)
        if not math.isfinite(data["profit_factor"]):
            data["profit_factor"] = None
        return data


def summarize(equity: np.ndarray, trade_pnls: np.ndarray, *, starting_equity: float, bar_ms: int,
              realised_pnl: float = 0.0, unrealised_pnl: float = 0.0, fees_paid: float = 0.0) -> Performance:
    """Every metric at once; ``bar_ms`` (the spacing of ``equity``) annualises the Sharpe ratio."""
    curve = np.concatenate(([starting_equity], np.asarray(equity, dtype=np.float64)))
    pnls = np.asarray(trade_pnls, dtype=np.float64)
    return Performance(
        starting_equity=starting_equity, final_equity=float(curve[-1]),
        total_return=total_return(curve, starting_equity), max_drawdown=max_drawdown(curve),
        sharpe=sharpe_ratio(curve, YEAR_MS / bar_ms), trades=len(pnls), win_rate=win_rate(pnls),
        profit_factor=profit_factor(pnls), realised_pnl=realised_pnl, unrealised_pnl=unrealised_pnl,
        fees_paid=fees_paid,
    )
