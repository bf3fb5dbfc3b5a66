"""Raw trades of a stream gap are fetched from REST ``history-trades`` (the replay serves it, paged by
tradeId): after a SIGKILL and a restart, and after an abrupt close, the ``trades`` table holds every
trade id of the tape exactly once; a gap REST no longer reaches back to is reported."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from sqlalchemy import text

from config.domain import Timeframe
from data.okx.client import StreamState
from database.engine import make_engine
from tests.data.builders import SHORT_TAPE, load
from tests.data.processes import start_collect, start_replay, stop, stored_candles, wait_for
from tests.reliability.collector import CollectorRun
from tests.reliability.harness import SYMBOL, LoopThread, wait_until


def stored_trade_ids(url: str) -> list[int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(
                text("SELECT trade_id FROM trades WHERE exchange = 'okx' AND symbol = :s ORDER BY trade_id"),
                {"s": SYMBOL})]
    finally:
        engine.dispose()


def test_after_a_sigkill_and_a_restart_every_trade_of_the_tape_is_stored_exactly_once(
        pg_clean: str, tmp_path: Path) -> None:
    tape = load(SHORT_TAPE)
    want = sorted(int(i) for i in tape.trade_id)
    replay, ws_url, rest_url = start_replay(SHORT_TAPE, speed=40, passes=1, data_dir=tmp_path)
    collect = start_collect(pg_clean, ws_url, rest_url, tmp_path)
    try:
        wait_for(lambda: len(stored_candles(pg_clean, Timeframe.M1)) >= 3, 60, "three closed minutes")
        collect.send_signal(signal.SIGKILL)
        collect.wait(10)
        at_kill = len(stored_trade_ids(pg_clean))
        collect = start_collect(pg_clean, ws_url, rest_url, tmp_path)
        wait_for(lambda: len(stored_trade_ids(pg_clean)) >= len(want), 60, "every trade of the tape")
        assert stop(collect) == 0
    finally:
        collect.kill()
        replay.kill()
    assert 0 < at_kill < len(want)  # it really was killed mid-tape
    stored = stored_trade_ids(pg_clean)
    assert stored == want  # each id once (the primary key), none missing, none invented


def test_an_abrupt_close_loses_no_raw_trade_and_a_gap_rest_cannot_reach_is_reported(
        loop_thread: LoopThread) -> None:
    tape = load(SHORT_TAPE)
    run = CollectorRun(loop_thread, tape, speed=40)
    try:
        wait_until(lambda: len(stored_trade_ids(run.url)) > 100, 30, "trades stored", run.failed)
        assert loop_thread.run(run.server.drop_connections()) == 1  # TCP abort, no close frame
        stats = run.collector.backfiller.stats[SYMBOL]
        wait_until(lambda: stats.trade_gaps_filled >= 1, 30, "the gap's raw trades backfilled", run.failed)
        assert stats.trades_backfilled > 0  # the reconnect really left a gap on the socket

        def contiguous() -> bool:
            ids = stored_trade_ids(run.url)
            first, last = ids[0], ids[-1]
            return ids == sorted(int(i) for i in tape.trade_id if first <= int(i) <= last) and last > first
        wait_until(contiguous, 15, "every trade id between the first and the last stored, once", run.failed)
        assert stored_trade_ids(run.url)[0] == int(tape.trade_id[0])

        # Now REST keeps only 5 trades of history: the next gap cannot be filled, and that is reported.
        loop_thread.call(lambda: setattr(run.server, "trade_history_limit", 5))
        assert loop_thread.run(run.server.drop_connections()) == 1
        wait_until(lambda: stats.trade_gaps_unfilled >= 1, 30, "the unfillable gap reported", run.failed)
        wait_until(lambda: run.collector.stream.state[SYMBOL] is StreamState.SUBSCRIBED, 15, "resubscribed",
                   run.failed)
        report = run.collector._health(1.0)[f"collector.okx.{SYMBOL}"][1]
        assert report["trade_gaps_unfilled"] == 1 and report["trade_gaps_filled"] >= 1
    finally:
        run.close()


def test_a_frame_over_the_size_limit_ends_the_connection_and_its_gap_is_backfilled(
        loop_thread: LoopThread) -> None:
    """A 20 MiB frame (over the client's 16 MiB limit): the client closes with 1009, reconnects, and the
    raw trades the replay sent meanwhile are fetched from REST; nothing of the huge frame is stored."""
    tape = load(SHORT_TAPE)
    run = CollectorRun(loop_thread, tape, speed=40)
    try:
        wait_until(lambda: len(stored_trade_ids(run.url)) > 100, 30, "trades stored", run.failed)
        stream = run.collector.stream
        before = stream.stats.reconnects
        entry = json.dumps({"instId": SYMBOL, "tradeId": "1", "px": "1", "sz": "1", "side": "buy", "ts": "1"})
        push = {"arg": {"channel": "trades", "instId": SYMBOL}, "data": ["X"]}
        huge = json.dumps(push).replace('"X"', ",".join([entry] * (20 * 2**20 // len(entry))))
        assert len(huge) > 20 * 2**20 - 100
        loop_thread.run(run.server.send_raw(huge))
        wait_until(lambda: stream.stats.reconnects > before, 30, "the client reconnected", run.failed)
        stats = run.collector.backfiller.stats[SYMBOL]
        wait_until(lambda: stats.trade_gaps_filled >= 1, 30, "the gap's raw trades backfilled", run.failed)
        assert stats.trades_backfilled > 0  # the reconnect really left a gap on the socket

        def contiguous() -> bool:
            ids = stored_trade_ids(run.url)
            return ids == sorted(int(i) for i in tape.trade_id if ids[0] <= int(i) <= ids[-1]) and len(ids) > 200
        # (the huge frame's trade id 1 is far below the tape's: had it been stored, this would not hold)
        wait_until(contiguous, 15, "every trade id between the first and the last stored, once", run.failed)
    finally:
        run.close()
