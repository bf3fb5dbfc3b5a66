"""Fixtures of the fault tests: one asyncio loop thread, and the uninterrupted reference run that
the SIGKILL, Redis-restart and PostgreSQL-outage runs are compared with."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL
from tests.reliability.harness import SYMBOL, LoopThread, Market, market
from tests.reliability.platform import PlatformRun

END_MINUTE = 240  # every run is compared over the live minutes [0, END_MINUTE]


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


@dataclass(frozen=True)
class Reference:
    market: Market
    state: dict[str, list[tuple[Any, ...]]]
    exit: tuple[int, float]
    collector_health: tuple[str, dict[str, Any]] | None

    @property
    def end_ms(self) -> int:
        return self.market.minute(END_MINUTE)


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory, loop_thread: LoopThread) -> Reference:
    """The platform trading the replay without any fault, as fast as it reads (speed 0, the tape
    once), up to END_MINUTE, then stopped with SIGTERM."""
    m = market()
    run = PlatformRun(Path(tmp_path_factory.mktemp("reference")), "reference", m, loop_thread, speed=0,
                      redis_url=REDIS_URL, loop_tape=False)
    try:
        run.start()
        run.wait_processed(m.minute(END_MINUTE), 120)
        exit_ = run.terminate()
        return Reference(m, run.bot_state(m.minute(END_MINUTE)), exit_,
                         run.health(f"collector.okx.{SYMBOL}"))
    finally:
        run.close()
