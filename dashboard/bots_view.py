"""Pure helpers of the Bots page: templates, number formatting, tables and markers from the bot
service's records (no I/O besides reading template files)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import dash_bootstrap_components as dbc
import numpy as np
from dash import html

from config.domain import ms_to_datetime
from dashboard.figures import Markers

STATUS_COLOURS = {"running": "success", "paused": "warning", "halted": "danger", "stopped": "secondary",
                  "created": "info", "failed": "danger"}
PERCENT_METRICS = {"total_return", "max_drawdown", "win_rate"}


def template_options(bots_dir: Path, strategies: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """The bot files of ``BOTS_DIR`` (``file:<name>``), then a starter per strategy (``strategy:<name>``)."""
    files = sorted(p for p in bots_dir.glob("*.json") if not p.name.startswith("_")) if bots_dir.is_dir() else []
    options = [{"label": f"file: {p.name}", "value": f"file:{p.name}"} for p in files]
    options += [{"label": f"new {name} bot", "value": f"strategy:{name}"} for name, _ in strategies]
    return options


def template_text(choice: str, bots_dir: Path, strategy_params: dict[str, Any] | None = None) -> str:
    """The JSON text a template choice puts in the editor."""
    kind, _, name = choice.partition(":")
    if kind == "file":
        path = (bots_dir / name).resolve()
        if path.parent != bots_dir.resolve() or not path.is_file():
            raise ValueError(f"no bot file {name!r} in {bots_dir}")
        data = json.loads(path.read_text(encoding="utf-8"))
        data["name"] = f"{data.get('name', 'bot')}_copy"
        return json.dumps(data, indent=2)
    if kind == "strategy":
        data = {
            "name": f"my_{name}", "exchange": "okx", "symbol": "BTC-USDT", "timeframe": "1m", "strategy": name,
            "params": strategy_params or {}, "starting_balance": 10000,
            "sizing": {"method": "equity_fraction", "fraction_pct": 20},
            "risk": {"stop_loss_pct": 2.0, "max_drawdown_pct": 20},
        }
        return json.dumps(data, indent=2)
    raise ValueError(f"unknown template {choice!r}; expected file:<name> or strategy:<name>")


def money(value: Decimal | float | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{float(value):,.{digits}f}"


def signed(value: Decimal | float) -> Any:
    number = float(value)
    return html.Span(f"{number:+,.2f}", className="text-success" if number > 0 else "text-danger" if number < 0 else "")


def status_badge(status: str) -> Any:
    return dbc.Badge(status, color=STATUS_COLOURS.get(status, "info"), className="text-uppercase")


def bots_table(summaries: Sequence[Any], selected: str | None) -> Any:
    if not summaries:
        return html.P("No bots yet: create one below, or put bot files in config/bots/.",
                      className="text-body-secondary mb-0")
    header = html.Thead(html.Tr([html.Th(h) for h in (
        "bot", "status", "market", "strategy", "equity", "PnL", "return", "position", "last signal")]))
    rows = []
    for s in summaries:
        position = "flat" if not s.position_side else \
            f"{s.position_side} {float(s.position_quantity):g} @ {money(s.position_entry_price)}"
        rows.append(html.Tr([
            html.Td(s.name, className="fw-semibold"), html.Td(status_badge(s.status), title=s.status_reason or ""),
            html.Td(f"{s.symbol} {s.timeframe}"), html.Td(s.strategy), html.Td(money(s.equity)),
            html.Td(signed(s.pnl)), html.Td(f"{s.return_pct:+.2f} %"), html.Td(position),
            html.Td(s.last_signal or "–"),
        ], className="table-active" if s.name == selected else "", **{"data-bot": s.name}))
    return dbc.Table([header, html.Tbody(rows)], size="sm", hover=True, responsive=True, className="mb-0 bots-table")


def metric_cards(summary: Any, performance: dict[str, Any]) -> Any:
    items = [("equity", money(summary.equity)), ("PnL", f"{float(summary.pnl):+,.2f}"),
             ("return", f"{summary.return_pct:+.2f} %"), ("fees paid", money(summary.fees_paid))]
    for key in ("max_drawdown", "sharpe", "trades", "win_rate", "profit_factor"):
        if key in performance:
            items.append((key.replace("_", " "), metric_text(key, performance[key])))
    return dbc.Row([dbc.Col(dbc.Card(dbc.CardBody([html.Div(k, className="small text-body-secondary"),
                                                   html.Div(v, className="metric-value")]), className="metric-card"),
                            xs=6, md=3, lg=True, className="mb-2") for k, v in items], className="g-2")


def metric_text(key: str, value: Any) -> str:
    if value is None:
        return "∞" if key == "profit_factor" else "–"
    if key in PERCENT_METRICS and isinstance(value, int | float):
        return f"{value * 100:.2f} %"
    if isinstance(value, float):
        return f"{value:,.3f}"
    return str(value)


def records_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], empty: str,
                  limit: int = 200) -> Any:
    if not rows:
        return html.P(empty, className="text-body-secondary mb-0")
    header = html.Thead(html.Tr([html.Th(title) for _, title in columns]))
    body = html.Tbody([html.Tr([html.Td(cell(row.get(key), key)) for key, _ in columns]) for row in rows[:limit]])
    return dbc.Table([header, body], size="sm", hover=True, responsive=True, className="mb-0")


def cell(value: Any, key: str) -> str:
    if value is None:
        return "–"
    if key.endswith("_ms") and isinstance(value, int):
        return ms_to_datetime(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, Decimal | float):
        return f"{float(value):,.6g}" if abs(float(value)) < 1000 else f"{float(value):,.2f}"
    return str(value)


def fill_markers(fills: Sequence[dict[str, Any]]) -> tuple[Markers, ...]:
    """Paper fills as chart markers: buys below, sells above (price = fill price)."""
    out = []
    for kind, side in (("buy", "buy"), ("sell", "sell")):
        chosen = [f for f in fills if str(f.get("side", "")).lower() == side]
        if chosen:
            out.append(Markers(
                f"{side} fills", kind, np.array([f["ts_ms"] for f in chosen], dtype=np.int64),
                np.array([float(f["price"]) for f in chosen], dtype=np.float64),
                tuple(f"{side} {float(f['quantity']):g} @ {float(f['price']):,.2f} ({f.get('reason') or 'fill'})"
                      for f in chosen),
            ))
    return tuple(out)
