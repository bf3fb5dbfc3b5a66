"""Backtests page: a form that queues a backtest or a parameter optimisation (executed by a worker,
never in the web request) with progress and cancel; the runs table; a run's detail (metrics,
equity and drawdown, trades on the candles, CSV export, trials heatmap); runs side by side.
Everything goes through :class:`backtesting.service.BacktestService`."""

from __future__ import annotations

import json
from typing import Any

import dash_bootstrap_components as dbc
import numpy as np
from dash import Dash, Input, Output, State, ctx, dash_table, dcc, html, no_update
from dash.exceptions import PreventUpdate
from pydantic import ValidationError

from backtesting.search import Objective
from config.domain import Timeframe, datetime_to_ms
from config.errors import ConfigurationError
from dashboard import ids
from dashboard.backtests_view import (
    FormError,
    build_request,
    heatmap_grid,
    metric_rows,
    parse_json_object,
    run_row,
    trade_markers,
    trades_csv,
)
from dashboard.context import DashboardContext
from dashboard.figures import compare_figure, empty_figure, equity_figure, heatmap_figure, market_figure
from dashboard.market_data import ChartRequest, assemble_chart
from dashboard.pages.market import market_list, strategy_names, timeframe_options
from database.repositories.derivatives import funding_settlements

PATH = "/backtests"
TITLE = "Backtests"
RUN_COLUMNS = (("id", "run"), ("kind", "kind"), ("status", "status"), ("strategy", "strategy"),
               ("params", "parameters"), ("market", "market"), ("period", "period"), ("return_pct", "return %"),
               ("sharpe", "Sharpe"), ("max_dd_pct", "max DD %"), ("trades", "trades"), ("created", "created"))
TABLE_STYLE = {
    "style_table": {"overflowX": "auto"},
    "style_cell": {"backgroundColor": "var(--bs-body-bg)", "color": "var(--bs-body-color)",
                   "border": "1px solid var(--bs-border-color)", "fontSize": "0.85rem", "padding": "4px 8px",
                   "fontFamily": "var(--bs-body-font-family)",
                   "textAlign": "left", "maxWidth": "220px", "overflow": "hidden", "textOverflow": "ellipsis"},
    "style_header": {"backgroundColor": "var(--bs-tertiary-bg)", "fontWeight": "600"},
    "style_filter": {"backgroundColor": "var(--bs-secondary-bg)"},
}


