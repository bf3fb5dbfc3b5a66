"""What a backtest produces: trades, the equity curve, signal events and metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from config.domain import ms_to_datetime


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One round trip. ``pnl`` is net of both fees; ``return_pct`` is ``pnl`` over the entry notional.

    Bars are indices into the candle arrays. Fills at a bar's open carry that bar's open time; a
    position closed at the end of the data (``close_at_end``) exits at the last close, stamped with
    the last bar's close time. ``exit_bar`` is ``None`` for a position still open at the end.
    """

    side: str
    entry_bar: int
    entry_time_ms: int
    entry_price: float
    size: float
    exit_bar: int | None
    exit_time_ms: int | None
    exit_price: float | None
    fees: float
    pnl: float
    return_pct: float
    exit_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["entry_time"] = ms_to_datetime(self.entry_time_ms).isoformat()
        data["exit_time"] = None if self.exit_time_ms is None else ms_to_datetime(self.exit_time_ms).isoformat()
        return data


@dataclass(frozen=True, slots=True, eq=False)
class TradeTable:
    """All trades of a run as columns (what metrics and storage read); ``exit_bar`` is -1 and
    ``exit_price``/``exit_time`` NaN/-1 while a trade is open."""

    side: np.ndarray  # int8: +1 long, -1 short
    entry_bar: np.ndarray
    exit_bar: np.ndarray
    entry_time: np.ndarray
    exit_time: np.ndarray
    entry_price: np.ndarray
    exit_price: np.ndarray
    size: np.ndarray
    fees: np.ndarray
    pnl: np.ndarray
    exit_reason: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.entry_bar.shape[0])

    @property
    def closed(self) -> np.ndarray:
        return np.asarray(self.exit_bar >= 0)

    @property
    def return_pct(self) -> np.ndarray:
        notional = self.entry_price * self.size
        return np.divide(self.pnl, notional, out=np.zeros_like(self.pnl), where=notional > 0)

    def records(self) -> list[TradeRecord]:
        returns = self.return_pct
        out = []
        for k in range(len(self)):
            closed = bool(self.exit_bar[k] >= 0)
            out.append(TradeRecord(
                side="long" if self.side[k] > 0 else "short",
                entry_bar=int(self.entry_bar[k]), entry_time_ms=int(self.entry_time[k]),
                entry_price=float(self.entry_price[k]), size=float(self.size[k]),
                exit_bar=int(self.exit_bar[k]) if closed else None,
                exit_time_ms=int(self.exit_time[k]) if closed else None,
                exit_price=float(self.exit_price[k]) if closed else None,
                fees=float(self.fees[k]), pnl=float(self.pnl[k]), return_pct=float(returns[k]),
                exit_reason=self.exit_reason[k],
            ))
        return out

    @classmethod
    def empty(cls) -> TradeTable:
        return cls.from_columns([], [], [], [], [], [], [], [], [], [], [])

    @classmethod
    def from_columns(cls, side: Any, entry_bar: Any, exit_bar: Any, entry_time: Any, exit_time: Any,
                     entry_price: Any, exit_price: Any, size: Any, fees: Any, pnl: Any,
                     exit_reason: Any) -> TradeTable:
        return cls(np.asarray(side, dtype=np.int8), np.asarray(entry_bar, dtype=np.int64),
                   np.asarray(exit_bar, dtype=np.int64), np.asarray(entry_time, dtype=np.int64),
                   np.asarray(exit_time, dtype=np.int64), np.asarray(entry_price, dtype=np.float64),
                   np.asarray(exit_price, dtype=np.float64), np.asarray(size, dtype=np.float64),
                   np.asarray(fees, dtype=np.float64), np.asarray(pnl, dtype=np.float64), tuple(exit_reason))


@dataclass(frozen=True, slots=True, eq=False)
class BacktestResult:
    """Trades, per-bar equity at each close (``times`` are bar open times), the position held at
    each close (+1/-1/0), and metrics.

    ``signal_bars``/``signal_values`` are the bars and codes (+1 BUY, -1 SELL) of the non-HOLD
    signals the strategy gave inside the traded window. ``path`` says which engine ran.
    """

    trades: TradeTable
    times: np.ndarray
    equity: np.ndarray
    position: np.ndarray
    signal_bars: np.ndarray
    signal_values: np.ndarray
    metrics: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    events: dict[str, int] = field(default_factory=dict)

    @property
    def final_equity(self) -> float:
        return float(self.equity[-1]) if self.equity.size else float("nan")

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` CLI output: metrics and trades."""
        return {"metrics": self.metrics, "trades": [t.to_json() for t in self.trades.records()]}


def downsample_curve(times: np.ndarray, values: np.ndarray, max_points: int = 2000) -> dict[str, list[Any]]:
    """Equity curve for storage: every point up to ``max_points``, else the value at evenly spaced
    bars plus each bucket's lowest point (so drawdowns stay visible) and the last bar."""
    n = int(values.shape[0])
    if n <= max_points:
        idx = np.arange(n)
    else:
        buckets = max_points // 2
        edges = np.linspace(0, n, buckets + 1).astype(np.int64)
        lows = np.minimum.reduceat(values, edges[:-1])
        low_idx = [int(edges[i] + np.flatnonzero(values[edges[i]:edges[i + 1]] == lows[i])[0])
                   for i in range(buckets)]
        idx = np.unique(np.concatenate([edges[:-1], np.asarray(low_idx, dtype=np.int64), [n - 1]]))
    return {"t": [int(v) for v in times[idx]], "equity": [float(v) for v in values[idx]]}
