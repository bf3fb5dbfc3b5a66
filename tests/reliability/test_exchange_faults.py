"""The exchange side misbehaves under the real collector: the WebSocket closes abruptly, sends
garbage, goes silent (no pong), or refuses subscriptions. Each time the collector reconnects,
backfills the gap over REST, and the stored candles equal those of an uninterrupted run (an
independent aggregation of the tape)."""

from __future__ import annotations

import asyncio
import time

from data.okx.client import StreamState
from tests.data.builders import DAY_TAPE, load
from tests.reliability.collector import MINUTE, CollectorRun
from tests.reliability.harness import SYMBOL, LoopThread, market, wait_until

SPEED = 600  # ten market minutes per second


def started_run(loop_thread: LoopThread) -> CollectorRun:
    """A collector on the replayed market with 20 minutes stored."""
    tape = market().tape
    first = tape.first_ts - tape.first_ts % MINUTE
    run = CollectorRun(loop_thread, tape, speed=SPEED, history_ms=10 * MINUTE)
    wait_until(lambda: run.latest_minute() >= first + 20 * MINUTE, 60, "20 stored minutes", run.failed)
    return run


def finish(run: CollectorRun, until_ms: int) -> None:
    wait_until(lambda: run.latest_minute() >= until_ms, 60, f"the minute at {until_ms} to be stored", run.failed)
    run.assert_candles_are_the_tapes(run.latest_minute())


def test_an_abrupt_close_is_followed_by_a_reconnect_and_a_rest_backfill_to_the_uninterrupted_candles(
        loop_thread: LoopThread) -> None:
    run = started_run(loop_thread)
    try:
        assert loop_thread.run(run.server.drop_connections()) == 1  # TCP abort, no close frame
        finish(run, run.latest_minute() + 30 * MINUTE)
        stats = run.collector.stream.stats
        assert stats.reconnects >= 1 and stats.connects >= 2
        assert run.collector.backfiller.stats[SYMBOL].repairs_done >= 2  # the initial one and the gap's
    finally:
        run.close()


def test_garbage_frames_are_counted_and_skipped_without_a_reconnect_or_a_wrong_candle(
        loop_thread: LoopThread) -> None:
    garbage = [
        "\x00\xff not json", "[1, 2]", '{"event":"surprise"}', '{"arg":{"channel":"trades"}}',
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"99","px":"-1","sz":"1",'
        '"side":"buy","ts":"1767225600000"}]}',
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"98","px":"1e999","sz":"1",'
        '"side":"buy","ts":"1767225600000"}]}',
        '{"arg":{"channel":"books","instId":"BTC-USDT"},"data":[{"asks":[]}]}',
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"97"',
    ]
    run = started_run(loop_thread)
    try:
        for frame in garbage:
            loop_thread.run(run.server.send_raw(frame))
        finish(run, run.latest_minute() + 20 * MINUTE)
        stats = run.collector.stream.stats
        assert sum(stats.malformed.values()) == len(garbage), stats.malformed
        assert stats.reconnects == 0
    finally:
        run.close()


def test_a_silent_stall_without_pong_is_detected_and_the_gap_backfilled(loop_thread: LoopThread) -> None:
    run = started_run(loop_thread)
    try:
        loop_thread.call(lambda: run.server.stall(60.0))  # the market goes on; nothing is sent, pings unanswered
        recover_from_stall(loop_thread, run)
        finish(run, run.latest_minute() + 30 * MINUTE)
    finally:
        run.close()


def test_a_stall_that_lasts_past_the_reconnect_with_trades_pushed_before_the_ack_leaves_no_minute_short(
        loop_thread: LoopThread) -> None:
    """Nothing (no push, ack or pong) until the client gave up on the connection; on the new one the
    market's trades arrive before the subscribe ack. Every minute touched by the gap is rewritten from
    REST and the following ones are built: 1m and 5m equal the tape's, and health counts the repair."""
    run = started_run(loop_thread)
    try:
        engine = run.collector.engine
        repairs_before, repaired_before = engine.stats(SYMBOL).repairs, engine.stats(SYMBOL).repaired_minutes
        loop_thread.call(lambda: run.server.stall(60.0))
        wait_until(lambda: run.collector.stream.stats.reconnects >= 1, 20, "the pong timeout's reconnect",
                   run.failed)

        def release() -> None:
            run.server.ack_delay = 0.5  # 5 market minutes of pushes before the ack, at 600x
            run.server.stall(0)

        loop_thread.call(release)
        wait_until(lambda: run.collector.stream.state[SYMBOL] is StreamState.SUBSCRIBED, 20,
                   "the late ack", run.failed)
        sent_before_ack = loop_thread.call(lambda: run.server.stats.trades_sent[SYMBOL])
        loop_thread.call(lambda: setattr(run.server, "ack_delay", 0.0))
        finish(run, run.latest_minute() + 20 * MINUTE)
        stats = engine.stats(SYMBOL)
        assert sent_before_ack > 0 and stats.repairs > repairs_before
        assert stats.unrepaired_minutes == 0
        report = run.collector._health(1.0)[f"collector.okx.{SYMBOL}"][1]
        assert report["unrepaired_minutes"] == 0 and report["gaps_backfilled"] >= 2
        assert stats.repaired_minutes - repaired_before >= 10  # the stall: >= 2 s of wall time, 20 minutes
    finally:
        run.close()