def layout(context: DashboardContext) -> Any:
    markets = market_list(context)
    market_options = [{"label": f"{m.symbol} ({m.exchange})", "value": m.value} for m in markets]
    strategies = [{"label": name, "value": name, "title": d} for name, d in strategy_names(context)]

    def field(label: str, component: Any) -> Any:
        return html.Div([dbc.Label(label, className="small mb-0"), component], className="mb-2")

    number = {"type": "number", "size": "sm"}
    form = dbc.Card([dbc.CardHeader("New backtest"), dbc.CardBody([
        field("strategy", dcc.Dropdown(id=ids.BT_STRATEGY, options=strategies,
                                       value=strategies[0]["value"] if strategies else None, clearable=False)),
        field("parameters (JSON)", dbc.Textarea(id=ids.BT_PARAMS, className="json-editor-small", spellCheck=False)),
        dbc.Row([
            dbc.Col(field("market", dcc.Dropdown(id=ids.BT_MARKET, options=market_options, clearable=False,
                                                 value=market_options[0]["value"] if market_options else None)), md=8),
            dbc.Col(field("timeframe", dcc.Dropdown(id=ids.BT_TIMEFRAME, clearable=False)), md=4),
        ], className="g-2"),
        field("period (empty: all stored candles)", dcc.DatePickerRange(id=ids.BT_DATES, clearable=True,
                                                                        display_format="YYYY-MM-DD")),
        dbc.Row([dbc.Col(field("fee %", dbc.Input(id=ids.BT_FEE, value=0.1, min=0, step=0.01, **number)), xs=6),
                 dbc.Col(field("slippage bps", dbc.Input(id=ids.BT_SLIPPAGE, value=2, min=0, **number)), xs=6),
                 dbc.Col(field("size % of equity", dbc.Input(id=ids.BT_SIZING, value=100, min=1, **number)), xs=6),
                 dbc.Col(field("starting cash", dbc.Input(id=ids.BT_BALANCE, value=10_000, min=1, **number)), xs=6)],
                className="g-2"),
        dbc.Checkbox(id=ids.BT_FUNDING, value=False, className="small mb-2",
                     label="charge the funding the collector stored (perpetual swaps)"),
        dbc.Button("Run backtest", id=ids.BT_LAUNCH, color="primary", size="sm", className="me-1"),
        dbc.Accordion([dbc.AccordionItem([
            field("grid (JSON: parameter → values)", dbc.Textarea(id=ids.BT_OPT_GRID, className="json-editor-small",
                                                                  spellCheck=False)),
            field("objective", dcc.Dropdown(id=ids.BT_OPT_OBJECTIVE, value=Objective.SHARPE.value, clearable=False,
                                            options=[o.value for o in Objective])),
            dbc.Button("Optimise", id=ids.BT_OPTIMISE, color="secondary", size="sm"),
        ], title="Parameter optimisation")], start_collapsed=True, className="mt-2"),
        html.Div(id=ids.BT_FORM_FEEDBACK, className="small mt-2"),
        html.Div([dbc.Progress(id=ids.BT_PROGRESS, value=0, striped=True, animated=True, className="mb-1"),
                  html.Div([html.Span(id=ids.BT_PROGRESS_LABEL, className="small me-2"),
                            dbc.Button("Cancel", id=ids.BT_CANCEL, color="danger", size="sm", outline=True,
                                       disabled=True)])], className="mt-2"),
    ])], className="mb-3")
    runs = dbc.Card([dbc.CardHeader("Runs"), dbc.CardBody([
        dash_table.DataTable(  # type: ignore[attr-defined]
            id=ids.BT_RUNS_TABLE, columns=[{"name": t, "id": k} for k, t in RUN_COLUMNS], data=[],
            sort_action="native", filter_action="native", row_selectable="multi", page_size=12, **TABLE_STYLE),
        html.Div([dbc.Button("Compare selected", id=ids.BT_COMPARE, size="sm", color="info", className="mt-2 me-2"),
                  html.Span("click a row to open it; tick two or more to compare",
                            className="small text-body-secondary")]),
    ])], className="mb-3")
    detail = dbc.Card([dbc.CardHeader(html.Div([
        html.Span("Run detail", className="me-auto"),
        dbc.Button("Export trades (CSV)", id=ids.BT_EXPORT, size="sm", color="secondary", outline=True)],
        className="d-flex align-items-center")), dbc.CardBody(id=ids.BT_DETAIL)], className="mb-3")
    return html.Div([
        dcc.Store(id=ids.BT_ACTIVE_RUN), dcc.Store(id=ids.BT_SELECTED_RUN),
        dcc.Interval(id=ids.BT_PROGRESS_INTERVAL, interval=700, disabled=True),
        dcc.Interval(id=ids.BT_RUNS_INTERVAL, interval=10_000), dcc.Download(id=ids.BT_DOWNLOAD),
        dbc.Row([dbc.Col(form, lg=4), dbc.Col(runs, lg=8)]),
        detail,
        html.Div(id=ids.BT_COMPARE_VIEW),
    ])


def default_texts(strategy: str | None) -> tuple[str, str]:
    """The strategy's default parameters, and a small grid around the integer ones."""
    if not strategy:
        return "", ""
    from strategies.registry import get_strategy_class

    spec = get_strategy_class(strategy).params_spec
    defaults = {k: p.default for k, p in spec.items()}
    grid: dict[str, list[int]] = {}
    for key, param in spec.items():
        if param.type is int and len(grid) < 2:
            default = int(param.default)
            values = sorted({max(int(param.min or 1), int(default * f)) for f in (0.5, 1, 2)})
            grid[key] = [v for v in values if param.max is None or v <= param.max]
    return json.dumps(defaults, indent=1), json.dumps(grid)


