"""The shell: navbar, theme switch, page container and routing. Pages own their layout and callbacks."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html

from dashboard import ids
from dashboard.context import DashboardContext
from dashboard.pages import backtests, bots, market, spreads, system

ASSETS = Path(__file__).resolve().parent / "assets"
PAGES: tuple[ModuleType, ...] = (market, bots, backtests, spreads, system)


def build_app(context: DashboardContext) -> Dash:
    """A Dash app with every page registered against ``context``."""
    app = Dash(
        __name__, title="TCP Dashboard", update_title=None,  # type: ignore[arg-type]  # None: keep the title
        assets_folder=str(ASSETS),
        suppress_callback_exceptions=True, serve_locally=True,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    app.index_string = app.index_string.replace("<html>", '<html data-bs-theme="dark">', 1)
    app.layout = shell()
    _register_shell(app, context)
    for page in PAGES:
        page.register(app, context)
    return app


def shell() -> Any:
    links = [dbc.NavItem(dbc.NavLink(page.TITLE, href=page.PATH, active="exact")) for page in PAGES]
    theme = dbc.Switch(id=ids.THEME_SWITCH, label="dark", value=True, className="ms-lg-3 mt-2 mt-lg-0 mb-0")
    navbar = dbc.Navbar(
        dbc.Container([
            dbc.NavbarBrand("TCP Dashboard", href="/"),
            dbc.NavbarToggler(id=ids.NAVBAR_TOGGLER),
            dbc.Collapse(dbc.Nav([*links, dbc.NavItem(theme)], navbar=True, className="ms-auto align-items-lg-center"),
                         id=ids.NAVBAR_COLLAPSE, navbar=True, is_open=False),
        ], fluid=True),
        color="body-tertiary", dark=False, className="border-bottom", expand="lg",
    )
    return html.Div([
        dcc.Location(id=ids.URL),
        dcc.Store(id=ids.THEME_STORE, storage_type="local", data="dark"),
        navbar,
        dbc.Container(id=ids.PAGE, fluid=True, className="page-body"),
    ])


def not_found(path: str) -> Any:
    return dbc.Alert([html.H4("Page not found"), html.P(f"Nothing lives at {path}."),
                      dcc.Link("Back to the market", href="/")], color="warning", className="mt-3")


def _register_shell(app: Dash, context: DashboardContext) -> None:
    by_path = {page.PATH: page for page in PAGES}

    @app.callback(Output(ids.PAGE, "children"), Input(ids.URL, "pathname"))
    def _route(pathname: str | None) -> Any:
        page = by_path.get((pathname or "/").rstrip("/") or "/")
        return page.layout(context) if page is not None else not_found(pathname or "")

    @app.callback(Output(ids.NAVBAR_COLLAPSE, "is_open"), Input(ids.NAVBAR_TOGGLER, "n_clicks"),
                  State(ids.NAVBAR_COLLAPSE, "is_open"), prevent_initial_call=True)
    def _toggle(_clicks: int | None, is_open: bool) -> bool:
        return not is_open

    app.clientside_callback(
        """function (dark, _ts, stored) {
            var ctx = window.dash_clientside.callback_context;
            var fromSwitch = ctx.triggered.length && ctx.triggered[0].prop_id.indexOf("theme-switch") === 0;
            var theme = fromSwitch ? (dark ? "dark" : "light") : (stored || "dark");
            window.dash_clientside.tcp.setTheme(theme);
            return [theme === stored && !fromSwitch ? window.dash_clientside.no_update : theme, theme === "dark"];
        }""",
        Output(ids.THEME_STORE, "data"), Output(ids.THEME_SWITCH, "value"),
        Input(ids.THEME_SWITCH, "value"), Input(ids.THEME_STORE, "modified_timestamp"),
        State(ids.THEME_STORE, "data"),
    )
