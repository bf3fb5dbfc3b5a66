"""The dashboard's API: submit returns at once, a worker runs the job, results are stored apart
from live trading and a run can be reproduced from what is stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtesting.jobs import execute_run
from backtesting.runner import load_data, run_backtest
from backtesting.service import BacktestRequest, BacktestService
from backtesting.storage import create_backtest_run, spec_of
from bot_manager.config import parse_bot_config
from database.engine import make_engine, make_session_factory, session_scope
from database.models import Fill, Position
from database.repositories import runs
from tests.backtesting.builders import okx_5m, write_csv


@pytest.fixture
def csv_file(tmp_path: Path) -> str:
    return str(write_csv(okx_5m(6_000), tmp_path / "okx_5m.csv", "ts_ms"))


def request(csv_file: str, **changes: object) -> BacktestRequest:
    values = {"strategy": "sma_cross", "params": {"fast": 10, "slow": 30}, "data_file": csv_file,
              "timeframe": "5m", "symbol": "BTC-USDT-SWAP", "allow_short": True, **changes}
    return BacktestRequest.model_validate(values)


def test_a_submitted_backtest_is_run_by_the_worker_and_stored(db_url: str, csv_file: str) -> None:
    service = BacktestService(db_url, local_workers=1, poll_seconds=0.2)
    try:
        run_id = service.submit_backtest(request(csv_file))
        queued = service.get_run(run_id)
        assert queued is not None and queued.status in ("queued", "running")
        done = service.wait(run_id, timeout=120)
        assert done.status == "done", done.error
        trades = service.run_trades(run_id)
        assert len(trades) == done.metrics["trades"] + done.metrics["open_trades"] > 50
        assert {"side", "entry_time", "exit_time", "entry_price", "exit_price", "size", "fees", "pnl"} <= set(trades[0])
        curve = service.run_equity(run_id)
        assert len(curve["t"]) == len(curve["equity"]) > 1000
        assert curve["equity"][-1] == pytest.approx(done.metrics["final_equity"])
        assert len(service.run_signals(run_id)) >= len(trades)
        assert [v.id for v in service.list_runs(status="done")] == [run_id]
        (row,) = service.compare_runs([run_id])
        assert row["sharpe"] == done.metrics["sharpe"] and row["params"] == {"fast": 10, "slow": 30}
    finally:
        service.close()
    engine = make_engine(db_url)
    with session_scope(make_session_factory(engine)) as session:  # live trading tables untouched
        assert session.query(Fill).count() == 0 and session.query(Position).count() == 0
    engine.dispose()


def test_a_stored_run_reproduces_the_same_trades_on_the_same_data(sqlite_url: str, csv_file: str) -> None:
    service = BacktestService(sqlite_url, local_workers=1, poll_seconds=0.2)
    try:
        first = service.submit_backtest(request(csv_file, fee=0.0007, slippage_bps=2.0))
        assert service.wait(first, timeout=120).status == "done"
        second = service.rerun(first)
        assert service.wait(second, timeout=120).status == "done"
        original, again = service.run_trades(first), service.run_trades(second)
        assert original == again and len(original) > 50
        a, b = service.get_run(first), service.get_run(second)
        assert a is not None and b is not None
        assert a.settings["data_fingerprint"] == b.settings["data_fingerprint"]
        assert a.metrics == b.metrics
    finally:
        service.close()
    # The stored spec alone rebuilds the run in this process too.
    engine = make_engine(sqlite_url)
    with session_scope(make_session_factory(engine)) as session:
        spec = spec_of(runs.get_run(session, first))  # type: ignore[arg-type]
    engine.dispose()
    result = run_backtest(spec, load_data(spec))
    assert [round(t.pnl, 6) for t in result.trades.records()] == [round(t["pnl"], 6) for t in original]


def test_cancelling_a_queued_run_means_it_never_runs(sqlite_url: str, csv_file: str) -> None:
    service = BacktestService(sqlite_url, local_workers=0)
    try:
        run_id = service.submit_backtest(request(csv_file))
        assert service.cancel_run(run_id) == "cancelled"
        assert service.get_run(run_id).status == "cancelled"  # type: ignore[union-attr]
    finally:
        service.close()


def test_a_running_job_stops_when_cancelled(db_url: str, csv_file: str) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        run_id = create_backtest_run(session, request(csv_file).to_spec())
    with session_scope(factory) as session:
        runs.claim_next_run(session, "test-worker", ["backtest"])
        runs.request_cancel(session, run_id)
    execute_run(db_url, run_id)
    with session_scope(factory) as session:
        run = runs.get_run(session, run_id)
        assert run is not None and run.status == "cancelled" and runs.get_trades(session, run_id) == []
    engine.dispose()


def test_a_failing_job_records_the_reason(sqlite_url: str, csv_file: str) -> None:
    service = BacktestService(sqlite_url, local_workers=1, poll_seconds=0.2)
    try:
        run_id = service.submit_backtest(request(csv_file))
        Path(csv_file).unlink()  # the worker will not find the data any more
        failed = service.wait(run_id, timeout=60)
        assert failed.status == "failed" and "no such file" in (failed.error or "")
    finally:
        service.close()


def test_bad_requests_are_refused_before_anything_is_queued(sqlite_url: str, csv_file: str) -> None:
    from config.errors import ConfigurationError

    service = BacktestService(sqlite_url, local_workers=0)
    try:
        with pytest.raises(ConfigurationError, match="did you mean 'sma_cross'"):
            service.submit_backtest(request(csv_file, strategy="sma_crosss"))
        with pytest.raises(ConfigurationError, match="fast"):
            service.submit_backtest(request(csv_file, params={"fast": 50, "slow": 30}))
        assert service.list_runs() == []
    finally:
        service.close()


def test_a_run_exports_as_a_bot_file_that_loads(sqlite_url: str, csv_file: str) -> None:
    service = BacktestService(sqlite_url, local_workers=0)
    try:
        run_id = service.submit_backtest(request(csv_file, params={"fast": 12, "slow": 40}))
        bot = parse_bot_config(service.export_bot(run_id, "sma-best"), "exported")
    finally:
        service.close()
    assert (bot.name, bot.strategy, bot.params) == ("sma-best", "sma_cross", {"fast": 12, "slow": 40})
    assert bot.allow_short and float(bot.fees.taker_pct) == pytest.approx(0.1)
    assert np.isclose(float(bot.starting_balance), 10_000)
