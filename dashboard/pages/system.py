"""System page: collectors per symbol, other components, DB / Redis health, process figures, events."""

from __future__ import annotations

import time
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, dcc, html

from dashboard import ids
from dashboard.context import DashboardContext
from dashboard.system_data import (
    COLLECTOR_FIELDS,
    HealthRow,
    check_database,
    check_redis,
    format_age,
    format_value,
    health_rows,
    process_figures,
    recent_events,
    split_collectors,
)

PATH = "/system"
TITLE = "System"
REFRESH_MS = 5_000
STATUS_COLOURS = {"ok": "success", "running": "success", "connected": "success", "degraded": "warning",
                  "starting": "info", "stopped": "secondary", "down": "danger", "error": "danger", "failed": "danger"}


def layout(context: DashboardContext) -> Any:
    def card(title: str, body_id: str, width: int = 12) -> Any:
        return dbc.Col(dbc.Card([dbc.CardHeader(title), dbc.CardBody(id=body_id)], className="h-100"),
                       lg=width, md=12, className="mb-3")

    return html.Div([
        dcc.Interval(id=ids.SYSTEM_INTERVAL, interval=REFRESH_MS),
        dbc.Row([card("Collectors", ids.SYSTEM_COLLECTORS)]),
        dbc.Row([card("Components", ids.SYSTEM_COMPONENTS, 6), card("Storage", ids.SYSTEM_STORAGE, 3),
                 card("Process", ids.SYSTEM_PROCESS, 3)]),
        dbc.Row([card("Recent system events", ids.SYSTEM_EVENTS)]),
    ])


def status_badge(row: HealthRow) -> Any:
    if row.stale:
        return dbc.Badge(f"stale ({row.age_s:.0f} s)", color="secondary")
    return dbc.Badge(row.status, color=STATUS_COLOURS.get(row.status.lower(), "info"))


def collectors_table(rows: list[HealthRow]) -> Any:
    if not rows:
        return html.P("No collector has reported yet (component_health rows collector.<exchange>.<symbol>).",
                      className="text-body-secondary mb-0")
    seen = {key for row in rows for key in row.data}
    keys = [key for key, _ in COLLECTOR_FIELDS if key in seen]
    headings = dict(COLLECTOR_FIELDS)
    header = html.Thead(html.Tr([html.Th("collector"), html.Th("status"),
                                 *(html.Th(headings.get(k, k)) for k in keys)]))
    body = html.Tbody([
        html.Tr([html.Td(row.component.removeprefix("collector.")), html.Td(status_badge(row)),
                 *(html.Td(format_value(k, row.data.get(k))) for k in keys)])
        for row in rows
    ])
    return dbc.Table([header, body], size="sm", hover=True, responsive=True, className="mb-0")


def components_table(rows: list[HealthRow]) -> Any:
    if not rows:
        return html.P("No component has reported yet.", className="text-body-secondary mb-0")
    body = []
    for row in rows:
        details = ", ".join(f"{k}: {format_value(k, v)}" for k, v in row.data.items() if not isinstance(v, dict | list))
        body.append(html.Tr([html.Td(row.component), html.Td(status_badge(row)),
                             html.Td(f"{row.age_s:.0f} s"), html.Td(details, className="small text-wrap")]))
    header = html.Thead(html.Tr([html.Th("component"), html.Th("status"), html.Th("reported"), html.Th("details")]))
    return dbc.Table([header, html.Tbody(body)], size="sm", hover=True, responsive=True, className="mb-0")


def storage_list(context: DashboardContext) -> Any:
    with context.session() as session:
        db_ok, db_ms, db_error, candle_age = check_database(session)
    redis_ok, redis_ms, redis_error = check_redis(context.settings.redis_url)
    live = context.live
    items = [
        ("database", f"ok, {db_ms:.1f} ms" if db_ok and db_ms is not None else f"down ({db_error})", db_ok),
        ("newest 1m candle", "–" if candle_age is None else f"{format_age(candle_age)} old", candle_age is not None),
        ("redis", "not configured (in-process bus)" if redis_ok is None
         else (f"ok, {redis_ms:.1f} ms" if redis_ok and redis_ms is not None else f"down ({redis_error})"),
         redis_ok is not False),
        ("live candles received", f"{live.received:,}", True),
        ("last live candle", "–" if live.last_received_at is None else
         f"{format_age(max(0.0, time.time() - live.last_received_at))} ago", True),
    ]
    if context.bus is not None:
        stats = context.bus.stats
        items.append(("bus", f"{'connected' if stats.connected else 'disconnected'}, backlog {stats.backlog}, "
                             f"dropped {stats.dropped}, reconnects {stats.reconnects}", stats.connected))
    return dbc.ListGroup([
        dbc.ListGroupItem([html.Div(name, className="small text-body-secondary"),
                           html.Div(value, className="" if ok else "text-danger")])
        for name, value, ok in items
    ], flush=True)


def process_list() -> Any:
    figures = process_figures()
    rows = [
        ("dashboard CPU", f"{figures['process_cpu_percent']:.1f} %"),
        ("dashboard memory", f"{figures['process_rss_mib']:,.0f} MiB"),
        ("threads", f"{figures['process_threads']:.0f}"),
        ("machine CPU", f"{figures['system_cpu_percent']:.1f} %"),
        ("machine memory", f"{figures['system_memory_percent']:.1f} % of {figures['system_memory_total_gib']:.1f} GiB"),
    ]
    return dbc.ListGroup([dbc.ListGroupItem([html.Div(k, className="small text-body-secondary"), html.Div(v)])
                          for k, v in rows], flush=True)


def events_table(events: list[dict[str, Any]]) -> Any:
    if not events:
        return html.P("No system events recorded.", className="text-body-secondary mb-0")
    colours = {"WARNING": "text-warning", "ERROR": "text-danger", "CRITICAL": "text-danger"}
    body = [html.Tr([html.Td(e["time"]), html.Td(e["level"], className=colours.get(e["level"], "")),
                     html.Td(e["component"]), html.Td(e["kind"]), html.Td(e["message"], className="text-wrap")])
            for e in events]
    header = html.Thead(html.Tr([html.Th(h) for h in ("time (UTC)", "level", "component", "kind", "message")]))
    return dbc.Table([header, html.Tbody(body)], size="sm", hover=True, responsive=True, className="mb-0")


def refresh(context: DashboardContext) -> tuple[Any, Any, Any, Any, Any]:
    """Every panel of the page (the callback body)."""
    with context.session() as session:
        rows = health_rows(session)
        events = recent_events(session)
    collectors, others = split_collectors(rows)
    return (collectors_table(collectors), components_table(others), storage_list(context), process_list(),
            events_table(events))


def register(app: Dash, context: DashboardContext) -> None:
    app.callback(
        Output(ids.SYSTEM_COLLECTORS, "children"), Output(ids.SYSTEM_COMPONENTS, "children"),
        Output(ids.SYSTEM_STORAGE, "children"), Output(ids.SYSTEM_PROCESS, "children"),
        Output(ids.SYSTEM_EVENTS, "children"),
        Input(ids.SYSTEM_INTERVAL, "n_intervals"),
    )(lambda _n: refresh(context))
