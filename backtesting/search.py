"""Parameter search: what to optimise (:class:`OptimisationSpec`), the objective, the candidate
parameters (grid or Optuna) and the process pool that evaluates trials on all cores.

Pure of the database: :mod:`backtesting.optimise` stores what the search produces.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backtesting.data import CandleData
from backtesting.funding import FundingSeries
from backtesting.processes import process_context
from backtesting.runner import Prepared, run_backtest
from backtesting.spec import BacktestSpec
from config.errors import ConfigurationError, StrategyError
from strategies.params import Param, ParamValue, did_you_mean
from strategies.registry import get_strategy_class


class Objective(StrEnum):
    """What a search maximises (``max_drawdown`` is minimised)."""

    SHARPE = "sharpe"
    SORTINO = "sortino"
    CALMAR = "calmar"
    TOTAL_RETURN = "total_return"
    ANNUALISED_RETURN = "annualised_return"
    PROFIT_FACTOR = "profit_factor"
    WIN_RATE = "win_rate"
    EXPECTANCY = "expectancy"
    FINAL_EQUITY = "final_equity"
    MAX_DRAWDOWN = "max_drawdown"


def score_of(metrics: dict[str, Any], objective: Objective, min_trades: int = 0) -> float | None:
    """The objective's value (higher is better); None when undefined or below ``min_trades``."""
    if int(metrics.get("trades") or 0) < min_trades:
        return None
    value = metrics.get(objective.value)
    if value is None or not math.isfinite(float(value)):
        return None
    return -float(value) if objective is Objective.MAX_DRAWDOWN else float(value)


class Dimension(BaseModel):
    """An Optuna search dimension: ``low``..``high`` (optionally ``step``, ``log``) or ``choices``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: float | None = None
    high: float | None = None
    step: float | None = Field(default=None, gt=0)
    log: bool = False
    choices: list[ParamValue] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Dimension:
        if self.choices is None and (self.low is None or self.high is None or self.low > self.high):
            raise ValueError(f"expected low <= high or choices, got low={self.low} high={self.high}")
        return self


class WalkForward(BaseModel):
    """Rolling (or ``anchored``) in-sample / out-of-sample windows, in bars of the traded period."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    in_sample_bars: int = Field(ge=10)
    out_of_sample_bars: int = Field(ge=2)
    anchored: bool = False


class OptimisationSpec(BaseModel):
    """How to search a strategy's parameters (stored with the optimisation run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["grid", "optuna"] = "grid"
    grid: dict[str, list[ParamValue]] = Field(default_factory=dict)
    space: dict[str, Dimension] = Field(default_factory=dict)
    trials: int = Field(default=50, ge=1, le=100_000)
    objective: Objective = Objective.SHARPE
    min_trades: int = Field(default=1, ge=0)
    workers: int | None = Field(default=None, ge=1)
    seed: int | None = None
    optuna_storage: str | None = None
    study_name: str | None = None
    walk_forward: WalkForward | None = None

    @model_validator(mode="after")
    def _has_dimensions(self) -> OptimisationSpec:
        if self.method == "grid" and not self.grid:
            raise ValueError("a grid search needs at least one parameter with values")
        if self.method == "optuna" and not self.space:
            raise ValueError("an Optuna search needs at least one parameter range")
        return self

    @property
    def pool_size(self) -> int:
        return self.workers or os.cpu_count() or 1


def check_names(strategy: str, names: Sequence[str]) -> dict[str, Param]:
    """The strategy's parameter declarations; unknown names raise with a "did you mean" hint."""
    spec = get_strategy_class(strategy).params_spec
    for name in names:
        if name not in spec:
            raise ConfigurationError(f"unknown parameter {name!r};{did_you_mean(name, list(spec))} "
                                     f"{strategy} has {', '.join(spec) or 'no parameters'}", field=name)
    return spec


def grid_points(grid: dict[str, list[ParamValue]]) -> list[dict[str, ParamValue]]:
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))]


def optuna_distributions(space: dict[str, Dimension], declared: dict[str, Param]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.choices is not None:
            out[name] = CategoricalDistribution(dim.choices)
        elif declared[name].type is int:
            out[name] = IntDistribution(int(dim.low or 0), int(dim.high or 0), step=int(dim.step or 1), log=dim.log)
        else:
            out[name] = FloatDistribution(float(dim.low or 0), float(dim.high or 0), step=dim.step, log=dim.log)
    return out


# --------------------------------------------------------------------------- trial evaluation

@dataclass(frozen=True, slots=True)
class Trial:
    """What one parameter set scored on one window (``error`` when it could not run)."""

    params: dict[str, ParamValue]
    metrics: dict[str, Any] | None
    error: str | None
    window: tuple[int, int]


_WORKER: dict[str, Any] = {}


def _init_worker(spec_json: dict[str, Any], arrays: tuple[Any, ...], source: str,
                 extra: dict[str, Any] | None = None, funding: FundingSeries | None = None) -> None:
    open_time, open_, high, low, close, volume = arrays
    _WORKER["spec"] = BacktestSpec.from_json(spec_json)
    _WORKER["data"] = CandleData(open_time, open_, high, low, close, volume, source, extra or {})
    _WORKER["funding"] = funding


def evaluate(params: dict[str, ParamValue], window: tuple[int, int], spec: BacktestSpec | None = None,
             data: CandleData | None = None, funding: FundingSeries | None = None) -> Trial:
    """Backtest ``params`` trading bars ``[window[0], window[1])`` (earlier bars warm up), charging ``funding``
    settlements when the spec has them."""
    if spec is None:
        spec, data, funding = _WORKER["spec"], _WORKER["data"], _WORKER.get("funding")
    assert data is not None
    start, end = window
    try:
        result = run_backtest(spec.with_params({**spec.params, **params}),
                              Prepared(data.slice(0, end), start, funding))
    except (ConfigurationError, StrategyError) as exc:
        return Trial(params, None, str(exc), window)
    return Trial(params, result.metrics, None, window)


class TrialPool:
    """Evaluates trials on ``size`` processes (in this process when ``size`` is 1)."""

    def __init__(self, spec: BacktestSpec, data: CandleData, size: int, funding: FundingSeries | None = None) -> None:
        self.spec = spec
        self.data = data
        self.funding = funding
        self.size = max(1, size)
        self._executor: ProcessPoolExecutor | None = None
        if self.size > 1:
            arrays = (data.open_time, data.open, data.high, data.low, data.close, data.volume)
            self._executor = ProcessPoolExecutor(
                max_workers=self.size, mp_context=process_context(),
                initializer=_init_worker, initargs=(spec.to_json(), arrays, data.source, dict(data.extra), funding))

    def run(self, tasks: Iterator[tuple[dict[str, ParamValue], tuple[int, int]]],
            on_result: Callable[[Trial], bool]) -> None:
        """Evaluate ``tasks``; ``on_result`` gets each trial and returns True to stop early."""
        if self._executor is None:
            for params, window in tasks:
                if on_result(evaluate(params, window, self.spec, self.data, self.funding)):
                    return
            return
        pending: set[Future[Trial]] = set()
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < 2 * self.size:
                task = next(tasks, None)
                if task is None:
                    exhausted = True
                    break
                pending.add(self._executor.submit(evaluate, *task))
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                if on_result(future.result()):
                    for other in pending:
                        other.cancel()
                    return

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> TrialPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
