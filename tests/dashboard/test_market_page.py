from __future__ import annotations

import base64
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from dash.exceptions import PreventUpdate

from config.domain import Candle, SignalEvent, SignalType, Timeframe
from dashboard.context import DashboardContext
from dashboard.figures import HISTORY_CANDLES, LIVE_CANDLES, LIVE_VOLUME
from dashboard.pages.market import layout, live_edits, load_chart, parse_relayout, timeframe_options
from database.engine import session_scope
from database.repositories.signals import upsert_signals
from tests.dashboard.builders import EXCHANGE, SYMBOL

MARKET = f"{EXCHANGE}|{SYMBOL}"


def decode(values: object) -> np.ndarray:
    if isinstance(values, list):
        return np.asarray(values, dtype=np.float64)
    assert isinstance(values, dict)
    return np.frombuffer(base64.b64decode(values["bdata"]), dtype="<f8")


def drawn(figure: dict, field: str) -> np.ndarray:
    return np.concatenate([decode(figure["data"][HISTORY_CANDLES][field]), decode(figure["data"][LIVE_CANDLES][field])])


def test_opening_a_market_draws_its_newest_stored_candles_with_the_last_one_live(
        context: DashboardContext, seeded: list[Candle]) -> None:
    figure, state, _status = load_chart(context, MARKET, "1m", None, None, "dark")
    times, closes = drawn(figure, "x").astype(np.int64), drawn(figure, "close")
    stored = {c.open_time_ms: c.close for c in seeded}
    assert times[-1] == seeded[-1].open_time_ms
    assert all(stored[int(t)] == c for t, c in zip(times, closes, strict=True))
    assert np.all(np.diff(times) == 60_000)
    assert state["live"] and state["live_times"] == [seeded[-1].open_time_ms]
    assert figure["layout"]["xaxis"]["range"][0] <= seeded[-150].open_time_ms


def test_a_forming_candle_becomes_a_patch_of_the_live_traces(context: DashboardContext, seeded: list[Candle]) -> None:
    _figure, state, _ = load_chart(context, MARKET, "1m", None, None, "dark")
    with pytest.raises(PreventUpdate):
        live_edits(context, state, None)  # nothing new yet
    last = seeded[-1]
    forming = replace(last, open_time_ms=last.open_time_ms + 60_000, open=last.close, high=last.close + 5,
                      low=last.close - 1, close=last.close + 4, volume=0.5, closed=False)
    context.live.update(forming)
    first = live_edits(context, state, None)
    assert first["edits"] == [[-1, forming.open_time_ms, forming.open, forming.high, forming.low, forming.close, 0.5]]
    context.live.update(replace(forming, close=forming.close - 2, volume=0.7))
    second = live_edits(context, state, first)
    assert second["edits"][0][:2] == [1, forming.open_time_ms] and second["edits"][0][5] == forming.close - 2
    with pytest.raises(PreventUpdate):
        live_edits(context, state, second)


def test_a_tick_computed_for_an_older_chart_is_not_continued(context: DashboardContext, seeded: list[Candle]) -> None:
    _f, old_state, _ = load_chart(context, MARKET, "1m", None, None, "dark")
    _f, new_state, _ = load_chart(context, MARKET, "1m", None, None, "dark")
    stale = {"build": old_state["build"], "version": 10**6, "live_times": [1, 2, 3], "edits": []}
    context.live.update(replace(seeded[-1], close=seeded[-1].close + 1))
    edits = live_edits(context, new_state, stale)
    assert edits["build"] == new_state["build"] and edits["live_times"] == new_state["live_times"]


def test_zooming_out_to_the_whole_history_aggregates_without_losing_extremes(
        context: DashboardContext, seeded: list[Candle]) -> None:
    figure, state, _ = load_chart(context, MARKET, "1m", None, "all", "dark")
    highs, lows = drawn(figure, "high"), drawn(figure, "low")
    assert len(highs) <= 1000 and state["bucket_ms"] > 60_000 and not state["live"]
    assert highs.max() == max(c.high for c in seeded) and lows.min() == min(c.low for c in seeded)
    volume = decode(figure["data"][2]["y"]).sum() + decode(figure["data"][LIVE_VOLUME]["y"]).sum()
    assert volume == pytest.approx(sum(c.volume for c in seeded))


