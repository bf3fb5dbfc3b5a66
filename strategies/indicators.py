"""Indicators through TA-Lib (plus VWAP, which TA-Lib lacks). Inputs and outputs are float64 arrays
aligned with the candles; values are NaN until the indicator has enough data."""

from __future__ import annotations

import numpy as np
import talib

from strategies.bars import ANCHOR_MS


def sma(close: np.ndarray, period: int) -> np.ndarray:
    return talib.SMA(close, timeperiod=period)


def ema(close: np.ndarray, period: int) -> np.ndarray:
    return talib.EMA(close, timeperiod=period)


def rsi(close: np.ndarray, period: int) -> np.ndarray:
    return talib.RSI(close, timeperiod=period)


def macd(close: np.ndarray, fast: int, slow: int, signal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(macd line, signal line, histogram)."""
    line, sig, hist = talib.MACD(close, fastperiod=fast, slowperiod=slow, signalperiod=signal)
    return line, sig, hist


def bollinger(close: np.ndarray, period: int, std: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(upper, middle, lower) bands: SMA ± ``std`` population standard deviations."""
    upper, middle, lower = talib.BBANDS(close, timeperiod=period, nbdevup=std, nbdevdn=std, matype=talib.MA_Type.SMA)
    return upper, middle, lower


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    return talib.ATR(high, low, close, timeperiod=period)


def adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    return talib.ADX(high, low, close, timeperiod=period)


def stochastic(high: np.ndarray, low: np.ndarray, close: np.ndarray, k_period: int = 14,
               k_smooth: int = 3, d_period: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(slow %K, %D) with simple moving averages."""
    k, d = talib.STOCH(high, low, close, fastk_period=k_period, slowk_period=k_smooth, slowk_matype=talib.MA_Type.SMA,
                       slowd_period=d_period, slowd_matype=talib.MA_Type.SMA)
    return k, d


def obv(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    return talib.OBV(close, volume)


def highest(values: np.ndarray, period: int) -> np.ndarray:
    return talib.MAX(values, timeperiod=period)


def lowest(values: np.ndarray, period: int) -> np.ndarray:
    return talib.MIN(values, timeperiod=period)


def vwap(open_time: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
         volume: np.ndarray) -> np.ndarray:
    """Session VWAP: cumulative typical price × volume over cumulative volume, reset at each UTC
    midnight. NaN while the session has traded no volume."""
    typical = (high + low + close) / 3.0
    out = np.full(len(close), np.nan)
    if len(close) == 0:
        return out
    day = open_time // ANCHOR_MS
    bounds = [0, *(np.flatnonzero(np.diff(day) != 0) + 1), len(close)]
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        pv = np.cumsum(typical[start:end] * volume[start:end])
        vol = np.cumsum(volume[start:end])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:end] = np.where(vol > 0, pv / vol, np.nan)
    return out


def crossings(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """int8 events: +1 where ``a`` crosses above ``b`` (a > b now, a <= b on the previous bar),
    -1 where it crosses below, 0 elsewhere (and wherever either side is NaN)."""
    out = np.zeros(len(a), dtype=np.int8)
    if len(a) < 2:
        return out
    now_above, now_below = a[1:] > b[1:], a[1:] < b[1:]
    was_not_above, was_not_below = a[:-1] <= b[:-1], a[:-1] >= b[:-1]
    out[1:][now_above & was_not_above] = 1
    out[1:][now_below & was_not_below] = -1
    return out
