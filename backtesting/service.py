"""The API the dashboard (and the CLI) use for backtests: submit, watch, cancel, read results.

Submitting only writes a ``queued`` run and returns its id; a worker executes it (by default a
worker thread started in this process, plus any ``python main.py worker`` processes that reach the
same database). Nothing here runs a backtest inside the caller's thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backtesting.jobs import Worker
from backtesting.optimise import create_optimisation_run
from backtesting.search import OptimisationSpec
from backtesting.spec import BacktestSpec, Path_, build_bot_config, export_bot
from backtesting.storage import create_backtest_run, spec_of
from bot_manager.config import BotConfig
from config.domain import Timeframe, datetime_to_ms
from config.errors import ConfigurationError
from database.engine import make_engine, make_session_factory, session_scope
from database.models import StrategyRun
from database.repositories import runs
from database.repositories.runs import FINISHED, RunStatus


class BacktestRequest(BaseModel):
    """A backtest as the dashboard or CLI asks for it. ``bot`` (a full bot configuration) replaces
    the account options (cash, fee, …) when given; its strategy and params are then overridden by
    ``strategy`` / ``params`` only if those are set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str | None = None
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)
    exchange: str = "okx"
    symbol: str | None = None
    timeframe: Timeframe = Timeframe.M1
    start: datetime | None = None
    end: datetime | None = None
    data_file: str | None = None
    funding_file: str | None = None
    funding_db: bool = False
    cash: float = Field(default=10_000.0, gt=0)
    fee: float = Field(default=0.001, ge=0, lt=0.05)
    slippage_bps: float = Field(default=0.0, ge=0)
    size_fraction: float = Field(default=1.0, gt=0)
    size_at: Literal["signal_close", "fill"] = "signal_close"
    allow_short: bool = False
    leverage: float = Field(default=1.0, ge=1)
    stop_loss_pct: float | None = None
    take_profit_pct: float | None = None
    trailing_stop_pct: float | None = None
    bot: BotConfig | None = None
    close_at_end: bool = False
    path: Path_ = "auto"
    name: str | None = None

    def to_spec(self) -> BacktestSpec:
        if self.data_file is None and (self.symbol is None and self.bot is None):
            raise ConfigurationError("name a symbol (stored candles) or a data file", field="symbol")
        if self.bot is not None:
            update: dict[str, Any] = {}
            if self.strategy:
                update["strategy"] = self.strategy
            if self.params or self.strategy:
                update["params"] = dict(self.params)
            bot = self.bot.model_copy(update=update)
        else:
            if not self.strategy:
                raise ConfigurationError("name a strategy", field="strategy")
            bot = build_bot_config(
                self.strategy, dict(self.params), symbol=self.symbol, timeframe=self.timeframe,
                exchange=self.exchange, cash=self.cash, fee=self.fee, slippage_bps=self.slippage_bps,
                size_fraction=self.size_fraction, size_at=self.size_at, allow_short=self.allow_short,
                leverage=self.leverage,
                stop_loss_pct=self.stop_loss_pct, take_profit_pct=self.take_profit_pct,
                trailing_stop_pct=self.trailing_stop_pct)
        from strategies.registry import create_strategy

        create_strategy(bot.strategy, bot.params)  # unknown names and bad values fail now, not in a worker
        return BacktestSpec.model_validate({
            "bot": bot, "data_file": self.data_file, "funding_file": self.funding_file, "funding_db": self.funding_db,
            "close_at_end": self.close_at_end, "path": self.path,
            "start_ms": None if self.start is None else datetime_to_ms(self.start),
            "end_ms": None if self.end is None else datetime_to_ms(self.end),
        })


@dataclass(frozen=True, slots=True)
class RunView:
    """A run as the dashboard shows it."""

    id: int
    parent_id: int | None
    kind: str
    name: str | None
    status: str
    progress: float
    strategy: str
    params: dict[str, Any]
    exchange: str | None
    symbol: str | None
    timeframe: str | None
    start_time: datetime | None
    end_time: datetime | None
    data_source: str | None
    error: str | None
    metrics: dict[str, Any]
    score: float | None
    settings: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @classmethod
    def of(cls, run: StrategyRun) -> RunView:
        return cls(run.id, run.parent_id, run.kind, run.name, run.status, run.progress, run.strategy,
                   dict(run.params), run.exchange, run.symbol, run.timeframe, run.start_time, run.end_time,
                   run.data_source, run.error, dict(run.metrics), run.score, dict(run.settings), run.created_at,
                   run.started_at, run.finished_at)


COMPARE_KEYS = ("total_return", "annualised_return", "sharpe", "sortino", "calmar", "max_drawdown",
                "win_rate", "profit_factor", "trades", "fees_paid", "buy_and_hold_return", "final_equity")


