"""Market inputs as strategy columns (issue 14.3): what each bar is given, that it does not depend on where the
series starts, and ``funding_contrarian`` on the real bundled OKX BTC-USDT-SWAP 1m candles and the real funding
history of the same fortnight (data/samples/README.md), checked against a hand computation with the csv module."""

from __future__ import annotations

import bisect
import csv
import gzip
from pathlib import Path

import numpy as np
import pytest

from backtesting.runner import load_data, run_backtest
from backtesting.spec import BacktestSpec
from config.errors import ConfigurationError
from strategies.bars import Bars
from strategies.inputs import FUNDING_LOOKBACK_MS, INPUTS, MarketHistory, input_columns
from strategies.registry import create_strategy
from tests.backtesting.builders import make_bot
from tests.strategies.candles import ONE_MINUTE, live_codes, load_candles

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
CANDLES = SAMPLES / "okx_BTC-USDT-SWAP_1m_2026-01-01_2026-01-16.csv.gz"
FUNDING = SAMPLES / "okx_BTC-USDT-SWAP_funding_rate_2026-01-01_2026-01-15.csv"
MIN = 60_000


def a(values: list[float] | list[int], dtype: type = np.float64) -> np.ndarray:
    return np.array(values, dtype=dtype)


def test_each_bar_gets_what_was_known_at_its_close() -> None:
    open_time = a([0, MIN, 2 * MIN, 3 * MIN], np.int64)
    history = MarketHistory(
        funding_times=a([MIN, 150_000], np.int64), funding_rates=a([0.0001, -0.0002]),  # settles at bar 0's close
        oi_times=a([30_000, MIN, 119_999], np.int64), oi_values=a([10.0, 11.0, 12.0]),  # 60 000 is bar 1's
        long_liq_times=a([0, 59_999, MIN], np.int64), long_liq_sizes=a([1.0, 2.0, 4.0]),
        short_liq_times=a([3 * MIN + 5], np.int64), short_liq_sizes=a([0.5]))
    cols = input_columns(open_time, MIN, history)
    assert list(cols) == list(INPUTS)
    assert cols["funding_rate"].tolist() == [0.0001, 0.0001, -0.0002, -0.0002]
    assert cols["open_interest"].tolist() == [10.0, 12.0, 12.0, 12.0]
    assert cols["long_liquidations"].tolist() == [3.0, 4.0, 0.0, 0.0]
    assert cols["short_liquidations"].tolist() == [0.0, 0.0, 0.0, 0.5]
    early = input_columns(a([-2 * MIN, -MIN], np.int64), MIN, history, ("funding_rate", "open_interest"))
    assert np.isnan(early["funding_rate"]).all() and np.isnan(early["open_interest"]).all()
    with pytest.raises(ValueError, match="unknown input 'basis'"):
        input_columns(open_time, MIN, history, ("basis",))


def test_a_bar_gets_the_same_numbers_whatever_the_series_starts_at() -> None:
    """The live window starts later than a backtest's series: its bars must get bit-identical values."""
    rng = np.random.default_rng(7)
    open_time = np.arange(5_000, dtype=np.int64) * MIN
    times = np.sort(rng.integers(-MIN, 5_000 * MIN, 20_000)).astype(np.int64)
    sizes = rng.random(20_000) * 10.0 ** rng.integers(-3, 4, 20_000)  # magnitudes that round differently
    history = MarketHistory(times[::50], rng.normal(0, 1e-4, len(times[::50])), times[::7], rng.random(len(times[::7])),
                            times, sizes, times[::3], sizes[::3])
    whole = input_columns(open_time, MIN, history)
    for start in (1, 977, 4_321):
        t0 = int(open_time[start])
        # what a live read of the window holds (bot_manager.market_inputs.stored_history): liquidations from the
        # window's first bar, settlements and open interest from a day before it
        early, late = t0 - FUNDING_LOOKBACK_MS, t0
        cut = MarketHistory(*keep(history.funding_times, history.funding_rates, early),
                            *keep(history.oi_times, history.oi_values, early),
                            *keep(history.long_liq_times, history.long_liq_sizes, late),
                            *keep(history.short_liq_times, history.short_liq_sizes, late))
        part = input_columns(open_time[start:], MIN, cut)
        for name in INPUTS:
            assert part[name].tobytes() == whole[name][start:].tobytes(), name


