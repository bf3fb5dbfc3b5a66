"""Optimisation runs: grid or Optuna search, optionally walk-forward, every trial stored as a child
run (``kind='trial'``, ``parent_id`` = the optimisation), out-of-sample windows as ``out_of_sample``
children with their trades. The parent's metrics hold the best parameters and, for walk-forward,
the per-window and overall out-of-sample results.

With ``optuna_storage`` (an RDB URL, e.g. PostgreSQL) and a ``study_name``, optimisations started
on several machines add their trials to one Optuna study.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from backtesting.data import CandleData
from backtesting.engine import RunCancelled
from backtesting.jobs import ProgressReporter
from backtesting.metrics import compute_metrics
from backtesting.result import TradeTable, downsample_curve
from backtesting.runner import Prepared, load_data, run_backtest
from backtesting.search import (
    OptimisationSpec,
    Trial,
    TrialPool,
    check_names,
    grid_points,
    optuna_distributions,
    score_of,
)
from backtesting.spec import BacktestSpec
from backtesting.storage import create_backtest_run, spec_of, store_result
from config.errors import ConfigurationError
from database.engine import normalise_url, session_scope
from database.repositories import runs
from database.repositories.runs import RunStatus


def create_optimisation_run(session: Session, base: BacktestSpec, search: OptimisationSpec,
                            name: str | None = None, status: RunStatus = RunStatus.QUEUED) -> int:
    """A queued optimisation run (the parent of its trials)."""
    check_names(base.strategy, [*search.grid, *search.space])
    method = "walk_forward" if search.walk_forward else search.method
    return create_backtest_run(session, base, kind="optimisation", name=name, status=status,
                               extra_settings={"search": search.model_dump(mode="json"), "method": method})


@dataclass
class _Best:
    score: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None
    trials: int = 0
    failed: int = 0

    def offer(self, trial: Trial, score: float | None, run_id: int) -> None:
        self.trials += 1
        if trial.metrics is None:
            self.failed += 1
        if score is not None and (self.score is None or score > self.score):
            self.score, self.params, self.metrics, self.run_id = score, trial.params, trial.metrics or {}, run_id

    def summary(self) -> dict[str, Any]:
        return {"best_score": self.score, "best_params": self.params, "best_run_id": self.run_id,
                "best_metrics": self.metrics, "trials": self.trials, "failed_trials": self.failed}


STORE_BATCH = 200
STORE_SECONDS = 0.5


class _Optimisation:
    """One optimisation run being executed (inside a worker or the CLI)."""

    def __init__(self, factory: sessionmaker[Session], run_id: int) -> None:
        self.factory = factory
        self.run_id = run_id
        with session_scope(factory) as session:
            run = runs.get_run(session, run_id)
            assert run is not None
            self.base = spec_of(run)
            self.search = OptimisationSpec.model_validate(run.settings["search"])
            self.prepared = load_data(self.base, session)
        self.declared = check_names(self.base.strategy, [*self.search.grid, *self.search.space])
        self.progress = ProgressReporter(factory, run_id)
        self._pending: list[tuple[Trial, float | None, dict[str, Any] | None]] = []
        self._stored_at = time.monotonic()

    @property
    def data(self) -> CandleData:
        return self.prepared.data

    def execute(self) -> None:
        with TrialPool(self.base, self.data, self.search.pool_size, self.prepared.funding) as pool:
            if self.search.walk_forward is None:
                best = self.optimise(pool, (self.prepared.trade_start, len(self.data)), 0.0, 1.0)
                metrics = {"method": self.search.method, "objective": self.search.objective.value,
                           **best.summary()}
            else:
                best, metrics = self.walk_forward(pool)
        with session_scope(self.factory) as session:
            runs.finish_run(session, self.run_id, metrics=metrics, score=best.score)

    # -- one search over one window -------------------------------------------------------------
    def optimise(self, pool: TrialPool, window: tuple[int, int], done: float, share: float,
                 label: dict[str, Any] | None = None) -> _Best:
        best = _Best()
        if self.search.method == "grid":
            points = grid_points(self.search.grid)
            total = len(points)
            tasks: Iterator[tuple[dict[str, Any], tuple[int, int]]] = ((p, window) for p in points)
            pool.run(tasks, lambda t: self._record(t, best, total, done, share, label))
        else:
            self._optuna(pool, window, best, done, share, label)
        self._store(best)
        if self.progress.cancelled:
            raise RunCancelled(f"optimisation {self.run_id} cancelled after {best.trials} trials")
        return best

    def _record(self, trial: Trial, best: _Best, total: int, done: float, share: float,
                label: dict[str, Any] | None) -> bool:
        """Keep a finished trial; store the kept ones in one transaction every half second."""
        score = None if trial.metrics is None else score_of(trial.metrics, self.search.objective,
                                                            self.search.min_trades)
        self._pending.append((trial, score, label))
        if len(self._pending) < STORE_BATCH and time.monotonic() - self._stored_at < STORE_SECONDS:
            return False
        self._store(best)
        return self.progress(done + share * best.trials / total)

    def _store(self, best: _Best) -> None:
        if not self._pending:
            return
        stored = []
        with session_scope(self.factory) as session:
            for trial, score, label in self._pending:
                spec = self.base.with_params({**self.base.params, **trial.params})
                status = RunStatus.DONE if trial.metrics is not None else RunStatus.FAILED
                extra = {"window": list(trial.window), **(label or {})}
                trial_id = create_backtest_run(session, spec, kind="trial", parent_id=self.run_id, status=status,
                                               extra_settings=extra)
                if trial.metrics is not None:
                    runs.finish_run(session, trial_id, metrics=trial.metrics, score=score)
                else:
                    runs.fail_run(session, trial_id, trial.error or "failed")
                stored.append((trial, score, trial_id))
        for trial, score, trial_id in stored:
            best.offer(trial, score, trial_id)
        self._pending.clear()
        self._stored_at = time.monotonic()

    def _optuna(self, pool: TrialPool, window: tuple[int, int], best: _Best, done: float, share: float,
                label: dict[str, Any] | None) -> None:
        import optuna
        from optuna.trial import TrialState

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        search = self.search
        name = search.study_name or f"tcp-run-{self.run_id}"
        if label:
            name += f"-w{label['window_index']}"
        study = _open_study(name, search.optuna_storage, search.seed)
        distributions = optuna_distributions(search.space, self.declared)
        asked: dict[tuple[tuple[str, Any], ...], list[Any]] = {}

        def tasks() -> Iterator[tuple[dict[str, Any], tuple[int, int]]]:
            for _ in range(search.trials):
                trial = study.ask(distributions)
                asked.setdefault(tuple(sorted(trial.params.items())), []).append(trial)
                yield dict(trial.params), window

        def on_result(result: Trial) -> bool:
            trial = asked[tuple(sorted(result.params.items()))].pop(0)
            stop = self._record(result, best, search.trials, done, share, label)
            score = None if result.metrics is None else score_of(result.metrics, search.objective,
                                                                 search.min_trades)
            if score is None:
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, score)
            return stop

        pool.run(tasks(), on_result)

    # -- walk-forward -------------------------------------------------------------------------
    def walk_forward(self, pool: TrialPool) -> tuple[_Best, dict[str, Any]]:
        plan = self.search.walk_forward
        assert plan is not None
        windows = walk_forward_windows(self.prepared.trade_start, len(self.data), plan.in_sample_bars,
                                       plan.out_of_sample_bars, plan.anchored)
        if not windows:
            raise ConfigurationError(
                f"walk-forward needs {plan.in_sample_bars + plan.out_of_sample_bars} bars after the warm-up; "
                f"the period has {len(self.data) - self.prepared.trade_start}", field="walk_forward")
        cash = float(self.base.bot.starting_balance)
        summaries: list[dict[str, Any]] = []
        pieces: list[tuple[np.ndarray, np.ndarray, TradeTable, int]] = []
        last = _Best()
        for index, window in enumerate(windows):
            share = 1.0 / len(windows)
            label = {"window_index": index, "sample": "in"}
            best = self.optimise(pool, window.in_sample, index * share, share, label)
            summary: dict[str, Any] = {"window": index, **window.as_json(self.data), "best_params": best.params,
                                       "in_sample_score": best.score}
            if best.score is not None and cash > 0:
                result, oos_id = self._out_of_sample(window, best.params, cash, index)
                summary |= {"out_of_sample_run_id": oos_id, "out_of_sample": _window_metrics(result.metrics),
                            "start_equity": cash, "end_equity": result.final_equity}
                start = window.out_of_sample[0]
                pieces.append((result.equity, result.position, result.trades, start))
                cash = result.final_equity
            summaries.append(summary)
            last = best
        overall = self._overall(pieces)
        return last, {"method": "walk_forward", "objective": self.search.objective.value,
                      "anchored": plan.anchored, "windows": summaries, "overall": overall,
                      "best_params": last.params, "best_score": last.score}

    def _out_of_sample(self, window: Window, params: dict[str, Any], cash: float,
                       index: int) -> tuple[Any, int]:
        bot = self.base.bot.model_copy(update={"starting_balance": Decimal(repr(round(cash, 2)))})
        spec = self.base.model_copy(update={"bot": bot, "close_at_end": True, "path": "auto"}).with_params(
            {**self.base.params, **params})
        start, end = window.out_of_sample
        prepared = Prepared(self.data.slice(0, end), start, self.prepared.funding)
        result = run_backtest(spec, prepared)
        with session_scope(self.factory) as session:
            oos_id = create_backtest_run(session, spec, kind="out_of_sample", parent_id=self.run_id,
                                         status=RunStatus.RUNNING,
                                         extra_settings={"window": [start, end], "window_index": index})
            store_result(session, oos_id, result, prepared.data)
        return result, oos_id

    def _overall(self, pieces: list[tuple[np.ndarray, np.ndarray, TradeTable, int]]) -> dict[str, Any]:
        if not pieces:
            return {}
        equity = np.concatenate([p[0] for p in pieces])
        position = np.concatenate([p[1] for p in pieces])
        first = pieces[0][3]
        close = self.data.close[first:first + equity.size]
        trades = concat_trades([p[2] for p in pieces])
        metrics = compute_metrics(equity=equity, position=position, close=close, trades=trades,
                                  initial_cash=float(self.base.bot.starting_balance), bar_ms=self.data.bar_ms)
        times = self.data.open_time[first:first + equity.size]
        return {**_window_metrics(metrics), "equity_curve": downsample_curve(times, equity, 500)}


def _open_study(name: str, storage_url: str | None, seed: int | None) -> Any:
    """Create or join an Optuna study. Two machines creating the same fresh storage at once race on
    Optuna's own tables; the loser retries and then finds them."""
    import optuna
    from sqlalchemy.exc import DBAPIError

    attempt = 0
    while True:
        try:
            storage = None if storage_url is None else optuna.storages.RDBStorage(normalise_url(storage_url))
            return optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                       sampler=optuna.samplers.TPESampler(seed=seed), load_if_exists=True)
        except DBAPIError:
            attempt += 1
            if attempt == 5:
                raise
            time.sleep(0.2 * attempt)


