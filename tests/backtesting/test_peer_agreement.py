"""Our trades equal those recorded from backtesting.py and vectorbt on the same real candles.

The peers' output was recorded by benchmarks/bench_backtest_peers.py (tests/fixtures/README.md):
SMA(10)/SMA(30) on 70,499 OKX 5m candles, fee 0.1% per fill, all equity, fills at the next open.
The peers are dev-only, so the test compares with their recorded trades instead of running them.
"""

from __future__ import annotations

import gzip
import json

import pytest

from backtesting.runner import Prepared, run_backtest
from backtesting.spec import BacktestSpec
from tests.backtesting.builders import FIXTURES, make_bot, okx_5m

RECORDED = json.loads(gzip.open(FIXTURES / "bt_peer_trades_sma10_30_okx_5m.json.gz", "rt").read())


@pytest.fixture(scope="module")
def candles():  # type: ignore[no-untyped-def]
    return okx_5m()


@pytest.mark.parametrize("mode", ["long_only", "long_short"])
@pytest.mark.parametrize("path", ["vectorised", "bar"])
def test_trades_and_final_equity_agree_with_backtesting_py_and_vectorbt(candles, mode: str, path: str) -> None:  # type: ignore[no-untyped-def]
    bot = make_bot(fee=0.001, cash=10_000.0, allow_short=mode == "long_short")
    result = run_backtest(BacktestSpec(bot=bot, path=path), Prepared(candles, 0))
    ours = [t for t in result.trades.records() if t.exit_bar is not None]
    assert len(ours) == 1_499
    for engine, recorded in RECORDED["runs"][mode].items():
        closed = [t for t in recorded["trades"] if t[2] is not None]
        assert len(closed) == len(ours), engine
        for mine, (side, entry_bar, exit_bar, entry_price, exit_price, _size) in zip(ours, closed, strict=True):
            assert (mine.side, mine.entry_bar, mine.exit_bar) == (side, entry_bar, exit_bar), engine
            assert mine.entry_price == pytest.approx(entry_price, rel=1e-12), engine
            assert mine.exit_price == pytest.approx(exit_price, rel=1e-12), engine
    vectorbt = RECORDED["runs"][mode]["vectorbt"]["final_equity"]
    if path == "vectorised":  # float64 money, like vectorbt
        assert result.final_equity == pytest.approx(vectorbt, rel=1e-9)
    else:  # the broker rounds every fill to the cent: at most a cent per fill (3,000 fills here)
        assert abs(result.final_equity - vectorbt) <= 0.01 * 2 * len(ours)
        assert result.final_equity == pytest.approx(vectorbt, rel=2e-4)
