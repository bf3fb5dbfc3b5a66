"""Funding settlements in backtests (issue 14.3), on the bundled real OKX BTC-USDT-SWAP 1m candles and the real
8-hourly funding history of the same fortnight (data/samples/README.md): every settlement while a position is
open is paid (long, positive rate) or received, at the settling bar's open, exactly as a hand computation says."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import numpy as np
import pytest

from backtesting.data import CandleData, read_csv_candles
from backtesting.engine import run_bars
from backtesting.funding import FundingSeries, read_funding_csv
from backtesting.runner import load_data, run_backtest
from backtesting.spec import BacktestSpec
from config.errors import ConfigurationError
from strategies.registry import create_strategy
from tests.backtesting.builders import make_bot

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
CANDLES = SAMPLES / "okx_BTC-USDT-SWAP_1m_2026-01-01_2026-01-16.csv.gz"
FUNDING = SAMPLES / "okx_BTC-USDT-SWAP_funding_rate_2026-01-01_2026-01-15.csv"
STRATEGY = create_strategy("sma_cross", {})


def hand_funding(data: CandleData, funding: FundingSeries, entry_bar: int, exit_bar: int, quantity: Decimal,
                 side: int) -> Decimal:
    """Σ over settlements with a position open: quantity x the open of the first bar at/after it x rate."""
    total = Decimal(0)
    for ts, rate in zip(funding.time_ms.tolist(), funding.rate.tolist(), strict=True):
        bar = int(np.searchsorted(data.open_time, ts))
        if entry_bar < bar <= exit_bar:  # the fill at the entry bar's open comes after a settlement there
            amount = quantity * Decimal(repr(float(data.open[bar]))) * Decimal(repr(rate))
            total += amount.quantize(Decimal("1E-8"), ROUND_HALF_EVEN) * side
    return total


@pytest.mark.parametrize("short", [False, True], ids=["long pays", "short receives"])
def test_a_held_position_settles_every_real_funding_payment_on_the_hand_computed_amounts(short: bool) -> None:
    data, funding = read_csv_candles(CANDLES), read_funding_csv(FUNDING)
    assert len(funding) == 45 and (funding.rate > 0).mean() > 0.5
    bot = make_bot(timeframe="1m", cash=100_000.0, fee=0.0005, size_fraction=0.5, allow_short=short)
    signals = np.zeros(len(data), dtype=np.int8)
    signals[100] = -1 if short else 1  # enter at bar 101's open, hold to the end of the data
    plain = run_bars(bot, STRATEGY, data, signals)
    paid = run_bars(bot, STRATEGY, data, signals, funding=funding)
    (fill,) = paid.fills
    assert [(f.quantity, f.price) for f in plain.fills] == [(fill.quantity, fill.price)]  # funding moves no fill
    last = len(data) - 1
    expected = hand_funding(data, funding, 101, last, fill.quantity, -1 if short else 1)
    settled = sum(1 for ts in funding.time_ms if data.open_time[101] < ts <= data.open_time[last])
    assert paid.events["funding_payments"] == settled == 44
    assert paid.funding_paid == pytest.approx(float(expected), abs=1e-9)
    assert (paid.funding_paid < 0) == short and abs(paid.funding_paid) > 10
    # the equity curve carries it from the settlement on: the same as without funding minus what was paid so far
    assert paid.equity[-1] == pytest.approx(plain.equity[-1] - float(expected), abs=1e-6)
    first = int(np.searchsorted(data.open_time, funding.time_ms[funding.time_ms > data.open_time[101]][0]))
    assert paid.equity[first - 1] == plain.equity[first - 1] and paid.equity[first] != plain.equity[first]


def test_a_backtest_spec_with_a_funding_file_runs_the_bar_path_and_reports_what_was_paid() -> None:
    bot = make_bot("sma_cross", {"fast": 50, "slow": 200}, timeframe="1m", symbol="BTC-USDT-SWAP", allow_short=True)
    spec = BacktestSpec(bot=bot, data_file=str(CANDLES), funding_file=str(FUNDING))
    prepared = load_data(spec)
    result = run_backtest(spec, prepared)
    assert result.path == "bar" and result.events["funding_payments"] > 0
    assert result.metrics["funding_paid"] != 0
    without = run_backtest(spec.model_copy(update={"funding_file": None}), load_data(spec.model_copy(
        update={"funding_file": None})))
    assert without.path == "vectorised" and "funding_paid" not in without.metrics
    with pytest.raises(ConfigurationError, match="vectorised path cannot run this backtest: funding settlements"):
        run_backtest(spec.model_copy(update={"path": "vectorised"}), prepared)


def test_a_bad_funding_file_names_the_file_the_row_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "funding.csv"
    bad.write_text("ts_ms,funding_rate\n1767225600000,0.0001\n1767254400000,abc\n")
    with pytest.raises(ConfigurationError, match=r"row 3: funding_rate 'abc' is not a number") as info:
        read_funding_csv(bad)
    assert str(bad) in str(info.value) and info.value.field == "funding_rate"
    bad.write_text("ts_ms,funding_rate\n1767254400000,0.0001\n1767225600000,0.0001\n")
    with pytest.raises(ConfigurationError, match="row 3: settlement times must increase"):
        read_funding_csv(bad)
    bad.write_text("ts_ms,rate\n1,0.1\n")
    with pytest.raises(ConfigurationError, match="funding_rate, got"):
        read_funding_csv(bad)
    with pytest.raises(ConfigurationError, match="no such file"):
        read_funding_csv(tmp_path / "missing.csv")


def test_funding_from_the_stored_funding_rates_equals_the_recorded_file(pg_clean: str) -> None:
    """The collector stores funding-rate reports; a backtest with ``funding_db`` charges their settlements. Stored:
    two reports of each real settlement's period (the last one carries the settled rate) and a report of the
    next period that has not settled in the data."""
    from config.domain import FundingRate
    from database.engine import make_engine, make_session_factory, session_scope
    from database.repositories.derivatives import add_derivatives

    funding = read_funding_csv(FUNDING)
    reports = []
    for ts, rate in zip(funding.time_ms.tolist(), funding.rate.tolist(), strict=True):
        reports += [FundingRate("okx", "BTC-USDT-SWAP", "BTC-USDT-SWAP", ts - 3_600_000, rate * 0.5, ts),
                    FundingRate("okx", "BTC-USDT-SWAP", "BTC-USDT-SWAP", ts - 60_000, rate, ts)]
    engine = make_engine(pg_clean)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as session:
        add_derivatives(session, reports)
    bot = make_bot("sma_cross", {"fast": 50, "slow": 200}, timeframe="1m", symbol="BTC-USDT-SWAP", allow_short=True)
    from_file = BacktestSpec(bot=bot, data_file=str(CANDLES), funding_file=str(FUNDING))
    from_db = from_file.model_copy(update={"funding_file": None, "funding_db": True})
    with session_scope(sessions) as session:
        prepared = load_data(from_db, session)
        assert prepared.funding is not None
        assert prepared.funding.time_ms.tolist() == funding.time_ms.tolist()
        assert prepared.funding.rate.tolist() == funding.rate.tolist()
        expected = run_backtest(from_file, load_data(from_file))
        got = run_backtest(from_db, prepared)
        assert got.metrics["funding_paid"] == expected.metrics["funding_paid"] != 0
        assert got.equity.tolist() == expected.equity.tolist()
        other = from_db.model_copy(update={"bot": bot.model_copy(update={"symbol": "ETH-USDT-SWAP"})})
        with pytest.raises(ConfigurationError, match="no funding rates stored for okx ETH-USDT-SWAP"):
            load_data(other, session)
    engine.dispose()


def test_optimisation_trials_charge_the_funding_of_their_spec_in_this_process_and_in_workers() -> None:
    from backtesting.search import TrialPool, evaluate

    bot = make_bot("sma_cross", {"fast": 50, "slow": 200}, timeframe="1m", symbol="BTC-USDT-SWAP", allow_short=True)
    spec = BacktestSpec(bot=bot, data_file=str(CANDLES), funding_file=str(FUNDING))
    prepared = load_data(spec)
    window = (300, len(prepared.data))
    direct = run_backtest(spec, prepared.__class__(prepared.data, 300, prepared.funding))
    assert direct.metrics["funding_paid"] != 0
    trial = evaluate({}, window, spec, prepared.data, prepared.funding)
    assert trial.error is None and trial.metrics["funding_paid"] == direct.metrics["funding_paid"]  # type: ignore[index]
    got = []
    with TrialPool(spec, prepared.data, 2, prepared.funding) as pool:
        pool.run(iter([({"fast": 50}, window)]), lambda t: got.append(t) is not None)
    assert got[0].error is None and got[0].metrics["funding_paid"] == direct.metrics["funding_paid"]  # type: ignore[index]
