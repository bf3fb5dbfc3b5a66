"""Fuzzed exchange frames through the real path: replay server -> WebSocket -> OKX client -> parser ->
candle engine -> storage. Every invalid frame, and every invalid trade of a push, is counted and
skipped, the connection stays up, and the candles of the real market around them are exactly those of
an uninterrupted run. (A push mixing valid and invalid trades keeps its valid ones: that is
test_forged_frames.py, with real tape trades as the valid ones.)"""

from __future__ import annotations

import json
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.collector import MINUTE, CollectorRun
from tests.reliability.harness import SYMBOL, LoopThread, market, wait_until

KNOWN_EVENTS = {"subscribe", "unsubscribe", "error", "notice", "login", "channel-conn-count",
                "channel-conn-count-error"}
FAKE_IDS = st.integers(10**12, 10**13)  # never a tape id: an accepted fake trade would show in the counts


def valid_trade() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "instId": st.just(SYMBOL), "tradeId": FAKE_IDS.map(str),
        "px": st.integers(1, 10**7).map(lambda p: str(p / 10)), "sz": st.integers(1, 10**6).map(lambda s: str(s / 1e4)),
        "side": st.sampled_from(["buy", "sell"]), "ts": st.integers(1_767_225_600_000, 1_767_230_000_000).map(str)})


BAD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "px": st.sampled_from(["-1", "0", "abc", "nan", "inf", "1e999", "", None, [], {}]),
    "sz": st.sampled_from(["-0.5", "0", "x", "NaN", "-inf", None, True]),
    "side": st.sampled_from(["BUY", "hold", "", None, 1]),
    "ts": st.sampled_from(["-5", "1e20", "soon", "", None, "17672256000001234"]),
    "tradeId": st.sampled_from(["-1", "x1", "", None, 1.5]),
}


@st.composite
def push_of_bad_trades(draw: st.DrawFn) -> tuple[str, int]:
    """A ``trades`` push whose every trade has one bad (or missing) field; counted once per trade."""
    trades = draw(st.lists(valid_trade(), min_size=1, max_size=5))
    for victim in trades:
        field = draw(st.sampled_from(sorted(BAD_VALUES)))
        if draw(st.booleans()):
            del victim[field]
        else:
            victim[field] = draw(BAD_VALUES[field])
    return json.dumps({"arg": {"channel": "trades", "instId": SYMBOL}, "data": trades}), len(trades)


def valid_push() -> st.SearchStrategy[str]:
    return st.lists(valid_trade(), min_size=1, max_size=5).map(
        lambda trades: json.dumps({"arg": {"channel": "trades", "instId": SYMBOL}, "data": trades}))


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
garbage_frame = st.one_of(
    st.text(max_size=60).map(lambda t: "#" + t),  # not JSON
    json_values.filter(lambda v: not isinstance(v, dict)).map(json.dumps),  # JSON, not an object
    st.text(min_size=1, max_size=12).filter(lambda e: e not in KNOWN_EVENTS).map(
        lambda e: json.dumps({"event": e})),  # an event OKX does not send
    st.tuples(st.sampled_from(["books", "tickers", "candle1m", ""]), st.lists(valid_trade(), max_size=2)).map(
        lambda c: json.dumps({"arg": {"channel": c[0], "instId": SYMBOL}, "data": c[1]})),  # a foreign channel
    st.tuples(valid_push(), st.floats(0.05, 0.95)).map(lambda p: p[0][:int(len(p[0]) * p[1])]),  # cut short
).map(lambda frame: (frame, 1)) | push_of_bad_trades()


def test_fuzzed_frames_are_counted_and_skipped_and_the_real_candles_come_out_unchanged(
        loop_thread: LoopThread) -> None:
    tape = market().tape
    run = CollectorRun(loop_thread, tape, speed=600, history_ms=10 * MINUTE, ping_after_s=20.0)
    collector = run.collector
    try:
        loop_thread.call(run.server.pause)  # frames first, on a quiet but subscribed connection
        wait_until(lambda: collector.stream.stats.connected and run.server.stats.subscribe_requests >= 1, 20,
                   "the subscription", run.failed)
        sent = 0

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(garbage_frame, min_size=1, max_size=8))
        def garbage_is_skipped(frames: list[tuple[str, int]]) -> None:
            nonlocal sent
            before = sum(collector.stream.stats.malformed.values())
            trades_before = collector.engine.stats(SYMBOL).trades
            for frame, _ in frames:
                loop_thread.run(run.server.send_raw(frame))
            sent += len(frames)
            counted = before + sum(n for _, n in frames)
            deadline = time.monotonic() + 5
            while sum(collector.stream.stats.malformed.values()) < counted:
                assert time.monotonic() < deadline, f"not every frame was counted as malformed: {frames!r}"
                time.sleep(0.005)
            assert sum(collector.stream.stats.malformed.values()) == counted, frames
            assert collector.engine.stats(SYMBOL).trades == trades_before, frames

        garbage_is_skipped()
        assert collector.stream.stats.reconnects == 0 and sent >= 60
        loop_thread.call(run.server.resume)
        first = tape.first_ts - tape.first_ts % MINUTE
        wait_until(lambda: run.latest_minute() >= first + 40 * MINUTE, 30, "40 stored minutes", run.failed)
        run.assert_candles_are_the_tapes(run.latest_minute())
        assert collector.stream.stats.reconnects == 0
    finally:
        run.close()