@dataclass(frozen=True, slots=True)
class Window:
    in_sample: tuple[int, int]
    out_of_sample: tuple[int, int]

    def as_json(self, data: CandleData) -> dict[str, Any]:
        t = data.open_time
        return {"in_sample_start_ms": int(t[self.in_sample[0]]), "in_sample_end_ms": int(t[self.in_sample[1] - 1]),
                "out_of_sample_start_ms": int(t[self.out_of_sample[0]]),
                "out_of_sample_end_ms": int(t[self.out_of_sample[1] - 1])}


def walk_forward_windows(first: int, n: int, in_sample: int, out_of_sample: int, anchored: bool) -> list[Window]:
    """Consecutive out-of-sample windows of ``out_of_sample`` bars, each after ``in_sample`` bars of
    optimisation (anchored: the in-sample part always starts at ``first``)."""
    windows = []
    start = first
    while start + in_sample + out_of_sample <= n:
        oos = start + in_sample
        windows.append(Window((first if anchored else start, oos), (oos, oos + out_of_sample)))
        start += out_of_sample
    return windows


def concat_trades(tables: list[TradeTable]) -> TradeTable:
    if not tables:
        return TradeTable.empty()

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(t, name) for t in tables])

    return TradeTable(
        side=joined("side"), entry_bar=joined("entry_bar"), exit_bar=joined("exit_bar"),
        entry_time=joined("entry_time"), exit_time=joined("exit_time"), entry_price=joined("entry_price"),
        exit_price=joined("exit_price"), size=joined("size"), fees=joined("fees"), pnl=joined("pnl"),
        exit_reason=tuple(r for t in tables for r in t.exit_reason))


_WINDOW_KEYS = ("total_return", "annualised_return", "sharpe", "sortino", "calmar", "max_drawdown", "trades",
                "win_rate", "profit_factor", "final_equity", "buy_and_hold_return", "fees_paid")


def _window_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {key: metrics.get(key) for key in _WINDOW_KEYS}


def execute_optimisation(factory: sessionmaker[Session], run_id: int) -> None:
    """Run a claimed optimisation to its end (called by :mod:`backtesting.jobs`)."""
    _Optimisation(factory, run_id).execute()
