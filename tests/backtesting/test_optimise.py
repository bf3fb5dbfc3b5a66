"""Grid and Optuna searches, walk-forward windows, trials stored as child runs, bot export."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from backtesting.jobs import run_inline
from backtesting.optimise import create_optimisation_run, walk_forward_windows
from backtesting.runner import Prepared, run_backtest
from backtesting.search import OptimisationSpec, score_of
from backtesting.service import BacktestRequest, BacktestService
from bot_manager.config import parse_bot_config
from config.errors import ConfigurationError
from database.engine import make_engine, make_session_factory, normalise_url, session_scope
from database.repositories.runs import RunStatus
from tests.backtesting.builders import okx_5m, write_csv
from tests.conftest import create_pg_database, drop_pg_database


@pytest.fixture
def csv_file(tmp_path: Path) -> str:
    return str(write_csv(okx_5m(4_000), tmp_path / "okx_5m.csv", "ts_ms"))


def base(csv_file: str) -> BacktestRequest:
    return BacktestRequest.model_validate({"strategy": "sma_cross", "params": {"fast": 10, "slow": 30},
                                           "data_file": csv_file, "timeframe": "5m", "symbol": "BTC-USDT-SWAP"})


def optimise_now(url: str, request: BacktestRequest, search: dict) -> int:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        run_id = create_optimisation_run(session, request.to_spec(), OptimisationSpec.model_validate(search),
                                         status=RunStatus.RUNNING)
    run_inline(factory, run_id)
    engine.dispose()
    return run_id


@pytest.mark.parametrize("workers", [1, 2])
def test_a_grid_search_stores_every_trial_and_picks_the_best(sqlite_url: str, csv_file: str, workers: int) -> None:
    grid = {"fast": [5, 10, 40], "slow": [20, 30]}  # fast=40 >= slow: invalid combinations fail
    run_id = optimise_now(sqlite_url, base(csv_file), {"method": "grid", "grid": grid, "objective": "sharpe",
                                                       "workers": workers})
    service = BacktestService(sqlite_url, local_workers=0)
    try:
        parent = service.get_run(run_id)
        trials = service.trials(run_id)
    finally:
        service.close()
    assert parent is not None and parent.status == "done", parent and parent.error
    assert len(trials) == 6 and all(t.parent_id == run_id and t.kind == "trial" for t in trials)
    assert sorted((t.params["fast"], t.params["slow"]) for t in trials) == sorted(
        (f, s) for f in grid["fast"] for s in grid["slow"])
    failed = [t for t in trials if t.status == "failed"]
    assert len(failed) == 2 and all("must be smaller than slow" in (t.error or "") for t in failed)
    scored = [t for t in trials if t.score is not None]
    best = max(scored, key=lambda t: t.score)  # type: ignore[arg-type, return-value]
    assert parent.metrics["best_params"] == {"fast": best.params["fast"], "slow": best.params["slow"]}
    assert parent.score == best.score == parent.metrics["best_score"]
    assert parent.metrics["trials"] == 6 and parent.metrics["failed_trials"] == 2
    # A trial's stored metrics are those of a plain backtest with its parameters.
    spec = base(csv_file).to_spec().with_params(dict(best.params))
    data = okx_5m(4_000)
    assert run_backtest(spec, Prepared(data, 0)).metrics["sharpe"] == pytest.approx(best.metrics["sharpe"])


def test_an_optuna_search_stays_in_the_declared_ranges(sqlite_url: str, csv_file: str) -> None:
    search = {"method": "optuna", "space": {"fast": {"low": 3, "high": 15}, "slow": {"low": 20, "high": 60,
                                                                                      "step": 5}},
              "trials": 8, "objective": "total_return", "seed": 3, "workers": 1}
    run_id = optimise_now(sqlite_url, base(csv_file), search)
    service = BacktestService(sqlite_url, local_workers=0)
    try:
        parent, trials = service.get_run(run_id), service.trials(run_id)
    finally:
        service.close()
    assert parent is not None and parent.status == "done"
    assert len(trials) == 8
    for trial in trials:
        assert 3 <= trial.params["fast"] <= 15 and trial.params["slow"] in range(20, 61, 5)
    assert parent.metrics["best_score"] == max(t.metrics["total_return"] for t in trials)


def test_walk_forward_windows_roll_or_stay_anchored() -> None:
    rolling = walk_forward_windows(100, 1_000, in_sample=400, out_of_sample=200, anchored=False)
    assert [(w.in_sample, w.out_of_sample) for w in rolling] == [
        ((100, 500), (500, 700)), ((300, 700), (700, 900))]
    anchored = walk_forward_windows(100, 1_000, in_sample=400, out_of_sample=200, anchored=True)
    assert [w.in_sample for w in anchored] == [(100, 500), (100, 700)]
    assert walk_forward_windows(0, 500, 400, 200, False) == []


def test_walk_forward_reports_each_out_of_sample_window_and_the_whole(sqlite_url: str, csv_file: str) -> None:
    search = {"method": "grid", "grid": {"fast": [5, 10], "slow": [30]}, "objective": "total_return",
              "walk_forward": {"in_sample_bars": 1_500, "out_of_sample_bars": 1_000}, "workers": 1,
              "min_trades": 0}
    run_id = optimise_now(sqlite_url, base(csv_file), search)
    service = BacktestService(sqlite_url, local_workers=0)
    try:
        parent = service.get_run(run_id)
        children = service.list_runs(parent_id=run_id, kind="out_of_sample")
    finally:
        service.close()
    assert parent is not None and parent.status == "done", parent and parent.error
    windows = parent.metrics["windows"]
    assert len(windows) == 2 == len(children)
    assert windows[0]["end_equity"] == pytest.approx(windows[1]["start_equity"])  # equity carries over
    overall = parent.metrics["overall"]
    assert overall["final_equity"] == pytest.approx(windows[1]["end_equity"])
    assert overall["trades"] == sum(w["out_of_sample"]["trades"] for w in windows)
    assert overall["total_return"] == pytest.approx(windows[1]["end_equity"] / 10_000 - 1)


def test_unknown_search_parameters_are_refused_with_a_hint(csv_file: str) -> None:
    from backtesting.search import check_names

    with pytest.raises(ConfigurationError, match="did you mean 'slow'"):
        check_names("sma_cross", ["slw"])


def test_scores_follow_the_objective() -> None:
    metrics = {"sharpe": 1.2, "max_drawdown": 0.3, "trades": 3, "profit_factor": None}
    assert score_of(metrics, OptimisationSpec.model_fields["objective"].default) == 1.2
    from backtesting.search import Objective

    assert score_of(metrics, Objective.MAX_DRAWDOWN) == -0.3
    assert score_of(metrics, Objective.PROFIT_FACTOR) is None
    assert score_of(metrics, Objective.SHARPE, min_trades=5) is None


def test_the_best_parameters_export_as_a_bot_file(sqlite_url: str, csv_file: str) -> None:
    run_id = optimise_now(sqlite_url, base(csv_file), {"method": "grid", "grid": {"fast": [5, 8]}, "workers": 1})
    service = BacktestService(sqlite_url, local_workers=0)
    try:
        best = service.get_run(run_id).metrics["best_params"]  # type: ignore[union-attr]
        bot = parse_bot_config(service.export_bot(run_id, "sma-tuned"), "export")
    finally:
        service.close()
    assert bot.params == {"fast": best["fast"], "slow": 30} and bot.name == "sma-tuned"


def test_optimisations_on_two_machines_share_one_optuna_study_on_postgresql(pg_url: str, csv_file: str) -> None:
    import optuna

    storage = create_pg_database("tcp_optuna")
    try:
        search = {"method": "optuna", "space": {"fast": {"low": 3, "high": 20}}, "trials": 3, "workers": 1,
                  "optuna_storage": storage, "study_name": "shared-sma", "seed": 1}
        with ThreadPoolExecutor(2) as machines:  # two optimisations running at the same time
            jobs = [machines.submit(optimise_now, pg_url, base(csv_file), {**search, "seed": seed})
                    for seed in (1, 2)]
            first, second = (job.result(timeout=120) for job in jobs)
        study = optuna.load_study(study_name="shared-sma", storage=normalise_url(storage))
        assert len(study.trials) == 6
        service = BacktestService(pg_url, local_workers=0)
        try:
            assert len(service.trials(first)) == len(service.trials(second)) == 3
        finally:
            service.close()
    finally:
        drop_pg_database(storage)
