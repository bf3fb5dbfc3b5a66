"""Market page: candles + volume for any stored market, strategy indicators, signal markers, and
live updates patched into the chart (never a full redraw)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash_bootstrap_components as dbc
from dash import ClientsideFunction, Dash, Input, Output, Patch, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from config.domain import Timeframe, datetime_to_ms
from dashboard import ids
from dashboard.context import DashboardContext
from dashboard.figures import empty_figure, market_figure, range_selector_colours, theme_layout_updates
from dashboard.live import plan_live_patch
from dashboard.market_data import ChartRequest, MarketInfo, assemble_chart, markets, parse_market

PATH = "/"
TITLE = "Market"
LIVE_INTERVAL_MS = 500
CHART_STYLE = {"height": "calc(100vh - 150px)", "minHeight": "420px"}


def market_list(context: DashboardContext) -> list[MarketInfo]:
    def read() -> list[MarketInfo]:
        with context.session() as session:
            return markets(session)

    return context.memo.get("markets", read)


def strategy_names(context: DashboardContext) -> list[tuple[str, str]]:
    def read() -> list[tuple[str, str]]:
        from strategies.registry import list_strategies

        return [(cls.name, cls.description) for cls in list_strategies()]

    return context.memo.get("strategies", read)


def layout(context: DashboardContext) -> Any:
    found = market_list(context)
    market_options = [{"label": f"{m.symbol} ({m.exchange})", "value": m.value} for m in found]
    first = found[0].value if found else None
    controls = dbc.Row([
        dbc.Col(dcc.Dropdown(id=ids.MARKET_SELECT, options=market_options, value=first, clearable=False,
                             placeholder="no markets stored yet"), md=4, sm=12),
        dbc.Col(dcc.Dropdown(id=ids.MARKET_TIMEFRAME, clearable=False), md=2, sm=4),
        dbc.Col(dcc.Dropdown(id=ids.MARKET_STRATEGY, placeholder="indicators of a strategy…",
                             options=[{"label": n, "value": n, "title": d} for n, d in strategy_names(context)]),
                md=3, sm=8),
        dbc.Col(html.Div(id=ids.MARKET_STATUS, className="small text-body-secondary pt-2"), md=3, sm=12),
    ], className="g-2 mb-2")
    return html.Div([
        controls,
        dcc.Graph(id=ids.MARKET_CHART, style=CHART_STYLE, figure=empty_figure("loading…", "dark"),
                  config={"scrollZoom": True, "displaylogo": False, "responsive": True,
                          "modeBarButtonsToRemove": ["select2d", "lasso2d"]}),
        dcc.Store(id=ids.MARKET_STATE), dcc.Store(id=ids.MARKET_LIVE),
        dcc.Interval(id=ids.MARKET_LIVE_INTERVAL, interval=LIVE_INTERVAL_MS),
    ])


def timeframe_options(context: DashboardContext, market: str | None,
                      current: str | None) -> tuple[list[dict[str, str]], str | None]:
    info = next((m for m in market_list(context) if m.value == market), None)
    if info is None:
        return [], None
    values = [tf.value for tf in info.timeframes]
    return [{"label": v, "value": v} for v in values], current if current in values else values[0]


def parse_relayout(data: dict[str, Any] | None) -> tuple[int, int] | str | None:
    """The x range a zoom, pan or range-selector click asked for: ``(start_ms, end_ms)``, ``"all"``
    for autorange, or ``None`` when the event did not touch the time axis."""
    if not data:
        return None
    if data.get("xaxis.autorange"):
        return "all"
    if "xaxis.range[0]" in data and "xaxis.range[1]" in data:
        return _to_ms(data["xaxis.range[0]"]), _to_ms(data["xaxis.range[1]"])
    if isinstance(data.get("xaxis.range"), list) and len(data["xaxis.range"]) == 2:
        return _to_ms(data["xaxis.range"][0]), _to_ms(data["xaxis.range"][1])
    return None


def _to_ms(value: Any) -> int:
    if isinstance(value, int | float):
        return int(value)
    return datetime_to_ms(datetime.fromisoformat(str(value).strip()).replace(tzinfo=UTC))


def load_chart(context: DashboardContext, market: str | None, timeframe: str | None, strategy: str | None,
               view: tuple[int, int] | str | None, theme: str) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Figure, client state and status line for a market (the callback body, callable in tests)."""
    if not market or not timeframe:
        return empty_figure("no candles stored yet: start the collector or a replay", theme), {}, ""
    exchange, symbol = parse_market(market)
    request = ChartRequest(exchange, symbol, Timeframe(timeframe), strategy or None, view)
    context.live.watch((exchange, symbol, request.timeframe.value))
    with context.session() as session:
        chart, state = assemble_chart(session, context.live, request, context.settings.timeframes)
    candles = len(chart.history) + len(chart.live)
    status = [html.Span("● live" if state["live"] else "○ history", className="live-badge me-2"
                        + (" text-success" if state["live"] else "")),
              f"{candles:,} candles loaded"]
    return market_figure(chart, theme), state, status


