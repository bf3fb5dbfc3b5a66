"""Pure figure builders: data in, a Plotly figure dict out (no I/O, no Dash).

Figures are plain dicts rather than ``go.Figure`` objects (building and validating a ``go.Figure``
costs tens of milliseconds). Long numeric arrays travel as Plotly typed arrays
(``{"dtype": "f8", "bdata": <base64>}``): epoch milliseconds on ``date`` axes, never date strings.
The market chart keeps the most recent candles in separate "live" traces holding plain lists, so a
``dash.Patch`` can append to them and rewrite the forming candle without resending the history.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dashboard.candles import OhlcvArrays

Figure = dict[str, Any]

# Trace order of the market chart (the live patch addresses these indices).
HISTORY_CANDLES, LIVE_CANDLES, HISTORY_VOLUME, LIVE_VOLUME = 0, 1, 2, 3

THEMES: dict[str, dict[str, str]] = {
    "dark": {"paper": "#212529", "plot": "#1b1f23", "font": "#dee2e6", "grid": "#343a40",
             "up": "#26a69a", "down": "#ef5350", "volume": "rgba(120,144,156,0.55)", "zero": "#6c757d"},
    "light": {"paper": "#ffffff", "plot": "#ffffff", "font": "#212529", "grid": "#e9ecef",
              "up": "#089981", "down": "#f23645", "volume": "rgba(96,125,139,0.45)", "zero": "#adb5bd"},
}
PALETTE = ("#f5a623", "#4a90e2", "#bd10e0", "#7ed321", "#50e3c2", "#e94e77", "#9013fe", "#b8e986")
RANGE_BUTTONS = (
    {"count": 1, "label": "1h", "step": "hour", "stepmode": "backward"},
    {"count": 6, "label": "6h", "step": "hour", "stepmode": "backward"},
    {"count": 1, "label": "1d", "step": "day", "stepmode": "backward"},
    {"count": 7, "label": "1w", "step": "day", "stepmode": "backward"},
    {"count": 1, "label": "1M", "step": "month", "stepmode": "backward"},
    {"label": "all", "step": "all"},
)


def typed(values: np.ndarray | Sequence[float]) -> dict[str, str]:
    """A float64 Plotly typed array (NaN is drawn as a gap)."""
    array = np.ascontiguousarray(values, dtype="<f8")
    return {"dtype": "f8", "bdata": base64.b64encode(array.tobytes()).decode("ascii")}


def palette(theme: str) -> dict[str, str]:
    if theme not in THEMES:
        raise ValueError(f"unknown theme {theme!r}; expected one of {', '.join(THEMES)}")
    return THEMES[theme]


def base_layout(theme: str, **extra: Any) -> dict[str, Any]:
    colours = palette(theme)
    layout: dict[str, Any] = {
        "paper_bgcolor": colours["paper"], "plot_bgcolor": colours["plot"],
        "font": {"color": colours["font"], "size": 12},
        "margin": {"l": 50, "r": 60, "t": 36, "b": 36},
        "hovermode": "x unified",
        "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1, "yanchor": "bottom"},
    }
    layout.update(extra)
    return layout


def theme_layout_updates(theme: str, axis_names: Sequence[str]) -> dict[str, Any]:
    """Layout attributes to change when the theme flips (applied with ``dash.Patch``)."""
    colours = palette(theme)
    updates: dict[str, Any] = {"paper_bgcolor": colours["paper"], "plot_bgcolor": colours["plot"],
                               "font": {"color": colours["font"], "size": 12}}
    for name in axis_names:
        updates[name] = {"gridcolor": colours["grid"]}
    return updates


def range_selector_colours(theme: str) -> dict[str, Any]:
    colours = palette(theme)
    return {"bgcolor": colours["plot"], "activecolor": colours["grid"], "font": {"color": colours["font"]}}


def empty_figure(message: str, theme: str) -> Figure:
    colours = palette(theme)
    return {"data": [], "layout": base_layout(
        theme, xaxis={"visible": False}, yaxis={"visible": False},
        annotations=[{"text": message, "showarrow": False, "xref": "paper", "yref": "paper",
                      "x": 0.5, "y": 0.5, "font": {"size": 15, "color": colours["font"]}}])}


# ---------------------------------------------------------------------------- market chart


@dataclass(frozen=True, slots=True)
class Overlay:
    """An indicator line: on the price panel (``panel == "price"``) or in its own panel."""

    label: str
    time_ms: np.ndarray
    values: np.ndarray
    panel: str = "price"
    levels: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Markers:
    """Points drawn over the candles; ``kind`` picks symbol and colour, ``hollow`` outlines them
    (signals are hollow, fills and trades solid)."""

    label: str
    kind: str  # "buy" | "sell" | "exit"
    time_ms: np.ndarray
    price: np.ndarray
    text: tuple[str, ...] = ()
    hollow: bool = False


@dataclass(frozen=True, slots=True)
class MarketChart:
    """Everything the market chart shows; ``live`` holds the newest candles (patched in place)."""

    title: str
    history: OhlcvArrays
    live: OhlcvArrays
    bucket_ms: int
    overlays: tuple[Overlay, ...] = ()
    markers: tuple[Markers, ...] = ()
    x_range: tuple[int, int] | None = None
    y_range: tuple[float, float] | None = None
    revision: str = ""
    notes: tuple[str, ...] = field(default=())


def _panels(overlays: Sequence[Overlay]) -> list[str]:
    names: list[str] = []
    for overlay in overlays:
        if overlay.panel != "price" and overlay.panel not in names:
            names.append(overlay.panel)
    return names


def panel_domains(oscillators: int) -> list[tuple[float, float]]:
    """Vertical domains top to bottom: price, volume, then one per oscillator panel."""
    weights = [5.0, 1.2, *([1.8] * oscillators)]
    gap = 0.025
    usable = 1.0 - gap * (len(weights) - 1)
    total = sum(weights)
    domains, top = [], 1.0
    for weight in weights:
        height = usable * weight / total
        domains.append((max(0.0, top - height), top))
        top -= height + gap
    return domains


def _axis_ref(index: int) -> str:
    return "y" if index == 0 else f"y{index + 1}"


def _candles_trace(arrays: OhlcvArrays, colours: dict[str, str], name: str, *, plain: bool) -> dict[str, Any]:
    def encode(values: np.ndarray) -> Any:
        return values.astype(float).tolist() if plain else typed(values)

    return {
        "type": "candlestick", "name": name, "showlegend": False, "xaxis": "x", "yaxis": "y",
        "x": encode(arrays.time_ms), "open": encode(arrays.open), "high": encode(arrays.high),
        "low": encode(arrays.low), "close": encode(arrays.close),
        "increasing": {"line": {"color": colours["up"], "width": 1}, "fillcolor": colours["up"]},
        "decreasing": {"line": {"color": colours["down"], "width": 1}, "fillcolor": colours["down"]},
    }


def _volume_trace(arrays: OhlcvArrays, colours: dict[str, str], bucket_ms: int, *, plain: bool) -> dict[str, Any]:
    x: Any = arrays.time_ms.astype(float).tolist() if plain else typed(arrays.time_ms)
    y: Any = arrays.volume.tolist() if plain else typed(arrays.volume)
    return {"type": "bar", "name": "volume", "showlegend": False, "xaxis": "x", "yaxis": "y2",
            "x": x, "y": y, "width": bucket_ms * 0.8, "offset": bucket_ms * 0.1,
            "marker": {"color": colours["volume"], "line": {"width": 0}}, "hovertemplate": "vol %{y:.4g}"}


MARKER_STYLE = {
    "buy": ("triangle-up", "up"),
    "sell": ("triangle-down", "down"),
    "exit": ("x", "font"),
}


def market_figure(chart: MarketChart, theme: str) -> Figure:
    """Candles + volume, indicator overlays and oscillator panels, markers, range selector."""
    colours = palette(theme)
    oscillators = _panels(chart.overlays)
    domains = panel_domains(len(oscillators))
    data: list[dict[str, Any]] = [
        _candles_trace(chart.history, colours, chart.title, plain=False),
        _candles_trace(chart.live, colours, chart.title, plain=True),
        _volume_trace(chart.history, colours, chart.bucket_ms, plain=False),
        _volume_trace(chart.live, colours, chart.bucket_ms, plain=True),
    ]
    layout = base_layout(theme, uirevision=chart.revision or chart.title, bargap=0, showlegend=True)
    bottom = _axis_ref(len(domains) - 1)
    layout["xaxis"] = {
        "type": "date", "anchor": bottom, "gridcolor": colours["grid"], "rangeslider": {"visible": False},
        "rangeselector": {"buttons": list(RANGE_BUTTONS), "x": 0, "y": 1, "yanchor": "bottom",
                          **range_selector_colours(theme)},
    }
    if chart.x_range is not None:
        layout["xaxis"]["range"] = [float(chart.x_range[0]), float(chart.x_range[1])]
        layout["xaxis"]["autorange"] = False
    layout["yaxis"] = {"domain": list(domains[0]), "side": "right", "gridcolor": colours["grid"],
                       "anchor": "x", "tickformat": ",.6~g"}
    if chart.y_range is not None:
        layout["yaxis"].update(range=list(chart.y_range), autorange=False)
    layout["yaxis2"] = {"domain": list(domains[1]), "side": "right", "gridcolor": colours["grid"],
                        "anchor": "x", "showticklabels": False, "rangemode": "tozero"}
    for index, name in enumerate(oscillators, start=2):
        layout[f"yaxis{index + 1}"] = {"domain": list(domains[index]), "side": "right", "anchor": "x",
                                       "gridcolor": colours["grid"], "title": {"text": name, "font": {"size": 11}}}
    shapes: list[dict[str, Any]] = []
    for number, overlay in enumerate(chart.overlays):
        axis = "y" if overlay.panel == "price" else _axis_ref(oscillators.index(overlay.panel) + 2)
        data.append({"type": "scatter", "mode": "lines", "name": overlay.label, "xaxis": "x", "yaxis": axis,
                     "x": typed(overlay.time_ms), "y": typed(overlay.values),
                     "line": {"width": 1.3, "color": PALETTE[number % len(PALETTE)]}})
        for level in overlay.levels:
            shapes.append({"type": "line", "xref": "x domain", "x0": 0, "x1": 1, "yref": axis, "y0": level,
                           "y1": level, "line": {"color": colours["zero"], "width": 1, "dash": "dot"}})
    for markers in chart.markers:
        symbol, colour_key = MARKER_STYLE[markers.kind]
        trace: dict[str, Any] = {
            "type": "scatter", "mode": "markers", "name": markers.label, "xaxis": "x", "yaxis": "y",
            "x": typed(markers.time_ms), "y": typed(markers.price),
            "marker": {"symbol": f"{symbol}-open" if markers.hollow else symbol, "size": 11,
                       "color": colours[colour_key],
                       "line": {"width": 2 if markers.hollow else 1,
                                "color": colours[colour_key] if markers.hollow else colours["font"]}},
        }
        if markers.text:
            trace["text"] = list(markers.text)
            trace["hovertemplate"] = "%{text}<extra></extra>"
        data.append(trace)
    layout["shapes"] = shapes
    if chart.notes:
        layout["annotations"] = [{"text": " · ".join(chart.notes), "showarrow": False, "xref": "paper",
                                  "yref": "paper", "x": 0, "y": 0, "xanchor": "left", "yanchor": "bottom",
                                  "font": {"size": 11, "color": colours["zero"]}}]
    return {"data": data, "layout": layout}


def visible_y_range(arrays: OhlcvArrays, start_ms: int, end_ms: int, pad: float = 0.04) -> tuple[float, float] | None:
    """Price range of the candles visible in ``[start_ms, end_ms]`` with ``pad`` headroom."""
    window = arrays.between(start_ms, end_ms + 1)
    if len(window) == 0:
        return None
    low, high = float(np.nanmin(window.low)), float(np.nanmax(window.high))
    margin = (high - low) * pad or abs(high) * 0.001 or 1.0
    return low - margin, high + margin


# ---------------------------------------------------------------------------- performance charts


def equity_figure(time_ms: np.ndarray, equity: np.ndarray, theme: str, *, title: str = "") -> Figure:
    """Equity curve above its drawdown (in % below the running peak)."""
    colours = palette(theme)
    equity = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(equity) if len(equity) else equity
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(peak > 0, (equity / peak - 1.0) * 100.0, 0.0)
    data = [
        {"type": "scatter", "mode": "lines", "name": "equity", "x": typed(time_ms), "y": typed(equity),
         "yaxis": "y", "line": {"color": PALETTE[1], "width": 1.5}},
        {"type": "scatter", "mode": "lines", "name": "drawdown %", "x": typed(time_ms), "y": typed(drawdown),
         "yaxis": "y2", "fill": "tozeroy", "line": {"color": colours["down"], "width": 1}},
    ]
    layout = base_layout(
        theme, title={"text": title, "x": 0, "font": {"size": 14}} if title else None,
        xaxis={"type": "date", "anchor": "y2", "gridcolor": colours["grid"]},
        yaxis={"domain": [0.36, 1.0], "gridcolor": colours["grid"], "title": {"text": "equity"}},
        yaxis2={"domain": [0.0, 0.3], "gridcolor": colours["grid"], "title": {"text": "drawdown %"},
                "rangemode": "tozero"},
    )
    return {"data": data, "layout": {k: v for k, v in layout.items() if v is not None}}


def compare_figure(series: Sequence[tuple[str, np.ndarray, np.ndarray]], theme: str) -> Figure:
    """Equity of several runs, each rebased to 100 at its start."""
    colours = palette(theme)
    data = []
    for number, (label, time_ms, equity) in enumerate(series):
        equity = np.asarray(equity, dtype=np.float64)
        rebased = equity / equity[0] * 100.0 if len(equity) and equity[0] else equity
        data.append({"type": "scatter", "mode": "lines", "name": label, "x": typed(time_ms),
                     "y": typed(rebased), "line": {"color": PALETTE[number % len(PALETTE)], "width": 1.5}})
    layout = base_layout(theme, xaxis={"type": "date", "gridcolor": colours["grid"]},
                         yaxis={"gridcolor": colours["grid"], "title": {"text": "equity (start = 100)"}})
    return {"data": data, "layout": layout}


def heatmap_figure(x_name: str, y_name: str, x_values: Sequence[Any], y_values: Sequence[Any],
                   z: np.ndarray, metric: str, theme: str) -> Figure:
    """A metric over a grid of two parameters (``z[row for y][column for x]``, NaN = not run)."""
    colours = palette(theme)
    z = np.asarray(z, dtype=np.float64)
    data = [{"type": "heatmap", "x": [str(v) for v in x_values], "y": [str(v) for v in y_values],
             "z": [[None if np.isnan(v) else float(v) for v in row] for row in z],
             "colorscale": "RdYlGn", "colorbar": {"title": {"text": metric}},
             "hovertemplate": f"{x_name}=%{{x}}<br>{y_name}=%{{y}}<br>{metric}=%{{z:.4g}}<extra></extra>"}]
    layout = base_layout(theme, hovermode="closest",
                         xaxis={"title": {"text": x_name}, "type": "category", "gridcolor": colours["grid"]},
                         yaxis={"title": {"text": y_name}, "type": "category", "gridcolor": colours["grid"]})
    return {"data": data, "layout": layout}
