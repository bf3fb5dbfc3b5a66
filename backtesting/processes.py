"""Where job and trial processes come from: a ``forkserver`` with our modules preloaded.

Children fork from a clean server process (no threads of the parent, no open database
connections) that imported the backtest modules once, so each start costs milliseconds.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import ForkServerContext

PRELOAD = ["backtesting.jobs", "backtesting.optimise", "backtesting.search"]


def process_context() -> ForkServerContext:
    """The ``forkserver`` context every job and trial process is started from."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context
