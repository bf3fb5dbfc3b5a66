"""Bots page: the bots table, create from a template or JSON (validated as you type), lifecycle
actions, and a bot's detail (equity and drawdown, fills and signals on the price chart, positions,
fills, event log). Everything goes through :class:`bot_manager.service.BotService`."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
import numpy as np
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from bot_manager.service import BotService, validate
from config.domain import Timeframe
from config.errors import ConfigurationError
from dashboard import ids
from dashboard.bots_view import (
    bots_table,
    fill_markers,
    metric_cards,
    records_table,
    template_options,
    template_text,
)
from dashboard.context import DashboardContext
from dashboard.figures import empty_figure, equity_figure, market_figure
from dashboard.market_data import ChartRequest, assemble_chart
from dashboard.pages.market import strategy_names

PATH = "/bots"
TITLE = "Bots"
REFRESH_MS = 3_000
ACTIONS = {ids.BOT_ACTION_START: "start", ids.BOT_ACTION_PAUSE: "pause", ids.BOT_ACTION_RESUME: "resume",
           ids.BOT_ACTION_STOP: "stop"}
FILL_COLUMNS = (("ts_ms", "time (UTC)"), ("side", "side"), ("quantity", "quantity"), ("price", "price"),
                ("fee", "fee"), ("realised_pnl", "realised PnL"), ("reason", "reason"))
POSITION_COLUMNS = (("opened_at_ms", "opened"), ("side", "side"), ("quantity", "quantity"),
                    ("entry_price", "entry"), ("status", "status"), ("exit_price", "exit"),
                    ("exit_reason", "exit reason"), ("realised_pnl", "realised PnL"))
EVENT_COLUMNS = (("ts_ms", "time (UTC)"), ("level", "level"), ("kind", "kind"), ("message", "message"))


def service(context: DashboardContext) -> BotService:
    return BotService(context.session_factory)


def layout(context: DashboardContext) -> Any:
    options = template_options(context.settings.bots_dir, strategy_names(context))
    button = {"size": "sm", "className": "me-1 mb-1"}
    controls = html.Div([
        dcc.Dropdown(id=ids.BOT_SELECTED, placeholder="select a bot…", className="mb-2"),
        html.Div([
            dbc.Button("Start", id=ids.BOT_ACTION_START, color="success", **button),
            dbc.Button("Pause", id=ids.BOT_ACTION_PAUSE, color="warning", **button),
            dbc.Button("Resume", id=ids.BOT_ACTION_RESUME, color="info", **button),
            dbc.Button("Stop", id=ids.BOT_ACTION_STOP, color="secondary", **button),
            dcc.ConfirmDialogProvider(dbc.Button("Delete", color="danger", **button), id=ids.BOT_ACTION_DELETE,
                                      message="Delete this bot and all its records?"),
        ], className="d-flex flex-wrap"),
        html.Div(id=ids.BOTS_MESSAGE, className="small mt-1"),
    ])
    create = dbc.Card([
        dbc.CardHeader("New bot"),
        dbc.CardBody([
            dcc.Dropdown(id=ids.BOT_TEMPLATE, options=options, placeholder="start from a template…", className="mb-2"),
            dbc.Textarea(id=ids.BOT_CONFIG_EDITOR, className="json-editor mb-1", debounce=True, spellCheck=False,
                         placeholder='{"name": "…", "symbol": "BTC-USDT", "strategy": "sma_cross", …}'),
            html.Div(id=ids.BOT_CONFIG_FEEDBACK, className="small mb-2"),
            dbc.Button("Create", id=ids.BOT_CREATE, color="primary", size="sm", className="me-1"),
            dbc.Button("Create and start", id=ids.BOT_CREATE_START, color="success", size="sm"),
        ]),
    ], className="mb-3")
    detail = dbc.Card([
        dbc.CardHeader(id=ids.BOT_DETAIL_TITLE, children="Bot detail"),
        dbc.CardBody([
            html.Div(id=ids.BOT_DETAIL),
            dbc.Tabs([
                dbc.Tab(dcc.Graph(id=ids.BOT_EQUITY_CHART, style={"height": "380px"},
                                  config={"displaylogo": False}), label="Equity & drawdown", tab_id="equity"),
                dbc.Tab(dcc.Graph(id=ids.BOT_PRICE_CHART, style={"height": "420px"},
                                  config={"displaylogo": False, "scrollZoom": True}), label="Price, fills, signals",
                        tab_id="price"),
                dbc.Tab(html.Div(id=ids.BOT_POSITIONS, className="pt-2"), label="Positions", tab_id="positions"),
                dbc.Tab(html.Div(id=ids.BOT_FILLS, className="pt-2"), label="Fills", tab_id="fills"),
                dbc.Tab(html.Div(id=ids.BOT_EVENTS, className="pt-2"), label="Event log", tab_id="events"),
            ], active_tab="equity", className="mt-2"),
        ]),
    ])
    return html.Div([
        dcc.Interval(id=ids.BOTS_INTERVAL, interval=REFRESH_MS), dcc.Store(id=ids.BOTS_REFRESH, data=0),
        dbc.Row([
            dbc.Col(dbc.Card([dbc.CardHeader("Bots"), dbc.CardBody([html.Div(id=ids.BOTS_TABLE), html.Hr(), controls])],
                             className="mb-3"), lg=8),
            dbc.Col(create, lg=4),
        ]),
        detail,
    ])


def refresh_table(context: DashboardContext, selected: str | None) -> tuple[Any, list[dict[str, str]]]:
    summaries = service(context).list_bots()
    return bots_table(summaries, selected), [{"label": s.name, "value": s.name} for s in summaries]


def check_config(text: str | None) -> tuple[bool, Any]:
    """(invalid?, feedback) for the editor's JSON, without storing anything."""
    if not text or not text.strip():
        return False, ""
    try:
        config = validate(text)
    except ConfigurationError as exc:
        return True, error_feedback(exc)
    return False, html.Span(f"valid: {config.name} trades {config.symbol} {config.timeframe.value} "
                            f"with {config.strategy}", className="text-success")


