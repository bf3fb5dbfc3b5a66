"""``python main.py`` killed with SIGKILL while its bots trade, then restarted, ends in the state of
an uninterrupted run; SIGTERM stops it cleanly with exit code 0."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REDIS_URL
from tests.reliability.conftest import END_MINUTE, Reference
from tests.reliability.harness import LoopThread
from tests.reliability.platform import SIGTERM_BOUND_S, PlatformRun, assert_candles_are_the_tapes, assert_same_bot_state


def test_sigkill_while_trading_and_a_restart_end_in_the_state_of_an_uninterrupted_run(
        tmp_path: Path, loop_thread: LoopThread, reference: Reference) -> None:
    market = reference.market
    run = PlatformRun(tmp_path, "sigkill", market, loop_thread, speed=1200, redis_url=REDIS_URL)
    try:
        run.start()
        run.wait_processed(market.minute(60), 60)
        run.kill()
        killed_at = run.processed()
        assert killed_at is not None and killed_at < market.minute(END_MINUTE - 60)
        run.start()  # the market went on meanwhile: the collector backfills the gap over REST
        run.wait_processed(market.minute(END_MINUTE), 90)
        code, seconds = run.terminate()
        assert (code, seconds < SIGTERM_BOUND_S) == (0, True), run.log_tail()
        assert_candles_are_the_tapes(run, market.minute(END_MINUTE))
        state = run.bot_state(reference.end_ms)
    finally:
        run.close()
    assert len(reference.state["fills"]) >= 6, "the reference run should trade"
    assert any(f[1].timestamp() * 1000 > killed_at for f in reference.state["fills"]), "trades after the kill"
    assert_same_bot_state(reference.state, state)


def test_sigterm_stops_every_component_with_exit_code_0_well_within_the_bound(reference: Reference) -> None:
    code, seconds = reference.exit
    assert code == 0 and seconds < SIGTERM_BOUND_S, reference.exit
    assert reference.collector_health is not None
    status, data = reference.collector_health
    assert status == "stopped" and data.get("stopped") is True  # the collector's final report was written