def submit(context: DashboardContext, optimise: bool, form: tuple[Any, ...], grid_text: str | None,
           objective: str | None) -> tuple[Any, int | None]:
    """Queue the run the form describes; (feedback, run id or None). Invalid input queues nothing."""
    try:
        request = build_request(*form)
        if request.get("funding_db"):
            with context.session() as session:
                if not funding_settlements(session, request["exchange"], request["symbol"]):
                    raise FormError("funding", f"no funding rates stored for {request['exchange']} "
                                               f"{request['symbol']} (the collector stores them for -SWAP symbols)")
        service = context.backtests()
        if optimise:
            grid = parse_json_object(grid_text, "grid")
            run_id = service.submit_optimisation(request, {"method": "grid", "grid": grid,
                                                           "objective": objective or "sharpe", "workers": 1})
        else:
            run_id = service.submit_backtest(request)
    except FormError as exc:
        return error(exc.field, exc.reason), None
    except ConfigurationError as exc:
        return error(exc.field or exc.source or "form", exc.reason), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "form"
        return error(where, str(first["msg"]).removeprefix("Value error, ")), None
    kind = "optimisation" if optimise else "backtest"
    return html.Span(f"{kind} #{run_id} queued", className="text-success"), run_id


def error(field: str, reason: str) -> Any:
    return html.Span([html.Strong(f"{field}: "), reason], className="text-danger")


def progress(context: DashboardContext, run_id: int | None) -> tuple[Any, ...]:
    """Progress value, its label, whether polling stops, and the run to open when it finished."""
    if run_id is None:
        raise PreventUpdate
    view = context.backtests().get_run(run_id)
    if view is None:
        return 0, f"run #{run_id} vanished", True, True, no_update
    percent = round(view.progress * 100)
    label = f"run #{run_id}: {view.status} {percent} %" + (f" — {view.error}" if view.error else "")
    return percent, label, view.finished, view.finished, (run_id if view.finished else no_update)


def runs_data(context: DashboardContext) -> list[dict[str, Any]]:
    return [run_row(r) for r in context.backtests().list_runs(limit=200)]


def run_detail(context: DashboardContext, run_id: int | None, theme: str) -> Any:
    if run_id is None:
        return html.P("Run a backtest or click a run in the table.", className="text-body-secondary mb-0")
    service = context.backtests()
    view = service.get_run(int(run_id))
    if view is None:
        return html.P(f"run #{run_id} does not exist", className="text-danger")
    header = html.H6(f"#{view.id} {view.kind} · {view.strategy} {json.dumps(view.params)} · {view.symbol} "
                     f"{view.timeframe} · {view.status}", className="mb-2")
    if view.error:
        return html.Div([header, dbc.Alert(view.error, color="danger")])
    if not view.finished:
        return html.Div([header, html.P(f"{view.status}, {view.progress * 100:.0f} %")])
    metrics = dbc.Table([html.Tbody([html.Tr([html.Td(k), html.Td(v, className="text-end")])
                                     for k, v in metric_rows(view.metrics)])], size="sm", className="mb-0")
    if view.kind == "optimisation":
        return html.Div([header, optimisation_detail(service, view, theme)])
    curve = service.run_equity(view.id)
    equity = (equity_figure(np.array(curve["t"], dtype=np.int64), np.array(curve["equity"]), theme)
              if curve.get("t") else empty_figure("no equity curve stored", theme))
    trades = service.run_trades(view.id)
    return html.Div([header, dbc.Row([
        dbc.Col(metrics, lg=3),
        dbc.Col(dcc.Graph(figure=equity, style={"height": "360px"}, config={"displaylogo": False}), lg=9),
    ]), dcc.Graph(figure=trades_chart(context, view, trades, curve.get("t") or [], theme), style={"height": "440px"},
                  config={"displaylogo": False, "scrollZoom": True})])


