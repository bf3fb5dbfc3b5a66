"""Backtest and optimisation runs: the ``strategy_runs`` job table, their signals and trades.

``strategy_runs`` doubles as the job queue. A run is created ``queued``; a worker claims it with
:func:`claim_next_run` (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, then a compare-and-set
on the status, which is also what makes SQLite safe), reports progress and heartbeats, and ends it
``done``, ``failed`` or ``cancelled``. Optimisation trials are child runs (``parent_id``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from database.models import BacktestTrade, StrategyRun, StrategySignal, utc_now


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = (RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED)


def create_run(session: Session, *, kind: str, strategy: str, params: Mapping[str, Any],
               settings: Mapping[str, Any], exchange: str | None = None, symbol: str | None = None,
               timeframe: str | None = None, start_time: datetime | None = None,
               end_time: datetime | None = None, data_source: str | None = None, name: str | None = None,
               parent_id: int | None = None, status: RunStatus = RunStatus.QUEUED) -> int:
    """Insert a run and return its id (flushed, not committed)."""
    run = StrategyRun(
        kind=kind, name=name, strategy=strategy, params=dict(params), settings=dict(settings),
        exchange=exchange, symbol=symbol, timeframe=timeframe, start_time=start_time, end_time=end_time,
        data_source=data_source, parent_id=parent_id, status=status.value, progress=0.0,
        cancel_requested=False, metrics={}, equity_curve={},
    )
    session.add(run)
    session.flush()
    return int(run.id)


def claim_next_run(session: Session, worker: str, kinds: Sequence[str]) -> StrategyRun | None:
    """Mark the oldest queued run of one of ``kinds`` as running by ``worker`` and return it.

    Safe with many workers: on PostgreSQL the candidate row is locked with ``SKIP LOCKED`` (other
    workers pass over it), and the status update only succeeds while the row is still queued.
    """
    candidate = session.scalar(
        select(StrategyRun.id)
        .where(StrategyRun.status == RunStatus.QUEUED.value, StrategyRun.kind.in_(list(kinds)))
        .order_by(StrategyRun.id).limit(1).with_for_update(skip_locked=True)
    )
    if candidate is None:
        return None
    now = utc_now()
    result = session.execute(
        update(StrategyRun)
        .where(StrategyRun.id == candidate, StrategyRun.status == RunStatus.QUEUED.value)
        .values(status=RunStatus.RUNNING.value, worker=worker, started_at=now, heartbeat_at=now, progress=0.0)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(StrategyRun, candidate, populate_existing=True)


def start_run(session: Session, run_id: int, worker: str) -> None:
    """Mark a run created for immediate execution (not through the queue) as running."""
    now = utc_now()
    session.execute(update(StrategyRun).where(StrategyRun.id == run_id).values(
        status=RunStatus.RUNNING.value, worker=worker, started_at=now, heartbeat_at=now))


def report_progress(session: Session, run_id: int, progress: float) -> bool:
    """Store progress (0..1) and a heartbeat; returns True when a cancel was requested."""
    session.execute(update(StrategyRun).where(StrategyRun.id == run_id).values(
        progress=max(0.0, min(1.0, float(progress))), heartbeat_at=utc_now()))
    return bool(session.scalar(select(StrategyRun.cancel_requested).where(StrategyRun.id == run_id)))


def heartbeat(session: Session, run_id: int) -> bool:
    """A running job's supervisor is alive; returns True when a cancel was requested."""
    session.execute(update(StrategyRun).where(StrategyRun.id == run_id).values(heartbeat_at=utc_now()))
    return bool(session.scalar(select(StrategyRun.cancel_requested).where(StrategyRun.id == run_id)))


def finish_run(session: Session, run_id: int, *, metrics: Mapping[str, Any],
               equity_curve: Mapping[str, Any] | None = None, score: float | None = None,
               settings_update: Mapping[str, Any] | None = None) -> None:
    """Record a successful end: status ``done``, progress 1, metrics and the (downsampled) curve."""
    run = _get(session, run_id)
    run.status = RunStatus.DONE.value
    run.progress = 1.0
    run.metrics = dict(metrics)
    run.score = score
    if equity_curve is not None:
        run.equity_curve = dict(equity_curve)
    if settings_update:
        run.settings = {**run.settings, **settings_update}
    run.finished_at = utc_now()


def fail_run(session: Session, run_id: int, error: str) -> None:
    run = _get(session, run_id)
    run.status = RunStatus.FAILED.value
    run.error = error
    run.finished_at = utc_now()


def mark_cancelled(session: Session, run_id: int) -> None:
    run = _get(session, run_id)
    run.status = RunStatus.CANCELLED.value
    run.finished_at = utc_now()


