"""Indicator outputs agree with TA-Lib's own functions on real candles; VWAP with a plain pandas
computation; and the day-anchored evaluation windows agree with full-history TA-Lib once settled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from strategies import indicators as ta
from strategies.bars import Bars, evaluation_starts
from strategies.registry import create_strategy
from tests.strategies.candles import FIVE_MINUTES, ONE_MINUTE, load_candles


@pytest.fixture(scope="module")
def bars() -> Bars:
    return Bars.from_frame(load_candles(FIVE_MINUTES))


def test_the_indicator_wrappers_return_talibs_own_numbers(bars: Bars) -> None:
    h, lo, c, v = bars.high, bars.low, bars.close, bars.volume
    same = np.testing.assert_array_equal
    same(ta.sma(c, 20), talib.SMA(c, 20))
    same(ta.ema(c, 20), talib.EMA(c, 20))
    same(ta.rsi(c, 14), talib.RSI(c, 14))
    for mine, theirs in zip(ta.macd(c, 12, 26, 9), talib.MACD(c, 12, 26, 9), strict=True):
        same(mine, theirs)
    for mine, theirs in zip(ta.bollinger(c, 20, 2.0), talib.BBANDS(c, 20, 2.0, 2.0, 0), strict=True):
        same(mine, theirs)
    same(ta.atr(h, lo, c, 14), talib.ATR(h, lo, c, 14))
    same(ta.adx(h, lo, c, 14), talib.ADX(h, lo, c, 14))
    for mine, theirs in zip(ta.stochastic(h, lo, c), talib.STOCH(h, lo, c, 14, 3, 0, 3, 0), strict=True):
        same(mine, theirs)
    same(ta.obv(c, v), talib.OBV(c, v))
    same(ta.highest(h, 20), talib.MAX(h, 20))
    same(ta.lowest(lo, 20), talib.MIN(lo, 20))


def test_session_vwap_matches_a_plain_pandas_daily_cumulative_average(bars: Bars) -> None:
    frame = pd.DataFrame({"t": bars.open_time, "h": bars.high, "l": bars.low, "c": bars.close, "v": bars.volume})
    frame["day"] = frame["t"] // 86_400_000
    frame["pv"] = (frame["h"] + frame["l"] + frame["c"]) / 3 * frame["v"]
    expected = frame.groupby("day")["pv"].cumsum() / frame.groupby("day")["v"].cumsum()
    got = ta.vwap(bars.open_time, bars.high, bars.low, bars.close, bars.volume)
    np.testing.assert_allclose(got, expected.to_numpy(), rtol=1e-12)
    assert got[0] == pytest.approx((bars.high[0] + bars.low[0] + bars.close[0]) / 3)


def test_each_strategys_dashboard_series_are_talib_on_the_full_series() -> None:
    frame = load_candles(ONE_MINUTE)
    h, lo, c = (frame[k].to_numpy() for k in ("high", "low", "close"))
    expected = {
        "sma_cross": {"sma_fast": talib.SMA(c, 10), "sma_slow": talib.SMA(c, 30)},
        "ema_cross": {"ema_fast": talib.EMA(c, 12), "ema_slow": talib.EMA(c, 26)},
        "rsi_reversion": {"rsi": talib.RSI(c, 14)},
        "macd_cross": dict(zip(("macd", "macd_signal", "macd_hist"), talib.MACD(c, 12, 26, 9), strict=True)),
        "bollinger": dict(zip(("bb_upper", "bb_middle", "bb_lower"), talib.BBANDS(c, 20, 2, 2, 0), strict=True)),
        "donchian_breakout": {"donchian_upper": np.r_[np.nan, talib.MAX(h, 20)[:-1]],
                              "donchian_lower": np.r_[np.nan, talib.MIN(lo, 20)[:-1]]},
    }
    for name, series in expected.items():
        strategy = create_strategy(name, {})
        got = strategy.compute_indicators(frame)
        assert [spec.name for spec in strategy.get_indicators()] == list(series), name
        for key, values in series.items():
            np.testing.assert_array_equal(got[key], values, err_msg=f"{name}.{key}")


@pytest.mark.parametrize("indicator", ["ema", "rsi", "macd"])
def test_values_inside_an_evaluation_window_agree_with_full_history_talib(bars: Bars, indicator: str) -> None:
    """The windows start `history` bars before each day: enough for recursive indicators to settle."""
    history = 500
    funcs = {"ema": lambda x: talib.EMA(x, 26), "rsi": lambda x: talib.RSI(x, 14),
             "macd": lambda x: talib.MACD(x, 12, 26, 9)[1]}
    full = funcs[indicator](bars.close)
    starts = evaluation_starts(bars.open_time, history)
    worst = 0.0
    for i in range(history + 300, len(bars), 97):
        windowed = funcs[indicator](bars.close[starts[i]: i + 1])[-1]
        worst = max(worst, abs(windowed - full[i]) / max(abs(full[i]), 1.0))
    assert worst < 1e-9
