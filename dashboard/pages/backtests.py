"""Placeholder until the service layer lands."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash

from dashboard.context import DashboardContext

PATH = "/backtests"
TITLE = "Backtests"


def layout(context: DashboardContext) -> Any:
    return dbc.Alert("coming", color="info")


def register(app: Dash, context: DashboardContext) -> None:
    return None