def request_cancel(session: Session, run_id: int) -> RunStatus:
    """Cancel a run: a queued one at once, a running one by flag (its worker stops at the next
    progress report). Returns the status after the request."""
    run = _get(session, run_id)
    status = RunStatus(run.status)
    if status is RunStatus.QUEUED:
        run.status = RunStatus.CANCELLED.value
        run.finished_at = utc_now()
        return RunStatus.CANCELLED
    if status is RunStatus.RUNNING:
        run.cancel_requested = True
    session.execute(update(StrategyRun).where(StrategyRun.parent_id == run_id,
                                              StrategyRun.status == RunStatus.QUEUED.value)
                    .values(status=RunStatus.CANCELLED.value, finished_at=utc_now()))
    return status


def requeue_stale_runs(session: Session, heartbeat_before: datetime) -> list[int]:
    """Put runs whose worker stopped heartbeating back in the queue; returns their ids."""
    ids = list(session.scalars(select(StrategyRun.id).where(
        StrategyRun.status == RunStatus.RUNNING.value, StrategyRun.heartbeat_at < heartbeat_before,
        StrategyRun.kind.in_(["backtest", "optimisation"]))))
    if ids:
        session.execute(update(StrategyRun).where(StrategyRun.id.in_(ids)).values(
            status=RunStatus.QUEUED.value, worker=None, progress=0.0))
    return ids


def get_run(session: Session, run_id: int) -> StrategyRun | None:
    return session.get(StrategyRun, run_id, populate_existing=True)


def _get(session: Session, run_id: int) -> StrategyRun:
    run = session.get(StrategyRun, run_id)
    if run is None:
        raise LookupError(f"no strategy run with id {run_id}")
    return run


def list_runs(session: Session, *, status: str | None = None, kind: str | Sequence[str] | None = None,
              strategy: str | None = None, symbol: str | None = None, parent_id: int | None = None,
              top_level: bool = False, order_by_score: bool = False, limit: int = 100,
              offset: int = 0) -> list[StrategyRun]:
    """Runs, newest first (or best ``score`` first), filtered by the given fields."""
    query = select(StrategyRun)
    if status:
        query = query.where(StrategyRun.status == status)
    if kind:
        query = query.where(StrategyRun.kind.in_([kind] if isinstance(kind, str) else list(kind)))
    if strategy:
        query = query.where(StrategyRun.strategy == strategy)
    if symbol:
        query = query.where(StrategyRun.symbol == symbol)
    if parent_id is not None:
        query = query.where(StrategyRun.parent_id == parent_id)
    if top_level:
        query = query.where(StrategyRun.parent_id.is_(None))
    if order_by_score:
        query = query.order_by(StrategyRun.score.desc().nulls_last(), StrategyRun.id)
    else:
        query = query.order_by(StrategyRun.id.desc())
    return list(session.scalars(query.limit(limit).offset(offset)))


def count_runs(session: Session, *, parent_id: int | None = None, status: str | None = None) -> int:
    query = select(func.count()).select_from(StrategyRun)
    if parent_id is not None:
        query = query.where(StrategyRun.parent_id == parent_id)
    if status:
        query = query.where(StrategyRun.status == status)
    return int(session.scalar(query) or 0)


def add_trades(session: Session, run_id: int, trades: Iterable[Mapping[str, Any]]) -> int:
    """Bulk-insert trades (dicts with the ``backtest_trades`` columns except ``id``/``run_id``)."""
    rows = [{**t, "run_id": run_id} for t in trades]
    if rows:
        session.execute(insert(BacktestTrade), rows)
    return len(rows)


def get_trades(session: Session, run_id: int) -> list[BacktestTrade]:
    return list(session.scalars(select(BacktestTrade).where(BacktestTrade.run_id == run_id)
                                .order_by(BacktestTrade.entry_time, BacktestTrade.id)))


def add_signals(session: Session, run_id: int, signals: Iterable[Mapping[str, Any]]) -> int:
    """Bulk-insert signal events (dicts with ``candle_time``, ``signal_type``, ``price``, …)."""
    rows = [{"strength": 0.0, "reason": "", **s, "run_id": run_id} for s in signals]
    if rows:
        session.execute(insert(StrategySignal), rows)
    return len(rows)


def get_signals(session: Session, run_id: int) -> list[StrategySignal]:
    return list(session.scalars(select(StrategySignal).where(StrategySignal.run_id == run_id)
                                .order_by(StrategySignal.candle_time, StrategySignal.id)))


def delete_run(session: Session, run_id: int) -> None:
    """Delete a run with its children, signals and trades."""
    for child in list(session.scalars(select(StrategyRun.id).where(StrategyRun.parent_id == run_id))):
        delete_run(session, child)
    session.execute(delete(BacktestTrade).where(BacktestTrade.run_id == run_id))
    session.execute(delete(StrategySignal).where(StrategySignal.run_id == run_id))
    session.execute(delete(StrategyRun).where(StrategyRun.id == run_id))
