"""Pure helpers of the Backtests page: the form's request, table rows, metric rows, the trials
heatmap grid, trade markers and the trades CSV (no I/O)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from config.domain import datetime_to_ms
from dashboard.figures import Markers

METRIC_ROWS = (
    ("total_return", "total return", "pct"), ("annualised_return", "annualised return", "pct"),
    ("buy_and_hold_return", "buy & hold return", "pct"), ("final_equity", "final equity", "money"),
    ("sharpe", "Sharpe", "ratio"), ("sortino", "Sortino", "ratio"), ("calmar", "Calmar", "ratio"),
    ("max_drawdown", "max drawdown", "pct"), ("exposure_time", "exposure time", "pct"),
    ("trades", "trades", "int"), ("win_rate", "win rate", "pct"), ("profit_factor", "profit factor", "ratio"),
    ("expectancy", "expectancy", "money"), ("fees_paid", "fees paid", "money"),
)
TRADE_FIELDS = ("side", "entry_time", "exit_time", "entry_price", "exit_price", "size", "fees", "pnl",
                "return_pct", "exit_reason")


class FormError(ValueError):
    """A form value that cannot be read; ``field`` names the input."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def parse_json_object(text: str | None, field: str) -> dict[str, Any]:
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormError(field, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(value, dict):
        raise FormError(field, f"expected a JSON object, got {type(value).__name__}")
    return value


def build_request(strategy: str | None, params_text: str | None, market: str | None, timeframe: str | None,
                  start_date: str | None, end_date: str | None, fee_pct: float | None, slippage_bps: float | None,
                  size_pct: float | None, cash: float | None, funding: bool | None = None) -> dict[str, Any]:
    """The :class:`backtesting.service.BacktestRequest` fields the form describes (``funding``: charge the
    settlements the collector stored for the market, ``funding_db``)."""
    if not strategy:
        raise FormError("strategy", "choose a strategy")
    if not market or "|" not in market:
        raise FormError("market", "choose a stored market")
    exchange, _, symbol = market.partition("|")
    for field, value in (("fee", fee_pct), ("slippage", slippage_bps), ("size", size_pct), ("cash", cash)):
        if value is None:
            raise FormError(field, "enter a number")
    request: dict[str, Any] = {
        "strategy": strategy, "params": parse_json_object(params_text, "parameters"), "exchange": exchange,
        "symbol": symbol, "timeframe": timeframe or "1m", "fee": float(fee_pct) / 100,  # type: ignore[arg-type]
        "slippage_bps": float(slippage_bps), "size_fraction": float(size_pct) / 100,  # type: ignore[arg-type]
        "cash": float(cash),  # type: ignore[arg-type]
    }
    if funding:
        request["funding_db"] = True
    if start_date:
        request["start"] = _date(start_date, "start")
    if end_date:
        request["end"] = _date(end_date, "end", end_of_day=True)
    return request


def _date(text: str, field: str, end_of_day: bool = False) -> datetime:
    try:
        day = datetime.fromisoformat(text[:10]).replace(tzinfo=UTC)
    except ValueError:
        raise FormError(field, f"expected a date as YYYY-MM-DD, got {text!r}") from None
    return day.replace(hour=23, minute=59, second=59) if end_of_day else day


def run_row(run: Any) -> dict[str, Any]:
    """One row of the runs table."""
    m = run.metrics or {}
    period = "all stored"
    if run.start_time or run.end_time:
        start = f"{run.start_time:%Y-%m-%d}" if run.start_time else "…"
        end = f"{run.end_time:%Y-%m-%d}" if run.end_time else "…"
        period = f"{start} → {end}"
    return {
        "id": run.id, "kind": run.kind, "status": run.status, "strategy": run.strategy,
        "params": json.dumps(run.params, separators=(",", ":")), "market": f"{run.symbol or '?'} {run.timeframe or ''}",
        "period": period, "return_pct": _round(m.get("total_return"), 100), "sharpe": _round(m.get("sharpe")),
        "max_dd_pct": _round(m.get("max_drawdown"), 100), "trades": m.get("trades"),
        "created": f"{run.created_at:%Y-%m-%d %H:%M}",
    }


def _round(value: Any, scale: float = 1.0) -> float | None:
    if value is None:
        return None
    try:
        number = float(value) * scale
    except (TypeError, ValueError):
        return None
    return round(number, 3) if np.isfinite(number) else None


def metric_text(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{float(value) * 100:,.2f} %"
    if kind == "money":
        return f"{float(value):,.2f}"
    if kind == "int":
        return f"{int(value):,}"
    return f"{float(value):,.3f}"


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    return [(label, metric_text(metrics.get(key), kind)) for key, label, kind in METRIC_ROWS if key in metrics]


def heatmap_grid(trials: Sequence[Any]) -> tuple[str, str, list[Any], list[Any], np.ndarray] | None:
    """(x name, y name, x values, y values, z) over the first two parameters that vary across the
    trials; each cell holds the best trial ``score`` there (NaN when none ran or none scored)."""
    points = [(dict(t.params), t.score) for t in trials]
    varying = [k for k in (points[0][0] if points else {}) if len({repr(p[k]) for p, _ in points if k in p}) > 1]
    if len(varying) < 2:
        return None
    x_name, y_name = varying[0], varying[1]
    xs = sorted({p[x_name] for p, _ in points})
    ys = sorted({p[y_name] for p, _ in points})
    z = np.full((len(ys), len(xs)), np.nan)
    for params, value in points:
        if value is None:
            continue
        row, col = ys.index(params[y_name]), xs.index(params[x_name])
        z[row, col] = value if np.isnan(z[row, col]) else max(z[row, col], float(value))
    return x_name, y_name, xs, ys, z


def trade_markers(trades: Sequence[dict[str, Any]]) -> tuple[Markers, ...]:
    """Entries (by side) and exits of a run's trades as chart markers."""
    def ms(value: Any) -> int:
        return datetime_to_ms(value) if isinstance(value, datetime) else int(value)

    out = []
    for kind, side in (("buy", "long"), ("sell", "short")):
        chosen = [t for t in trades if t["side"] == side]
        if chosen:
            out.append(Markers(f"{side} entries", kind, np.array([ms(t["entry_time"]) for t in chosen], np.int64),
                               np.array([t["entry_price"] for t in chosen], np.float64),
                               tuple(f"{side} entry {t['entry_price']:,.2f} × {t['size']:g}" for t in chosen)))
    exits = [t for t in trades if t.get("exit_time") is not None and t.get("exit_price") is not None]
    if exits:
        out.append(Markers("exits", "exit", np.array([ms(t["exit_time"]) for t in exits], np.int64),
                           np.array([t["exit_price"] for t in exits], np.float64),
                           tuple(f"exit {t['exit_price']:,.2f} ({t.get('exit_reason') or 'signal'}), "
                                 f"PnL {t['pnl']:+,.2f}" for t in exits)))
    return tuple(out)


def trades_csv(trades: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TRADE_FIELDS)
    for t in trades:
        writer.writerow([t[f].isoformat() if isinstance(t.get(f), datetime) else t.get(f) for f in TRADE_FIELDS])
    return buffer.getvalue()