def live_edits(context: DashboardContext, state: dict[str, Any] | None,
               live: dict[str, Any] | None) -> dict[str, Any]:
    """What changed in the live cache since the chart (or the last tick) was drawn."""
    if not state or not state.get("live"):
        raise PreventUpdate
    base = live if live and live.get("build") == state["build"] else state
    key = (state["key"][0], state["key"][1], state["key"][2])
    context.live.watch(key)
    candles, version = context.live.changes_since(key, int(base.get("version", 0)))
    if not candles:
        raise PreventUpdate
    edits, times = plan_live_patch(base.get("live_times", []), candles)
    if not edits:
        raise PreventUpdate
    return {"build": state["build"], "version": version, "live_times": times,
            "edits": [[-1 if e.index is None else e.index, e.candle.open_time_ms, e.candle.open, e.candle.high,
                       e.candle.low, e.candle.close, e.candle.volume] for e in edits]}


def register(app: Dash, context: DashboardContext) -> None:
    app.callback(
        Output(ids.MARKET_TIMEFRAME, "options"), Output(ids.MARKET_TIMEFRAME, "value"),
        Input(ids.MARKET_SELECT, "value"), State(ids.MARKET_TIMEFRAME, "value"),
    )(lambda market, current: timeframe_options(context, market, current))

    @app.callback(
        Output(ids.MARKET_CHART, "figure"), Output(ids.MARKET_STATE, "data"), Output(ids.MARKET_STATUS, "children"),
        Input(ids.MARKET_SELECT, "value"), Input(ids.MARKET_TIMEFRAME, "value"),
        Input(ids.MARKET_STRATEGY, "value"), Input(ids.MARKET_CHART, "relayoutData"),
        Input(ids.THEME_STORE, "data"), State(ids.MARKET_STATE, "data"),
    )
    def _chart(market: str | None, timeframe: str | None, strategy: str | None, relayout: dict[str, Any] | None,
               theme: str | None, state: dict[str, Any] | None) -> tuple[Any, Any, Any]:
        theme = theme or "dark"
        trigger = ctx.triggered_id
        if trigger == ids.THEME_STORE and state:
            patch = Patch()
            for key, value in theme_layout_updates(theme, ("xaxis", "yaxis", "yaxis2")).items():
                if "axis" in key:
                    patch["layout"][key].update(value)
                else:
                    patch["layout"][key] = value
            patch["layout"]["xaxis"]["rangeselector"].update(range_selector_colours(theme))
            return patch, no_update, no_update
        view = None
        if trigger == ids.MARKET_CHART:
            view = parse_relayout(relayout)
            if view is None:
                raise PreventUpdate
        return load_chart(context, market, timeframe, strategy, view, theme)

    app.callback(
        Output(ids.MARKET_LIVE, "data"),
        Input(ids.MARKET_LIVE_INTERVAL, "n_intervals"),
        State(ids.MARKET_STATE, "data"), State(ids.MARKET_LIVE, "data"),
        prevent_initial_call=True,
    )(lambda _n, state, live: live_edits(context, state, live))

    app.clientside_callback(
        ClientsideFunction(namespace="tcp", function_name="applyLiveEdits"),
        Output(ids.MARKET_CHART, "figure", allow_duplicate=True),
        Input(ids.MARKET_LIVE, "data"), State(ids.MARKET_STATE, "data"), State(ids.MARKET_CHART, "figure"),
        prevent_initial_call=True,
    )
