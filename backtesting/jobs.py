"""Background jobs: ``strategy_runs`` rows with status ``queued`` are the queue.

A :class:`Worker` claims queued runs (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, a
compare-and-set on SQLite, see :mod:`database.repositories.runs`) and runs each in a child process,
so a crash or a hard cancel never takes the worker down. The job reports progress and a heartbeat
into its row, stops when ``cancel_requested`` is set, and ends ``done``, ``failed`` (with the
error) or ``cancelled``. Runs whose worker died (no heartbeat for ``stale_after``) are queued again.

The dashboard process runs a worker thread of its own (the in-process pool of the embedded
setup); ``python main.py worker`` runs standalone workers on any machine that reaches the database.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from backtesting.engine import RunCancelled
from backtesting.processes import process_context
from backtesting.runner import load_data, run_backtest
from backtesting.storage import spec_of, store_result
from config.errors import ConfigurationError, StrategyError
from database.engine import make_engine, make_session_factory, session_scope
from database.models import utc_now
from database.repositories import runs
from database.repositories.runs import RunStatus

log = logging.getLogger(__name__)

JOB_KINDS = ("backtest", "optimisation")
CANCEL_GRACE_SECONDS = 15.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100_000}"


class ProgressReporter:
    """Writes progress at most every ``interval`` seconds; returns True once a cancel was asked."""

    def __init__(self, factory: sessionmaker[Session], run_id: int, interval: float = 0.5) -> None:
        self.factory = factory
        self.run_id = run_id
        self.interval = interval
        self._last = 0.0
        self.cancelled = False

    def __call__(self, fraction: float) -> bool:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            with session_scope(self.factory) as session:
                self.cancelled = runs.report_progress(session, self.run_id, fraction)
        return self.cancelled


def execute_run(database_url: str, run_id: int) -> None:
    """Run a claimed (``running``) run to its end; every outcome is written to its row."""
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    try:
        with session_scope(factory) as session:
            run = runs.get_run(session, run_id)
            if run is None:
                return
            kind = run.kind
        _execute(factory, run_id, kind)
    finally:
        engine.dispose()


def _execute(factory: sessionmaker[Session], run_id: int, kind: str) -> None:
    try:
        if kind == "backtest":
            execute_backtest(factory, run_id)
        elif kind == "optimisation":
            from backtesting.optimise import execute_optimisation

            execute_optimisation(factory, run_id)
        else:
            raise ConfigurationError(f"run {run_id} has kind {kind!r}; expected one of {', '.join(JOB_KINDS)}")
    except RunCancelled:
        with session_scope(factory) as session:
            runs.mark_cancelled(session, run_id)
    except (ConfigurationError, StrategyError) as exc:
        with session_scope(factory) as session:
            runs.fail_run(session, run_id, str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure must end up in the run's row
        log.exception("run %s failed", run_id)
        with session_scope(factory) as session:
            runs.fail_run(session, run_id, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")


def execute_backtest(factory: sessionmaker[Session], run_id: int) -> None:
    with session_scope(factory) as session:
        run = runs.get_run(session, run_id)
        assert run is not None
        spec = spec_of(run)
        prepared = load_data(spec, session)
    progress = ProgressReporter(factory, run_id)
    if progress(0.0):
        raise RunCancelled(f"run {run_id} cancelled before it started")
    result = run_backtest(spec, prepared, progress=progress)
    with session_scope(factory) as session:
        store_result(session, run_id, result, prepared.data)


class Worker:
    """Claims queued runs and executes each in a child process; ``max_jobs`` at a time.

    While a job runs, its supervising thread heartbeats the row every second and, after a cancel
    request, gives the job ``CANCEL_GRACE_SECONDS`` to stop on its own before terminating it.
    """

    def __init__(self, database_url: str, *, max_jobs: int = 1, poll_seconds: float = 1.0,
                 stale_after: timedelta = timedelta(minutes=2), name: str | None = None) -> None:
        self.database_url = database_url
        self.max_jobs = max(1, max_jobs)
        self.poll_seconds = poll_seconds
        self.stale_after = stale_after
        self.name = name or worker_name()
        self._engine = make_engine(database_url)
        self._factory = make_session_factory(self._engine)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._context = process_context()

    # -- running jobs -------------------------------------------------------------------------
    def claim(self) -> int | None:
        with session_scope(self._factory) as session:
            run = runs.claim_next_run(session, self.name, JOB_KINDS)
            return None if run is None else int(run.id)

    def run_one(self, run_id: int) -> None:
        """Execute a claimed run in a child process and wait for it (cancel enforced after a grace)."""
        process = self._context.Process(target=execute_run, args=(self.database_url, run_id),
                                        name=f"backtest-run-{run_id}")
        process.start()
        cancel_seen: float | None = None
        while process.is_alive():
            process.join(timeout=1.0)
            if not process.is_alive():
                break
            with session_scope(self._factory) as session:
                asked = runs.heartbeat(session, run_id)
            if asked and cancel_seen is None:
                cancel_seen = time.monotonic()
            if cancel_seen is not None and time.monotonic() - cancel_seen > CANCEL_GRACE_SECONDS:
                process.terminate()
                process.join(timeout=10)
        with session_scope(self._factory) as session:
            run = runs.get_run(session, run_id)
            if run is not None and run.status == RunStatus.RUNNING.value:
                if run.cancel_requested:
                    runs.mark_cancelled(session, run_id)
                else:
                    runs.fail_run(session, run_id, f"worker process exited with code {process.exitcode}")

    def run_pending(self, limit: int | None = None) -> int:
        """Run queued jobs one after another until none is left (or ``limit``); returns how many."""
        done = 0
        while limit is None or done < limit:
            run_id = self.claim()
            if run_id is None:
                break
            self.run_one(run_id)
            done += 1
        return done

    # -- the service loop ---------------------------------------------------------------------
    def requeue_stale(self) -> list[int]:
        with session_scope(self._factory) as session:
            return runs.requeue_stale_runs(session, utc_now() - self.stale_after)

    def serve(self, stop: threading.Event | None = None) -> None:
        """Claim and run jobs until ``stop`` (or :meth:`stop`) is set; ``max_jobs`` threads."""
        stop = stop or self._stop
        slots = threading.Semaphore(self.max_jobs)
        next_reap = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_reap:
                next_reap = time.monotonic() + self.stale_after.total_seconds() / 2
                try:
                    self.requeue_stale()
                except Exception:  # noqa: BLE001 - a database outage must not end the worker
                    log.exception("looking for stale runs failed; retrying")
            if not slots.acquire(timeout=self.poll_seconds):
                continue
            try:
                run_id = self.claim()
            except Exception:  # noqa: BLE001 - a database outage must not end the worker
                log.exception("claiming a job failed; retrying")
                run_id = None
            if run_id is None:
                slots.release()
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
                continue
            thread = threading.Thread(target=self._run_and_release, args=(run_id, slots),
                                      name=f"job-{run_id}", daemon=True)
            thread.start()

    def _run_and_release(self, run_id: int, slots: threading.Semaphore) -> None:
        try:
            self.run_one(run_id)
        except Exception:  # noqa: BLE001
            log.exception("job %s could not be supervised", run_id)
        finally:
            slots.release()
            self._wake.set()

    def start(self) -> None:
        """Serve in a background thread of this process (the embedded in-process pool)."""
        if any(t.is_alive() for t in self._threads):
            return
        self._stop.clear()
        thread = threading.Thread(target=self.serve, name="backtest-worker", daemon=True)
        thread.start()
        self._threads = [thread]

    def wake(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._engine.dispose()


def run_inline(factory: sessionmaker[Session], run_id: int) -> None:
    """Execute a run in this process (the CLI's foreground mode), recording the outcome."""
    with session_scope(factory) as session:
        runs.start_run(session, run_id, worker_name())
        run = runs.get_run(session, run_id)
        assert run is not None
        kind = run.kind
    _execute(factory, run_id, kind)