def end_stall_after_the_reconnect_subscribed(loop_thread: LoopThread, run: CollectorRun) -> None:
    """Wait for the pong timeout's reconnect and its subscribe request (which the stalled server ignores),
    then end the stall."""
    wait_until(lambda: run.collector.stream.stats.reconnects >= 1
               and run.collector.stream.state[SYMBOL] is StreamState.SUBSCRIBING, 20,
               "the pong timeout's reconnect to send its subscription", run.failed)
    loop_thread.call(lambda: run.server.stall(0))


def recover_from_stall(loop_thread: LoopThread, run: CollectorRun) -> None:
    """End a stall once the client noticed it, and drop the connection whose subscription the stalled
    server swallowed (an unanswered subscription is its own fault, tested below)."""
    end_stall_after_the_reconnect_subscribed(loop_thread, run)
    loop_thread.run(run.server.drop_connections())


async def stall_at(run: CollectorRun, market_ms: int) -> int:
    """Stall the server (on its own loop, so nothing lags in between) once its market reaches ``market_ms``;
    returns the market time the stall began at."""
    while run.server.market_ms(SYMBOL) < market_ms:
        await asyncio.sleep(0.002)
    run.server.stall(60.0)
    return run.server.market_ms(SYMBOL)


def test_a_stall_in_the_last_seconds_of_a_minute_does_not_leave_that_minute_short(
        loop_thread: LoopThread) -> None:
    """Near live speed the engine's clock keeps running while the client still waits for its pong: the
    minute in which the socket went silent must be completed from REST, not closed with what was seen."""
    tape = load(DAY_TAPE)  # 19 904 real trades, about 30 a second
    first = tape.first_ts - tape.first_ts % MINUTE
    boundary = first + 3 * MINUTE
    # Speed 12; the market opens 10 s (market time) before the minute ahead of the boundary. Ping after
    # 4 s of silence, give up 2 s later: 6 s to notice, against the 2 s grace after which the clock closes a
    # minute (the collector's defaults are 5 s + 10 s).
    run = CollectorRun(loop_thread, tape, speed=12.0, history_ms=boundary - MINUTE - 10_000 - tape.first_ts,
                       ping_after_s=4.0, pong_timeout_s=2.0)
    try:
        stalled_at = loop_thread.run(stall_at(run, boundary - 2_500), 40)
        assert boundary - 2_500 <= stalled_at < boundary - 1_000, "the stall began where the test wanted it"
        recover_from_stall(loop_thread, run)
        finish(run, boundary + MINUTE)
    finally:
        run.close()


def test_a_subscription_the_exchange_never_answers_is_sent_again(loop_thread: LoopThread) -> None:
    run = started_run(loop_thread)
    try:
        loop_thread.call(lambda: run.server.stall(60.0))
        end_stall_after_the_reconnect_subscribed(loop_thread, run)
        wait_until(lambda: run.collector.stream.state[SYMBOL] is StreamState.SUBSCRIBED, 15,
                   "the unanswered subscription to be sent again and acknowledged", run.failed)
        finish(run, run.latest_minute() + 20 * MINUTE)
    finally:
        run.close()


def test_refused_subscriptions_are_retried_until_the_exchange_accepts_them_again(loop_thread: LoopThread) -> None:
    run = started_run(loop_thread)
    try:
        loop_thread.call(lambda: setattr(run.server, "refuse_subscriptions", True))
        loop_thread.run(run.server.drop_connections())
        wait_until(lambda: run.collector.stream.state[SYMBOL] is StreamState.REJECTED, 15,
                   "the re-subscription to be refused", run.failed)
        time.sleep(2.0)
        loop_thread.call(lambda: setattr(run.server, "refuse_subscriptions", False))
        wait_until(lambda: run.collector.stream.state[SYMBOL] is StreamState.SUBSCRIBED, 15,
                   "the refused subscription to be retried and accepted", run.failed)
        finish(run, run.latest_minute() + 30 * MINUTE)
    finally:
        run.close()