class BacktestService:
    """Backtests and optimisations on one database. ``local_workers`` job slots run in this process
    (0: leave everything to ``python main.py worker`` processes)."""

    def __init__(self, database_url: str, *, local_workers: int = 1, poll_seconds: float = 1.0) -> None:
        self.database_url = database_url
        self._engine = make_engine(database_url)
        self._factory = make_session_factory(self._engine)
        self._worker: Worker | None = None
        if local_workers > 0:
            self._worker = Worker(database_url, max_jobs=local_workers, poll_seconds=poll_seconds)
            self._worker.start()

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
        self._engine.dispose()

    # -- submitting ---------------------------------------------------------------------------
    def submit_backtest(self, request: BacktestRequest | dict[str, Any]) -> int:
        """Queue a backtest; returns its run id at once."""
        spec = _request(request).to_spec()
        with session_scope(self._factory) as session:
            run_id = create_backtest_run(session, spec, name=_request(request).name)
        self._wake()
        return run_id

    def submit_optimisation(self, request: BacktestRequest | dict[str, Any],
                            search: OptimisationSpec | dict[str, Any]) -> int:
        """Queue an optimisation (grid / Optuna, optionally walk-forward); returns its run id."""
        base = _request(request).to_spec()
        plan = search if isinstance(search, OptimisationSpec) else OptimisationSpec.model_validate(search)
        with session_scope(self._factory) as session:
            run_id = create_optimisation_run(session, base, plan, name=_request(request).name)
        self._wake()
        return run_id

    def rerun(self, run_id: int) -> int:
        """Queue a new backtest with exactly the stored spec of ``run_id``."""
        with session_scope(self._factory) as session:
            spec = spec_of(self._get(session, run_id))
            new_id = create_backtest_run(session, spec, name=f"re-run of {run_id}")
        self._wake()
        return new_id

    def _wake(self) -> None:
        if self._worker is not None:
            self._worker.wake()

    # -- reading ------------------------------------------------------------------------------
    def get_run(self, run_id: int) -> RunView | None:
        with session_scope(self._factory) as session:
            run = runs.get_run(session, run_id)
            return None if run is None else RunView.of(run)

    def list_runs(self, *, status: str | None = None, kind: str | list[str] | None = None,
                  strategy: str | None = None, symbol: str | None = None, parent_id: int | None = None,
                  top_level: bool = True, order_by_score: bool = False, limit: int = 100,
                  offset: int = 0) -> list[RunView]:
        """Runs newest first; by default only top-level ones (not trials or out-of-sample windows)."""
        with session_scope(self._factory) as session:
            rows = runs.list_runs(session, status=status, kind=kind, strategy=strategy, symbol=symbol,
                                  parent_id=parent_id, top_level=top_level and parent_id is None,
                                  order_by_score=order_by_score, limit=limit, offset=offset)
            return [RunView.of(r) for r in rows]

    def trials(self, run_id: int, limit: int = 1000) -> list[RunView]:
        """An optimisation's trials, best score first."""
        return self.list_runs(parent_id=run_id, kind="trial", order_by_score=True, limit=limit)

    def cancel_run(self, run_id: int) -> str:
        """Cancel a queued run at once or ask a running one to stop; returns the status after."""
        with session_scope(self._factory) as session:
            return runs.request_cancel(session, run_id).value

    def run_trades(self, run_id: int) -> list[dict[str, Any]]:
        with session_scope(self._factory) as session:
            return [{
                "side": t.side, "entry_time": t.entry_time, "exit_time": t.exit_time,
                "entry_price": t.entry_price, "exit_price": t.exit_price, "size": t.quantity, "fees": t.fees,
                "pnl": t.pnl, "return_pct": t.return_pct, "exit_reason": t.exit_reason,
                "entry_bar": t.entry_bar, "exit_bar": t.exit_bar,
            } for t in runs.get_trades(session, run_id)]

    def run_signals(self, run_id: int) -> list[dict[str, Any]]:
        with session_scope(self._factory) as session:
            return [{"candle_time": s.candle_time, "signal_type": s.signal_type, "price": s.price}
                    for s in runs.get_signals(session, run_id)]

    def run_equity(self, run_id: int) -> dict[str, list[Any]]:
        """The stored equity curve: ``{"t": [open time ms…], "equity": […]}`` (downsampled)."""
        with session_scope(self._factory) as session:
            return dict(self._get(session, run_id).equity_curve)

    def compare_runs(self, run_ids: list[int]) -> list[dict[str, Any]]:
        """One row per run: what it ran and its headline metrics, plus its equity curve."""
        rows = []
        with session_scope(self._factory) as session:
            for run_id in run_ids:
                run = self._get(session, run_id)
                rows.append({
                    "id": run.id, "kind": run.kind, "status": run.status, "strategy": run.strategy,
                    "params": dict(run.params), "symbol": run.symbol, "timeframe": run.timeframe,
                    "start_time": run.start_time, "end_time": run.end_time,
                    **{key: run.metrics.get(key) for key in COMPARE_KEYS},
                    "equity_curve": dict(run.equity_curve),
                })
        return rows

    def export_bot(self, run_id: int, name: str) -> dict[str, Any]:
        """A bot file (JSON object) with the run's parameters, or an optimisation's best ones."""
        with session_scope(self._factory) as session:
            run = self._get(session, run_id)
            spec = spec_of(run)
            params = dict(run.params)
            if run.kind == "optimisation":
                if run.status != RunStatus.DONE.value or not run.metrics.get("best_params"):
                    raise ConfigurationError(f"optimisation {run_id} has no best parameters (status {run.status})")
                params = {**params, **run.metrics["best_params"]}
        return export_bot(spec.bot, params, name)

    def wait(self, run_id: int, timeout: float = 60.0, poll: float = 0.2) -> RunView:
        """Block until the run has finished (for scripts and tests); ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.get_run(run_id)
            if view is None:
                raise LookupError(f"no strategy run with id {run_id}")
            if view.finished:
                return view
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {view.status} after {timeout} s")
            time.sleep(poll)

    @staticmethod
    def _get(session: Any, run_id: int) -> StrategyRun:
        run = runs.get_run(session, run_id)
        if run is None:
            raise LookupError(f"no strategy run with id {run_id}")
        return run


def _request(request: BacktestRequest | dict[str, Any]) -> BacktestRequest:
    return request if isinstance(request, BacktestRequest) else BacktestRequest.model_validate(request)