def error_feedback(exc: ConfigurationError) -> Any:
    where = f"{exc.field}: " if exc.field else ""
    return html.Span([html.Strong(where), exc.reason], className="text-danger")


def create_bot(context: DashboardContext, text: str | None, start: bool) -> tuple[bool, Any, str | None]:
    """(invalid?, feedback, created bot name). An invalid config changes nothing."""
    if not text or not text.strip():
        return True, html.Span("paste or write a bot configuration first", className="text-danger"), None
    try:
        summary = service(context).create_bot(text, start=start)
    except ConfigurationError as exc:
        return True, error_feedback(exc), None
    verb = "created and started" if start else "created"
    return False, html.Span(f"{summary.name} {verb}", className="text-success"), summary.name


def run_action(context: DashboardContext, action: str, name: str | None) -> Any:
    if not name:
        return dbc.Alert("select a bot first", color="warning", className="py-1 px-2 mb-0")
    bots = service(context)
    try:
        if action == "delete":
            bots.delete(name)
            return dbc.Alert(f"{name} deleted", color="info", className="py-1 px-2 mb-0")
        summary = getattr(bots, action)(name)
    except ConfigurationError as exc:
        return dbc.Alert(f"{action} {name}: {exc.reason}", color="danger", className="py-1 px-2 mb-0")
    return dbc.Alert(f"{name}: {summary.status}", color="success", className="py-1 px-2 mb-0")


def bot_detail(context: DashboardContext, name: str | None, theme: str) -> tuple[Any, ...]:
    """Title, metric cards, equity figure, price figure, positions, fills and events of a bot."""
    if not name:
        empty = empty_figure("select a bot", theme)
        return "Bot detail", "", empty, empty, "", "", ""
    try:
        detail = service(context).bot_detail(name)
    except ConfigurationError:
        empty = empty_figure(f"{name} no longer exists", theme)
        return "Bot detail", "", empty, empty, "", "", ""
    s = detail.summary
    if detail.equity_curve:
        times, equity = zip(*detail.equity_curve, strict=True)
        equity_fig = equity_figure(np.array(times, dtype=np.int64), np.array(equity), theme)
    else:
        equity_fig = empty_figure("no equity recorded yet (the bot records one point per candle)", theme)
    tf = Timeframe(s.timeframe)
    view = None
    if detail.fills:
        first = min(f["ts_ms"] for f in detail.fills)
        newest = max([f["ts_ms"] for f in detail.fills] + [s.last_candle_time_ms or 0])
        view = (first - 30 * tf.ms, newest + 10 * tf.ms)
    request = ChartRequest(s.exchange, s.symbol, tf, s.strategy, view, dict(detail.config.get("params") or {}),
                           f"bot:{s.name}")
    with context.session() as session:
        chart, _state = assemble_chart(session, context.live, request, context.settings.timeframes,
                                       fill_markers(detail.fills))
    title = [html.Span(f"{s.name} · {s.symbol} {s.timeframe} · {s.strategy} ", className="fw-semibold"),
             dbc.Badge(s.status, className="ms-1")]
    return (title, metric_cards(s, detail.performance), equity_fig, market_figure(chart, theme),
            records_table(detail.positions, POSITION_COLUMNS, "no positions yet"),
            records_table(detail.fills, FILL_COLUMNS, "no fills yet"),
            records_table(detail.events, EVENT_COLUMNS, "no events yet"))


