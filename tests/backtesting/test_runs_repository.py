"""``strategy_runs`` as a job queue: claim, progress, cancel, finish, stale workers."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from database.engine import make_engine, make_session_factory, session_scope
from database.models import utc_now
from database.repositories import runs
from database.repositories.runs import RunStatus


def _new(session: Session, kind: str = "backtest", parent_id: int | None = None) -> int:
    return runs.create_run(session, kind=kind, strategy="sma_cross", params={"fast": 5}, settings={"spec": {}},
                           symbol="BTC-USDT", timeframe="1m", parent_id=parent_id)


def test_a_worker_claims_the_oldest_queued_job_and_finishes_it(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        first, second = _new(s), _new(s)
        _new(s, kind="trial", parent_id=first)  # trials are not jobs
    with session_scope(factory) as s:
        claimed = runs.claim_next_run(s, "w1", ["backtest", "optimisation"])
        assert claimed is not None and claimed.id == first
        assert claimed.status == "running" and claimed.worker == "w1" and claimed.started_at is not None
    with session_scope(factory) as s:
        assert runs.report_progress(s, first, 0.5) is False
        runs.finish_run(s, first, metrics={"sharpe": 1.5}, equity_curve={"t": [1], "equity": [2.0]}, score=1.5)
    with session_scope(factory) as s:
        assert runs.claim_next_run(s, "w1", ["backtest"]).id == second  # type: ignore[union-attr]
        assert runs.claim_next_run(s, "w1", ["backtest"]) is None
        done = runs.get_run(s, first)
        assert done is not None and (done.status, done.progress, done.score) == ("done", 1.0, 1.5)
        assert done.metrics == {"sharpe": 1.5} and done.finished_at is not None
    engine.dispose()


def test_two_workers_on_postgresql_never_claim_the_same_job(pg_clean: str) -> None:
    engine = make_engine(pg_clean)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        ids = [_new(s) for _ in range(2)]
    one, two = factory(), factory()
    try:
        first = runs.claim_next_run(one, "w1", ["backtest"])  # row locked, transaction still open
        second = runs.claim_next_run(two, "w2", ["backtest"])  # SKIP LOCKED passes over it
        assert first is not None and second is not None
        assert {first.id, second.id} == set(ids)
        one.commit()
        two.commit()
    finally:
        one.close()
        two.close()
        engine.dispose()


def test_cancelling_a_queued_run_ends_it_and_a_running_one_is_flagged(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        queued, running = _new(s), _new(s)
        runs.start_run(s, running, "w1")
    with session_scope(factory) as s:
        assert runs.request_cancel(s, queued) is RunStatus.CANCELLED
        assert runs.request_cancel(s, running) is RunStatus.RUNNING
    with session_scope(factory) as s:
        assert runs.get_run(s, queued).status == "cancelled"  # type: ignore[union-attr]
        assert runs.report_progress(s, running, 0.1) is True
        runs.mark_cancelled(s, running)
    with session_scope(factory) as s:
        assert runs.get_run(s, running).status == "cancelled"  # type: ignore[union-attr]
    engine.dispose()


def test_a_run_whose_worker_stopped_heartbeating_is_queued_again(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        stale, alive = _new(s), _new(s)
        runs.start_run(s, stale, "dead-worker")
        runs.start_run(s, alive, "live-worker")
        runs.get_run(s, stale).heartbeat_at = utc_now() - timedelta(minutes=10)  # type: ignore[union-attr]
    with session_scope(factory) as s:
        assert runs.requeue_stale_runs(s, utc_now() - timedelta(minutes=2)) == [stale]
    with session_scope(factory) as s:
        assert runs.get_run(s, stale).status == "queued"  # type: ignore[union-attr]
        assert runs.get_run(s, alive).status == "running"  # type: ignore[union-attr]
    engine.dispose()
