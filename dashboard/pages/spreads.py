"""Spreads page: live cross-market edges (buy one market at its ask, sell the other at its bid) net of the
venues' taker fees, and each perpetual's basis over spot, from the collectors' order books."""

from __future__ import annotations

import time
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, dcc, html

from dashboard import ids
from dashboard.context import DashboardContext
from dashboard.spread_data import basis_rows, spread_rows

PATH = "/spreads"
TITLE = "Spreads"
REFRESH_MS = 1_000


def layout(context: DashboardContext) -> Any:
    return html.Div([
        dcc.Interval(id=ids.SPREADS_INTERVAL, interval=REFRESH_MS),
        dbc.Row([dbc.Col(dbc.Card([dbc.CardHeader("Edges net of taker fees (top of book)"),
                                   dbc.CardBody(id=ids.SPREADS_TABLE)]), className="mb-3")]),
        dbc.Row([dbc.Col(dbc.Card([dbc.CardHeader("Perpetual basis over spot (mids)"),
                                   dbc.CardBody(id=ids.SPREADS_BASIS)]), className="mb-3")]),
        dbc.Row([dbc.Col(dbc.Card([dbc.CardHeader("Books"), dbc.CardBody(id=ids.SPREADS_BOOKS)]), className="mb-3")]),
    ])


def _table(header: list[str], rows: list[list[Any]], table_id: str) -> Any:
    return dbc.Table([html.Thead(html.Tr([html.Th(h) for h in header])),
                      html.Tbody([html.Tr([html.Td(c) for c in row]) for row in rows])],
                     id=table_id, size="sm", striped=True, responsive=True, className="mb-0 font-monospace")


def _bps(value: float) -> Any:
    return html.Span(f"{value:+.2f}", className="text-success" if value > 0 else "text-body-secondary")


def register(app: Dash, context: DashboardContext) -> None:
    @app.callback(Output(ids.SPREADS_TABLE, "children"), Output(ids.SPREADS_BASIS, "children"),
                  Output(ids.SPREADS_BOOKS, "children"), Input(ids.SPREADS_INTERVAL, "n_intervals"))
    def _refresh(_: int | None) -> tuple[Any, Any, Any]:
        tops = context.books.tops()
        if not tops:
            empty = html.P("No order book yet: the collector publishes books.<exchange>.<symbol> when ORDER_BOOKS "
                           "is on, on venues whose books are wired (Binance).", className="text-body-secondary mb-0")
            return empty, empty, empty
        quotes = spread_rows(tops)
        edges = _table(["buy on", "ask", "sell on", "bid", "size", "gross bps", "fees bps", "net bps"],
                       [[str(q.buy), f"{q.buy_price:.2f}", str(q.sell), f"{q.sell_price:.2f}", f"{q.size:g}",
                         f"{q.gross_bps:+.2f}", f"{q.fees_bps:.2f}", _bps(q.net_bps)] for q in quotes],
                       "spreads-edges") if quotes else html.P("No two live markets of the same pair.", className="mb-0")
        basis = _table(["spot", "perpetual", "spot mid", "perp mid", "basis bps"],
                       [[f"{r.spot.exchange}:{r.spot.symbol}", f"{r.perp.exchange}:{r.perp.symbol}",
                         f"{r.spot.mid:.3f}", f"{r.perp.mid:.3f}", f"{r.basis_bps:+.2f}"] for r in basis_rows(tops)],
                       "spreads-basis-table")
        books = _table(["market", "bid", "ask", "levels", "book time (UTC)"],
                       [[f"{t.exchange}:{t.symbol}", f"{t.bids[0][0]:.2f}" if t.bids else "-",
                         f"{t.asks[0][0]:.2f}" if t.asks else "-", f"{len(t.bids)}/{len(t.asks)}",
                         time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t.ts_ms / 1000))
                         + f".{t.ts_ms % 1000:03d}"] for t in tops], "spreads-books-table")
        return edges, basis, books