def register(app: Dash, context: DashboardContext) -> None:
    app.callback(
        Output(ids.BOTS_TABLE, "children"), Output(ids.BOT_SELECTED, "options"),
        Input(ids.BOTS_INTERVAL, "n_intervals"), Input(ids.BOTS_REFRESH, "data"), Input(ids.BOT_SELECTED, "value"),
    )(lambda _n, _r, selected: refresh_table(context, selected))

    @app.callback(Output(ids.BOT_CONFIG_EDITOR, "value"), Input(ids.BOT_TEMPLATE, "value"), prevent_initial_call=True)
    def _template(choice: str | None) -> str:
        if not choice:
            raise PreventUpdate
        params = None
        if choice.startswith("strategy:"):
            from strategies.registry import get_strategy_class

            cls = get_strategy_class(choice.partition(":")[2])
            params = {key: param.default for key, param in cls.params_spec.items()}
        return template_text(choice, context.settings.bots_dir, params)

    @app.callback(
        Output(ids.BOT_CONFIG_EDITOR, "invalid"), Output(ids.BOT_CONFIG_FEEDBACK, "children"),
        Output(ids.BOTS_REFRESH, "data"), Output(ids.BOT_SELECTED, "options", allow_duplicate=True),
        Output(ids.BOT_SELECTED, "value"), Input(ids.BOT_CONFIG_EDITOR, "value"),
        Input(ids.BOT_CREATE, "n_clicks"), Input(ids.BOT_CREATE_START, "n_clicks"),
        State(ids.BOTS_REFRESH, "data"), prevent_initial_call=True,
    )
    def _editor(text: str | None, _c: int | None, _s: int | None, version: int | None) -> tuple[Any, ...]:
        pressed = {prop.partition(".")[0] for prop in ctx.triggered_prop_ids} & {ids.BOT_CREATE, ids.BOT_CREATE_START}
        if not pressed:  # the editor changed: validate only
            invalid, feedback = check_config(text)
            return invalid, feedback, no_update, no_update, no_update
        invalid, feedback, name = create_bot(context, text, ids.BOT_CREATE_START in pressed)
        if name is None:
            return invalid, feedback, no_update, no_update, no_update
        # the new bot must be among the options before it can be the selected value
        return False, feedback, (version or 0) + 1, refresh_table(context, name)[1], name

    @app.callback(
        Output(ids.BOTS_MESSAGE, "children"), Output(ids.BOTS_REFRESH, "data", allow_duplicate=True),
        *(Input(button, "n_clicks") for button in ACTIONS), Input(ids.BOT_ACTION_DELETE, "submit_n_clicks"),
        State(ids.BOT_SELECTED, "value"), State(ids.BOTS_REFRESH, "data"), prevent_initial_call=True,
    )
    def _action(*args: Any) -> tuple[Any, int]:
        name, version = args[-2], args[-1]
        trigger = ctx.triggered_id
        if trigger is None or (trigger != ids.BOT_ACTION_DELETE and not ctx.triggered[0]["value"]):
            raise PreventUpdate
        action = "delete" if trigger == ids.BOT_ACTION_DELETE else ACTIONS[trigger]
        return run_action(context, action, name), (version or 0) + 1

    app.callback(
        Output(ids.BOT_DETAIL_TITLE, "children"), Output(ids.BOT_DETAIL, "children"),
        Output(ids.BOT_EQUITY_CHART, "figure"), Output(ids.BOT_PRICE_CHART, "figure"),
        Output(ids.BOT_POSITIONS, "children"), Output(ids.BOT_FILLS, "children"), Output(ids.BOT_EVENTS, "children"),
        Input(ids.BOT_SELECTED, "value"), Input(ids.BOTS_INTERVAL, "n_intervals"), Input(ids.BOTS_REFRESH, "data"),
        Input(ids.THEME_STORE, "data"),
    )(lambda name, _n, _r, theme: bot_detail(context, name, theme or "dark"))
