from __future__ import annotations

import base64

import numpy as np
import plotly.io.json as plotly_json
import pytest

from dashboard.candles import OhlcvArrays, point_budget, resample
from dashboard.figures import (
    HISTORY_CANDLES,
    LIVE_CANDLES,
    LIVE_VOLUME,
    Markers,
    MarketChart,
    Overlay,
    compare_figure,
    equity_figure,
    heatmap_figure,
    market_figure,
    panel_domains,
    typed,
    visible_y_range,
)
from tests.dashboard.builders import fixture_candles


def decode(spec: dict[str, str]) -> np.ndarray:
    assert spec["dtype"] == "f8"
    return np.frombuffer(base64.b64decode(spec["bdata"]), dtype="<f8")


def chart(n: int = 300, **extra: object) -> MarketChart:
    data = OhlcvArrays.from_candles(fixture_candles(n))
    return MarketChart("BTC-USDT-SWAP · 1m", data.slice(0, n - 2), data.slice(n - 2, n), 60_000, **extra)  # type: ignore[arg-type]


def test_typed_arrays_round_trip_epoch_milliseconds_exactly() -> None:
    times = OhlcvArrays.from_candles(fixture_candles(5)).time_ms
    assert list(decode(typed(times)).astype(np.int64)) == list(times)


def test_history_is_sent_as_typed_arrays_and_the_live_candles_as_plain_lists() -> None:
    figure = market_figure(chart(), "dark")
    history, live = figure["data"][HISTORY_CANDLES], figure["data"][LIVE_CANDLES]
    assert set(history["x"]) == {"dtype", "bdata"} and len(decode(history["close"])) == 298
    assert isinstance(live["x"], list) and len(live["close"]) == 2
    assert figure["data"][LIVE_VOLUME]["yaxis"] == "y2"
    assert figure["layout"]["xaxis"]["type"] == "date"


def test_price_overlays_share_the_candles_axis_and_oscillators_get_their_own_panel() -> None:
    base = chart()
    t = base.history.time_ms
    overlays = (Overlay("SMA 10", t, base.history.close), Overlay("RSI 14", t, np.full(len(t), 50.0), "rsi", (30, 70)))
    figure = market_figure(chart(overlays=overlays), "light")
    lines = {trace["name"]: trace for trace in figure["data"] if trace["type"] == "scatter"}
    assert lines["SMA 10"]["yaxis"] == "y" and lines["RSI 14"]["yaxis"] == "y3"
    assert figure["layout"]["yaxis3"]["title"]["text"] == "rsi"
    assert {shape["y0"] for shape in figure["layout"]["shapes"]} == {30, 70}
    assert figure["layout"]["xaxis"]["anchor"] == "y3"  # the time axis sits under the lowest panel


def test_panels_stack_top_to_bottom_without_overlapping() -> None:
    for oscillators in range(4):
        domains = panel_domains(oscillators)
        assert len(domains) == 2 + oscillators and domains[0][1] == pytest.approx(1.0)
        for upper, lower in zip(domains, domains[1:], strict=False):
            assert lower[1] < upper[0]
        assert domains[-1][0] >= 0


def test_markers_use_the_side_symbol_and_carry_their_reason() -> None:
    base = chart()
    t = base.history.time_ms[[10, 20]]
    figure = market_figure(chart(markers=(Markers("BUY signals", "buy", t, base.history.close[[10, 20]],
                                                  ("BUY a", "BUY b")),)), "dark")
    marker = figure["data"][-1]
    assert marker["marker"]["symbol"] == "triangle-up" and marker["text"] == ["BUY a", "BUY b"]


def test_a_hundred_thousand_candles_resampled_to_the_budget_fit_in_100_kib() -> None:
    rng = np.random.default_rng(7)
    n = 100_000
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    times = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 60_000
    big = OhlcvArrays(times, close, close * 1.001, close * 0.999, close, rng.random(n) * 10)
    overlays_count = 4
    budget = point_budget(7 + 2 * overlays_count)
    from dashboard.candles import bucket_ms_for

    bucket = bucket_ms_for(int(times[-1] - times[0]), 60_000, budget)
    small = resample(big, bucket)
    assert len(small) <= budget
    overlays = tuple(Overlay(f"line {k}", small.time_ms, small.close * (1 + k / 100)) for k in range(overlays_count))
    figure = market_figure(MarketChart("big", small, OhlcvArrays.empty(), bucket, overlays), "dark")
    assert len(plotly_json.to_json_plotly(figure)) <= 100 * 1024


def test_the_visible_price_range_covers_every_visible_candle_and_nothing_else() -> None:
    data = OhlcvArrays.from_candles(fixture_candles(100))
    low, high = visible_y_range(data, int(data.time_ms[10]), int(data.time_ms[19]))
    inside = data.slice(10, 20)
    assert low < inside.low.min() and high > inside.high.max()
    assert high - low < (inside.high.max() - inside.low.min()) * 1.2


def test_equity_figure_draws_drawdown_below_the_running_peak() -> None:
    equity = np.array([100.0, 110.0, 99.0, 120.0])
    figure = equity_figure(np.arange(4) * 60_000, equity, "dark")
    assert list(decode(figure["data"][1]["y"])) == pytest.approx([0.0, 0.0, -10.0, 0.0])


def test_compared_runs_are_rebased_to_one_hundred() -> None:
    figure = compare_figure([("a", np.arange(3), np.array([50.0, 55.0, 60.0])),
                             ("b", np.arange(3), np.array([200.0, 100.0, 300.0]))], "light")
    assert [list(decode(t["y"])) for t in figure["data"]] == [pytest.approx([100.0, 110.0, 120.0]),
                                                              pytest.approx([100.0, 50.0, 150.0])]


def test_heatmap_leaves_parameter_pairs_that_were_not_run_empty() -> None:
    z = np.array([[1.0, np.nan], [0.5, 2.0]])
    figure = heatmap_figure("fast", "slow", [5, 10], [20, 30], z, "sharpe", "dark")
    assert figure["data"][0]["z"] == [[1.0, None], [0.5, 2.0]]


def test_an_unknown_theme_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown theme 'blue'"):
        market_figure(chart(), "blue")