def keep(times: np.ndarray, values: np.ndarray, since: int) -> tuple[np.ndarray, np.ndarray]:
    mask = times >= since
    return times[mask], values[mask]


def settled_rates() -> tuple[list[int], list[float]]:
    with FUNDING.open(newline="") as f:
        rows = [(int(r["ts_ms"]), float(r["funding_rate"])) for r in csv.DictReader(f)]
    return [t for t, _ in rows], [r for _, r in rows]


def test_funding_contrarian_fades_the_crowded_side_on_the_real_funding_history() -> None:
    times, rates = settled_rates()
    with gzip.open(CANDLES, "rt", newline="") as f:
        opens = [int(r["ts_ms"]) for r in csv.DictReader(f)]
    high, low = 0.00004, -0.00002
    # by hand: the settled rate known at each bar's close, and the bars where it steps into a zone
    known = [rates[i - 1] if (i := bisect.bisect_right(times, t + MIN)) else None for t in opens]
    expected = {}
    for k in range(1, len(opens)):
        now, before = known[k], known[k - 1]
        if now is not None and before is not None:
            if now >= high > before:
                expected[k] = -1
            elif now <= low < before:
                expected[k] = 1
    assert sum(v == 1 for v in expected.values()) >= 3 and sum(v == -1 for v in expected.values()) >= 5

    bot = make_bot("funding_contrarian", {"high": high, "low": low}, timeframe="1m", allow_short=True)
    spec = BacktestSpec(bot=bot, data_file=str(CANDLES), funding_file=str(FUNDING))
    prepared = load_data(spec)
    assert prepared.data.extra["funding_rate"].tolist()[1_000:1_010] == known[1_000:1_010]
    strategy = create_strategy("funding_contrarian", {"high": high, "low": low})
    codes = strategy.generate_signals(prepared.data.frame())
    assert {int(k): int(codes[k]) for k in np.flatnonzero(codes)} == expected
    # the live path (one window per bar) says the same on a signal bar, with the rate in its reason
    k = next(iter(expected))
    bars = Bars.from_frame(prepared.data.frame()).slice(0, k + 1)
    signal = strategy.signal_at_end(bars)
    assert signal.signal_type.value == ("BUY" if expected[k] == 1 else "SELL") and f"{known[k]:.6%}" in signal.reason
    result = run_backtest(spec, prepared)
    assert len(result.trades) >= 5  # the fortnight's zone entries, traded


def test_a_strategy_reading_funding_needs_funding() -> None:
    bot = make_bot("funding_contrarian", {}, timeframe="1m")
    with pytest.raises(ConfigurationError, match="needs the database") as caught:
        load_data(BacktestSpec(bot=bot, data_file=str(CANDLES)))
    assert caught.value.field == "strategy"
    strategy = create_strategy("funding_contrarian", {})
    frame = load_data(BacktestSpec(bot=make_bot(timeframe="1m"), data_file=str(CANDLES))).data.frame()
    with pytest.raises(KeyError, match="input 'funding_rate' is not attached to these candles"):
        strategy.generate_signals(frame)
    with pytest.raises(ConfigurationError, match="low .* must be smaller than high"):
        create_strategy("funding_contrarian", {"high": 0.0001, "low": 0.0002})


def test_funding_contrarian_live_one_candle_at_a_time_equals_vectorised_on_real_candles() -> None:
    """As for every built-in (test_no_lookahead.py), with the inputs attached to each live window from what a
    live read holds (bot_manager.market_inputs: settlements from a day before the window)."""
    frame = load_candles(ONE_MINUTE)  # the same fortnight as the bundled funding history
    times, rates = settled_rates()
    history = MarketHistory(a(times, np.int64), a(rates))
    strategy = create_strategy("funding_contrarian", {"high": 0.00004, "low": -0.00002})
    full = frame.assign(**input_columns(frame["open_time"].to_numpy(), MIN, history, strategy.inputs))
    vectorised = strategy.generate_signals(full)
    assert (vectorised == 1).sum() >= 2 and (vectorised == -1).sum() >= 2, "too few signals to prove anything"

    def attach(bars: Bars) -> Bars:
        since = int(bars.open_time[0]) - FUNDING_LOOKBACK_MS
        cut = MarketHistory(*keep(history.funding_times, history.funding_rates, since))
        return bars.with_extra(input_columns(bars.open_time, MIN, cut, strategy.inputs))

    np.testing.assert_array_equal(live_codes(strategy, frame, MIN, attach), vectorised)