def trades_chart(context: DashboardContext, view: Any, trades: list[dict[str, Any]], times: list[int],
                 theme: str) -> dict[str, Any]:
    """The run's candles with its entries and exits (over its period, else its equity curve's)."""
    start = datetime_to_ms(view.start_time) if view.start_time else (times[0] if times else None)
    end = datetime_to_ms(view.end_time) if view.end_time else (times[-1] if times else None)
    if not view.symbol or not view.timeframe or start is None or end is None:
        return empty_figure("this run has no stored market to draw", theme)
    window = (int(start), int(end))
    request = ChartRequest(view.exchange or "okx", view.symbol, Timeframe(view.timeframe), view.strategy, window,
                           dict(view.params), signals=False)
    with context.session() as session:
        chart, _ = assemble_chart(session, context.live, request, context.settings.timeframes, trade_markers(trades))
    return market_figure(chart, theme)


def optimisation_detail(service: Any, view: Any, theme: str) -> Any:
    trials = service.trials(view.id)
    best = view.metrics.get("best_params")
    parts: list[Any] = [html.P(f"{len(trials)} trials; best parameters {json.dumps(best)} "
                               f"(score {view.metrics.get('best_score')})", className="mb-2")]
    grid = heatmap_grid(trials)
    if grid is not None:
        x_name, y_name, xs, ys, z = grid
        parts.append(dcc.Graph(figure=heatmap_figure(x_name, y_name, xs, ys, z, "score", theme),
                               style={"height": "420px"}, config={"displaylogo": False}))
    rows = [run_row(t) for t in trials[:50]]
    parts.append(dash_table.DataTable(  # type: ignore[attr-defined]
        columns=[{"name": t, "id": k} for k, t in RUN_COLUMNS], data=rows,
        sort_action="native", page_size=10, **TABLE_STYLE))
    return html.Div(parts)


def comparison(context: DashboardContext, run_ids: list[int] | None, theme: str) -> Any:
    if not run_ids or len(run_ids) < 2:
        return dbc.Alert("tick two or more runs to compare them", color="info", className="py-1")
    rows = context.backtests().compare_runs([int(r) for r in run_ids])
    series = [(f"#{r['id']} {r['strategy']}", np.array(r["equity_curve"].get("t", []), dtype=np.int64),
               np.array(r["equity_curve"].get("equity", []), dtype=np.float64)) for r in rows if r["equity_curve"]]
    keys = ("total_return", "sharpe", "sortino", "max_drawdown", "win_rate", "profit_factor", "trades", "fees_paid")
    table = dbc.Table([
        html.Thead(html.Tr([html.Th("metric"), *(html.Th(f"#{r['id']} {r['strategy']}") for r in rows)])),
        html.Tbody([html.Tr([html.Td("parameters"), *(html.Td(json.dumps(r["params"])) for r in rows)])] + [
            html.Tr([html.Td(k), *(html.Td(metric_rows({k: r.get(k)})[0][1] if r.get(k) is not None else "–")
                                   for r in rows)]) for k in keys]),
    ], size="sm", responsive=True)
    return dbc.Card([dbc.CardHeader("Comparison"), dbc.CardBody([
        dcc.Graph(figure=compare_figure(series, theme), style={"height": "360px"}, config={"displaylogo": False}),
        table])], className="mb-3")


