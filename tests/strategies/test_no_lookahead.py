"""No look-ahead: the live path (one candle at a time through a bounded window) gives exactly the
vectorised path's signals on real OKX candles, and appending candles never changes past signals."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from strategies import indicators as ta
from strategies.bars import Bars
from strategies.base import BaseStrategy, Param, VectorisedStrategy
from strategies.registry import create_strategy
from tests.strategies.candles import FIVE_MINUTES, ONE_MINUTE, live_codes, load_candles

CASES = [
    ("sma_cross", {}), ("sma_cross", {"fast": 50, "slow": 200}),
    ("ema_cross", {}), ("ema_cross", {"fast": 20, "slow": 100}),
    ("rsi_reversion", {}), ("rsi_reversion", {"period": 7, "lower": 25, "upper": 75}),
    ("macd_cross", {}),
    ("bollinger", {}), ("bollinger", {"mode": "breakout", "std": 1.5}),
    ("donchian_breakout", {}), ("donchian_breakout", {"period": 55}),
    ("example_momentum", {}),
]
DATA = [(ONE_MINUTE, 60_000), (FIVE_MINUTES, 300_000)]


@pytest.fixture(scope="module", params=DATA, ids=["1m-2026", "5m-2022"])
def real(request: pytest.FixtureRequest) -> tuple[pd.DataFrame, int]:
    name, step = request.param
    return load_candles(name), step


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}{p or ''}" for n, p in CASES])
def test_feeding_candles_one_at_a_time_gives_exactly_the_vectorised_signals(
    real: tuple[pd.DataFrame, int], name: str, params: dict[str, object]
) -> None:
    frame, step = real
    strategy = create_strategy(name, params)
    vectorised = strategy.generate_signals(frame)
    assert vectorised.dtype == np.int8
    assert (vectorised == 1).sum() >= 3 and (vectorised == -1).sum() >= 3, "too few signals to prove anything"
    np.testing.assert_array_equal(live_codes(strategy, frame, step), vectorised)


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}{p or ''}" for n, p in CASES])
def test_appending_future_candles_never_changes_past_signals(
    real: tuple[pd.DataFrame, int], name: str, params: dict[str, object]
) -> None:
    frame, _ = real
    strategy = create_strategy(name, params)
    full = strategy.generate_signals(frame)
    day_start = int(np.flatnonzero(np.diff(frame["open_time"].to_numpy() // 86_400_000))[0]) + 1
    for cut in (5, strategy.warmup, day_start - 1, day_start, day_start + 1, len(frame) // 2, len(frame) - 1):
        np.testing.assert_array_equal(strategy.generate_signals(frame.iloc[:cut]), full[:cut], err_msg=f"cut={cut}")


@pytest.mark.parametrize(("name", "params"), CASES[:11], ids=[f"{n}{p or ''}" for n, p in CASES[:11]])
def test_generate_signal_on_a_prefix_is_the_vectorised_signal_of_its_last_bar(
    name: str, params: dict[str, object]
) -> None:
    frame = load_candles(ONE_MINUTE)
    strategy = create_strategy(name, params)
    full = strategy.generate_signals(frame)
    picks = [*np.flatnonzero(full != 0)[::25], 0, 1500, len(frame) - 1]
    for i in picks:
        signal = strategy.generate_signal(frame.iloc[: i + 1])
        assert {"BUY": 1, "SELL": -1, "HOLD": 0}[signal.signal_type.value] == full[i], f"bar {i}"
        assert signal.candle_time_ms == frame["open_time"].iloc[i]


class _PeeksAhead(VectorisedStrategy):
    """Deliberately wrong: compares today's close with tomorrow's."""

    name: ClassVar[str] = "peeks_ahead"
    params_spec: ClassVar[dict[str, Param]] = {}

    def signals_for(self, window: Bars) -> np.ndarray:
        nxt = np.append(window.close[1:], np.nan)
        return ta.crossings(nxt, window.close)

    def explain(self, window: Bars, code: int) -> tuple[float, str]:
        return 0.0, ""


def test_the_equality_check_catches_a_strategy_that_peeks_ahead() -> None:
    frame = load_candles(ONE_MINUTE).iloc[:600]
    strategy: BaseStrategy = _PeeksAhead()
    assert not np.array_equal(live_codes(strategy, frame, 60_000), strategy.generate_signals(frame))
