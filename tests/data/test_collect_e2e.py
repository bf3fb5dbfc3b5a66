"""``replay`` -> ``collect`` as real processes: the stored candles are those of an independent
aggregation of the tape, and a collector killed mid-replay ends with the same candles."""

from __future__ import annotations

import signal
from pathlib import Path

from config.domain import DEFAULT_TIMEFRAMES, Timeframe
from tests.data.builders import SHORT_TAPE, assert_candles_match, expected_candles, load
from tests.data.processes import start_collect, start_replay, stop, stored_candles, wait_for

DAY = 86_400_000


def test_replay_then_collect_stores_exactly_the_candles_of_the_tape(db_url: str, tmp_path: Path) -> None:
    tape = load(SHORT_TAPE)
    pass_two = tape.first_ts - tape.first_ts % DAY + tape.loop_shift_ms  # the first --loop repeat starts here
    last_day = tape.last_ts - tape.last_ts % DAY
    replay, ws_url, rest_url = start_replay(SHORT_TAPE, speed=0, passes=2, data_dir=tmp_path)
    collect = start_collect(db_url, ws_url, rest_url, tmp_path)
    try:
        # The last daily candle of the tape closes when the repeat's first trade arrives.
        wait_for(lambda: any(c.open_time_ms == last_day for c in stored_candles(db_url, Timeframe.D1)), 90,
                 "the tape's last daily candle")
        collect.send_signal(signal.SIGINT)
        assert collect.wait(60) == 0
    finally:
        collect.kill()
        replay.kill()
    for tf in DEFAULT_TIMEFRAMES:
        assert_candles_match(stored_candles(db_url, tf, None, pass_two), expected_candles(tape, tf))


def test_a_collector_killed_mid_replay_and_restarted_ends_with_the_same_candles(pg_clean: str,
                                                                               tmp_path: Path) -> None:
    tape = load(SHORT_TAPE)
    pass_two = tape.first_ts - tape.first_ts % DAY + tape.loop_shift_ms
    last_day = tape.last_ts - tape.last_ts % DAY
    first_minute = tape.first_ts - tape.first_ts % 60_000
    replay, ws_url, rest_url = start_replay(SHORT_TAPE, speed=40, passes=2, data_dir=tmp_path)
    collect = start_collect(pg_clean, ws_url, rest_url, tmp_path)
    try:
        wait_for(lambda: len(stored_candles(pg_clean, Timeframe.M1)) >= 3, 60, "three closed minutes")
        collect.send_signal(signal.SIGKILL)
        collect.wait(10)
        killed_at = stored_candles(pg_clean, Timeframe.M1)[-1].open_time_ms
        collect = start_collect(pg_clean, ws_url, rest_url, tmp_path)
        wait_for(lambda: any(c.open_time_ms == last_day for c in stored_candles(pg_clean, Timeframe.D1)), 90,
                 "the tape's last daily candle")
        assert stop(collect) == 0
    finally:
        collect.kill()
        replay.kill()
    assert killed_at < tape.last_ts - 60_000  # it really was killed mid-replay
    for tf in DEFAULT_TIMEFRAMES:
        stored = stored_candles(pg_clean, tf, None, pass_two)
        expected = expected_candles(tape, tf)
        assert_candles_match(stored, expected, counts=False)  # no gap, no duplicate, same OHLCV
        if tf is Timeframe.M1:
            # Minutes after the kill came from REST, which has no trade count; the rest are exact.
            for c, want in zip(stored, expected.itertuples(), strict=True):
                if c.open_time_ms <= killed_at or c.open_time_ms == first_minute:
                    assert c.trade_count == want.trade_count
                else:
                    assert c.trade_count in (want.trade_count, 0)


def test_collect_serves_metrics_on_metrics_port(pg_clean: str, tmp_path: Path) -> None:
    import re
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    replay, ws_url, rest_url = start_replay(SHORT_TAPE, speed=40, passes=1, data_dir=tmp_path)
    collect = start_collect(pg_clean, ws_url, rest_url, tmp_path, METRICS_PORT=str(port))

    def published() -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                body = response.read().decode()
        except OSError:
            return 0.0
        match = re.search(r'^tcp_candles_published_total\{timeframe="1m"\} (\S+)$', body, re.M)
        return float(match.group(1)) if match else 0.0

    try:
        wait_for(lambda: published() >= 1, 60, "closed 1m candles counted on /metrics")
        assert stop(collect) == 0
    finally:
        collect.kill()
        replay.kill()


def test_collect_and_backfill_refuse_an_instrument_the_venue_does_not_list(pg_clean: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.data.processes import ROOT, env

    replay, ws_url, rest_url = start_replay(SHORT_TAPE, speed=1, passes=1, data_dir=tmp_path)
    commands = {
        "--symbols": ["collect", "--symbols", "BTC-USDT,BTC-USDTT", "--okx-ws-url", ws_url, "--okx-rest-url", rest_url],
        "--symbol": ["backfill", "--symbol", "BTC-USDTT", "--start", "2023-04-05", "--okx-rest-url", rest_url],
    }
    try:
        for option, args in commands.items():
            done = subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env(pg_clean, tmp_path),
                                  capture_output=True, text=True, timeout=60)
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            assert done.returncode == 2, done.stderr
            assert lines == [f"error: {option}: unknown instrument 'BTC-USDTT' on okx (did you mean BTC-USDT?)"], \
                done.stderr
    finally:
        replay.kill()
    assert stored_candles(pg_clean, Timeframe.M1) == []
