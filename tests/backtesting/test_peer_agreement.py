"""Our trades equal those recorded from backtesting.py and vectorbt on the same real candles.

The peers' output was recorded by ``benchmarks/bench_backtest.py --record-peers`` (tests/fixtures/README.md):
SMA(10)/SMA(30) on 70,499 OKX 5m candles, fee 0.1% per fill, all equity, fills at the next open,
cash 10,000; long/short stops and reverses on every opposite crossover. The peers are dev-only, so
the test compares with their recorded trades instead of running them.
"""

from __future__ import annotations

import gzip
import json

import pytest

from backtesting.runner import Prepared, run_backtest
from backtesting.spec import BacktestSpec
from tests.backtesting.builders import FIXTURES, make_bot, okx_5m

RECORDED = json.loads(gzip.open(FIXTURES / "bt_peer_trades_sma10_30_okx_5m.json.gz", "rt").read())
CLOSED_TRADES = {"long_only": 1_499, "long_short": 2_998}


@pytest.fixture(scope="module")
def candles():  # type: ignore[no-untyped-def]
    return okx_5m()


@pytest.mark.parametrize("mode", ["long_only", "long_short"])
@pytest.mark.parametrize("path", ["vectorised", "bar"])
def test_trades_and_final_equity_agree_with_backtesting_py_and_vectorbt(candles, mode: str, path: str) -> None:  # type: ignore[no-untyped-def]
    bot = make_bot(fee=0.001, cash=10_000.0, allow_short=mode == "long_short")
    result = run_backtest(BacktestSpec(bot=bot, path=path), Prepared(candles, 0))
    assert result.path == path
    records = result.trades.records()
    ours = [t for t in records if t.exit_bar is not None]
    assert len(ours) == CLOSED_TRADES[mode]
    if mode == "long_short":  # every trade after the first is entered by a stop-and-reverse
        assert all(a.exit_bar == b.entry_bar and a.side != b.side for a, b in zip(records, records[1:], strict=False))
    for engine, recorded in RECORDED["runs"][mode].items():
        closed = [t for t in recorded["trades"] if t[2] is not None]
        assert len(closed) == len(ours), engine
        for mine, (side, entry_bar, exit_bar, entry_price, exit_price, _size) in zip(ours, closed, strict=True):
            assert (mine.side, mine.entry_bar, mine.exit_bar) == (side, entry_bar, exit_bar), engine
            assert mine.entry_price == pytest.approx(entry_price, rel=1e-12), engine
            assert mine.exit_price == pytest.approx(exit_price, rel=1e-12), engine
        # The acceptance point: final equity within 0.01% of each peer.
        assert abs(result.final_equity / recorded["final_equity"] - 1) < 1e-4, engine
    vectorbt = RECORDED["runs"][mode]["vectorbt"]
    backtesting_py = RECORDED["runs"][mode]["backtesting.py"]
    if path == "vectorised":  # float64 money and unrounded sizes, like vectorbt
        assert result.final_equity == pytest.approx(vectorbt["final_equity"], rel=1e-9)
    else:  # sizes floored to 1e-8 BTC like backtesting.py's FractionalBacktest; money exact to 1e-8
        assert result.final_equity == pytest.approx(backtesting_py["final_equity"], rel=1e-6)
    if mode == "long_short":  # the last reversal is still open at the end, in vectorbt's list too
        side, entry_bar, exit_bar, entry_price, _, _ = vectorbt["trades"][-1]
        assert exit_bar is None and records[-1].exit_bar is None
        assert (records[-1].side, records[-1].entry_bar) == (side, entry_bar)
        assert records[-1].entry_price == pytest.approx(entry_price, rel=1e-12)