def test_a_zoomed_window_shows_native_candles_of_that_window(context: DashboardContext, seeded: list[Candle]) -> None:
    start, end = seeded[1000].open_time_ms, seeded[1100].open_time_ms
    figure, state, _ = load_chart(context, MARKET, "1m", None, (start, end), "light")
    times = drawn(figure, "x").astype(np.int64)
    assert times[0] <= start and times[-1] >= end and not state["live"]
    assert figure["layout"]["xaxis"]["range"] == [float(start), float(end)]
    low, high = figure["layout"]["yaxis"]["range"]
    visible = [c for c in seeded if start <= c.open_time_ms <= end]
    assert low < min(c.low for c in visible) and high > max(c.high for c in visible)


def test_strategy_indicators_are_drawn_over_the_candles(context: DashboardContext, seeded: list[Candle]) -> None:
    figure, _state, _ = load_chart(context, MARKET, "1m", "sma_cross", None, "dark")
    lines = {t["name"]: t for t in figure["data"] if t["type"] == "scatter"}
    slow = lines["SMA 30"]
    times, values = decode(slow["x"]).astype(np.int64), decode(slow["y"])
    closes = pd.Series([c.close for c in seeded], index=[c.open_time_ms for c in seeded])
    expected = closes.rolling(30).mean().loc[times].to_numpy()
    assert np.allclose(values, expected, rtol=1e-9) and slow["yaxis"] == "y"


def test_oscillators_get_a_panel_of_their_own(context: DashboardContext, seeded: list[Candle]) -> None:
    figure, _state, _ = load_chart(context, MARKET, "1m", "rsi_reversion", None, "dark")
    axes = {t["yaxis"] for t in figure["data"] if t["type"] == "scatter" and t.get("mode") == "lines"}
    assert "y3" in axes and "yaxis3" in figure["layout"]


def test_stored_signals_appear_as_markers(context: DashboardContext, seeded: list[Candle]) -> None:
    candle = seeded[-20]
    event = SignalEvent("engine:sma_cross", "sma_cross", EXCHANGE, SYMBOL, Timeframe.M1, candle.open_time_ms,
                        SignalType.BUY, 0.7, "fast crossed above slow", candle.close)
    with session_scope(context.session_factory) as session:
        upsert_signals(session, [event])
    figure, _state, _ = load_chart(context, MARKET, "1m", None, None, "dark")
    markers = [t for t in figure["data"] if t.get("mode") == "markers"]
    assert len(markers) == 1 and markers[0]["marker"]["symbol"] == "triangle-up-open"
    assert decode(markers[0]["x"]).astype(np.int64).tolist() == [candle.open_time_ms]
    assert "fast crossed above slow" in markers[0]["text"][0]


def test_a_market_without_candles_says_so(context: DashboardContext) -> None:
    figure, state, _ = load_chart(context, MARKET, "1m", None, None, "dark")
    assert "no candles stored" in figure["layout"]["annotations"][0]["text"] and not state["live"]


def test_the_page_offers_stored_markets_and_their_timeframes(context: DashboardContext, seeded: list[Candle]) -> None:
    page = str(layout(context))
    assert SYMBOL in page and "sma_cross" in page
    options, value = timeframe_options(context, MARKET, "15m")
    assert [o["value"] for o in options] == ["1m", "5m", "15m", "1h"] and value == "15m"
    assert timeframe_options(context, MARKET, "4h")[1] == "1m"


@pytest.mark.parametrize(("event", "expected"), [
    (None, None),
    ({"autosize": True}, None),
    ({"yaxis.range[0]": 1, "yaxis.range[1]": 2}, None),
    ({"xaxis.autorange": True}, "all"),
    ({"xaxis.range[0]": "2026-01-01 00:00:00", "xaxis.range[1]": "2026-01-01 01:00:30.5"},
     (1767225600000, 1767229230500)),
    ({"xaxis.range": ["2026-01-01", 1767229200000]}, (1767225600000, 1767229200000)),
])
def test_relayout_events_become_time_windows(event: dict | None, expected: object) -> None:
    assert parse_relayout(event) == expected