def register(app: Dash, context: DashboardContext) -> None:
    app.callback(Output(ids.BT_PARAMS, "value"), Output(ids.BT_OPT_GRID, "value"),
                 Input(ids.BT_STRATEGY, "value"))(lambda strategy: default_texts(strategy))
    app.callback(Output(ids.BT_TIMEFRAME, "options"), Output(ids.BT_TIMEFRAME, "value"),
                 Input(ids.BT_MARKET, "value"), State(ids.BT_TIMEFRAME, "value"),
                 )(lambda market, current: timeframe_options(context, market, current))

    form_state = [State(i, p) for i, p in (
        (ids.BT_STRATEGY, "value"), (ids.BT_PARAMS, "value"), (ids.BT_MARKET, "value"), (ids.BT_TIMEFRAME, "value"),
        (ids.BT_DATES, "start_date"), (ids.BT_DATES, "end_date"), (ids.BT_FEE, "value"), (ids.BT_SLIPPAGE, "value"),
        (ids.BT_SIZING, "value"), (ids.BT_BALANCE, "value"), (ids.BT_FUNDING, "value"))]

    @app.callback(
        Output(ids.BT_FORM_FEEDBACK, "children"), Output(ids.BT_ACTIVE_RUN, "data"),
        Output(ids.BT_PROGRESS_INTERVAL, "disabled", allow_duplicate=True),
        Output(ids.BT_CANCEL, "disabled", allow_duplicate=True),
        Input(ids.BT_LAUNCH, "n_clicks"), Input(ids.BT_OPTIMISE, "n_clicks"), *form_state,
        State(ids.BT_OPT_GRID, "value"), State(ids.BT_OPT_OBJECTIVE, "value"), prevent_initial_call=True,
    )
    def _launch(_launch: int | None, _optimise: int | None, *values: Any) -> tuple[Any, ...]:
        feedback, run_id = submit(context, ctx.triggered_id == ids.BT_OPTIMISE, values[:10], values[10], values[11])
        if run_id is None:
            return feedback, no_update, no_update, no_update
        return feedback, run_id, False, False

    @app.callback(
        Output(ids.BT_PROGRESS, "value"), Output(ids.BT_PROGRESS_LABEL, "children"),
        Output(ids.BT_PROGRESS_INTERVAL, "disabled"), Output(ids.BT_CANCEL, "disabled"),
        Output(ids.BT_SELECTED_RUN, "data"),
        Input(ids.BT_PROGRESS_INTERVAL, "n_intervals"), State(ids.BT_ACTIVE_RUN, "data"), prevent_initial_call=True,
    )
    def _progress(_n: int, run_id: int | None) -> tuple[Any, ...]:
        return progress(context, run_id)

    @app.callback(Output(ids.BT_PROGRESS_LABEL, "children", allow_duplicate=True), Input(ids.BT_CANCEL, "n_clicks"),
                  State(ids.BT_ACTIVE_RUN, "data"), prevent_initial_call=True)
    def _cancel(_n: int | None, run_id: int | None) -> str:
        if run_id is None:
            raise PreventUpdate
        return f"run #{run_id}: {context.backtests().cancel_run(int(run_id))}"

    app.callback(Output(ids.BT_RUNS_TABLE, "data"), Input(ids.BT_RUNS_INTERVAL, "n_intervals"),
                 Input(ids.BT_SELECTED_RUN, "data"))(lambda _n, _run: runs_data(context))

    @app.callback(Output(ids.BT_SELECTED_RUN, "data", allow_duplicate=True), Input(ids.BT_RUNS_TABLE, "active_cell"),
                  prevent_initial_call=True)
    def _open(cell: dict[str, Any] | None) -> int:
        if not cell or cell.get("row_id") is None:
            raise PreventUpdate
        return int(cell["row_id"])

    app.callback(Output(ids.BT_DETAIL, "children"), Input(ids.BT_SELECTED_RUN, "data"), Input(ids.THEME_STORE, "data"),
                 )(lambda run_id, theme: run_detail(context, run_id, theme or "dark"))

    @app.callback(Output(ids.BT_DOWNLOAD, "data"), Input(ids.BT_EXPORT, "n_clicks"), State(ids.BT_SELECTED_RUN, "data"),
                  prevent_initial_call=True)
    def _export(_n: int | None, run_id: int | None) -> dict[str, Any]:
        if run_id is None:
            raise PreventUpdate
        return dcc.send_string(trades_csv(context.backtests().run_trades(int(run_id))), f"run_{run_id}_trades.csv")

    app.callback(Output(ids.BT_COMPARE_VIEW, "children"), Input(ids.BT_COMPARE, "n_clicks"),
                 State(ids.BT_RUNS_TABLE, "selected_row_ids"), State(ids.THEME_STORE, "data"),
                 prevent_initial_call=True,
                 )(lambda _n, run_ids, theme: comparison(context, run_ids, theme or "dark"))
