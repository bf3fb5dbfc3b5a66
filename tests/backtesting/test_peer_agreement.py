"""Our trades equal those recorded from backtesting.py and vectorbt on the same real candles.

The peers' output was recorded by ``benchmarks/bench_backtest.py --record-peers`` (tests/fixtures/README.md):
the SMA crossover, fee 0.1% per fill, all equity, fills at the next open, cash 10,000; long/short
stops and reverses on every opposite crossover. Two data sets: SMA(10)/SMA(30) on 70,499 OKX 5m
candles (each open is the last close) and SMA(5)/SMA(20) on 1,318 Coinbase daily candles whose opens
gap from the last close, where only sizing at the fill, as both peers do, gives their equity. The peers
are dev-only, so the test compares with their recorded trades instead of running them.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from backtesting.data import CandleData
from backtesting.runner import Prepared, run_backtest
from backtesting.spec import BacktestSpec
from tests.backtesting.builders import FIXTURES, coinbase_1d, make_bot, okx_5m


@dataclass(frozen=True)
class Recorded:
    candles: Callable[[], CandleData]
    params: dict[str, int]
    timeframe: str
    fixture: str
    closed: dict[str, int]  # closed trades per mode

    def runs(self) -> dict:
        return json.loads(gzip.open(FIXTURES / self.fixture, "rt").read())["runs"]


SETS = {
    "okx_5m": Recorded(okx_5m, {"fast": 10, "slow": 30}, "5m", "bt_peer_trades_sma10_30_okx_5m.json.gz",
                       {"long_only": 1_499, "long_short": 2_998}),
    "coinbase_1d": Recorded(coinbase_1d, {"fast": 5, "slow": 20}, "1d", "bt_peer_trades_sma5_20_coinbase_1d.json.gz",
                            {"long_only": 35, "long_short": 69}),
}
CASES = [(data_set, size_at) for data_set in SETS for size_at in ("signal_close", "fill")
         if not (data_set == "coinbase_1d" and size_at == "signal_close")]  # that one differs: test below


def run(data_set: str, mode: str, path: str, size_at: str):  # type: ignore[no-untyped-def]
    recorded = SETS[data_set]
    bot = make_bot(params=recorded.params, timeframe=recorded.timeframe, fee=0.001, cash=10_000.0,
                   allow_short=mode == "long_short", size_at=size_at)
    result = run_backtest(BacktestSpec(bot=bot, path=path), Prepared(recorded.candles(), 0))
    assert result.path == path
    return result


@pytest.mark.parametrize("mode", ["long_only", "long_short"])
@pytest.mark.parametrize("path", ["vectorised", "bar"])
@pytest.mark.parametrize(("data_set", "size_at"), CASES)
def test_trades_and_final_equity_agree_with_backtesting_py_and_vectorbt(data_set: str, size_at: str, mode: str,
                                                                        path: str) -> None:
    result = run(data_set, mode, path, size_at)
    records = result.trades.records()
    ours = [t for t in records if t.exit_bar is not None]
    assert len(ours) == SETS[data_set].closed[mode]
    if mode == "long_short":  # every trade after the first is entered by a stop-and-reverse
        assert all(a.exit_bar == b.entry_bar and a.side != b.side for a, b in zip(records, records[1:], strict=False))
    runs = SETS[data_set].runs()
    for engine, recorded in runs[mode].items():
        closed = [t for t in recorded["trades"] if t[2] is not None]
        assert len(closed) == len(ours), engine
        for mine, (side, entry_bar, exit_bar, entry_price, exit_price, _size) in zip(ours, closed, strict=True):
            assert (mine.side, mine.entry_bar, mine.exit_bar) == (side, entry_bar, exit_bar), engine
            assert mine.entry_price == pytest.approx(entry_price, rel=1e-12), engine
            assert mine.exit_price == pytest.approx(exit_price, rel=1e-12), engine
        # The acceptance point: final equity within 0.01% of each peer.
        assert abs(result.final_equity / recorded["final_equity"] - 1) < 1e-4, engine
    vectorbt = runs[mode]["vectorbt"]
    backtesting_py = runs[mode]["backtesting.py"]
    if path == "vectorised":  # float64 money and unrounded sizes, like vectorbt
        assert result.final_equity == pytest.approx(vectorbt["final_equity"], rel=1e-9)
    else:  # sizes floored to 1e-8 BTC like backtesting.py's FractionalBacktest; money exact to 1e-8
        assert result.final_equity == pytest.approx(backtesting_py["final_equity"], rel=1e-6)
    if mode == "long_short" and records[-1].exit_bar is None:  # the last reversal still open, in vectorbt's too
        side, entry_bar, exit_bar, entry_price, _, _ = vectorbt["trades"][-1]
        assert exit_bar is None
        assert (records[-1].side, records[-1].entry_bar) == (side, entry_bar)
        assert records[-1].entry_price == pytest.approx(entry_price, rel=1e-12)


@pytest.mark.parametrize("mode", ["long_only", "long_short"])
def test_on_gapping_opens_sizing_at_the_signal_close_trades_alike_but_ends_apart_from_the_peers(mode: str) -> None:
    """Why ``size_at: fill`` exists: the peers spend all equity at the fill; sized at the close the
    same trades buy a different quantity whenever the open gaps down by more than the fee."""
    result = run("coinbase_1d", mode, "vectorised", "signal_close")
    ours = [t for t in result.trades.records() if t.exit_bar is not None]
    vectorbt = SETS["coinbase_1d"].runs()[mode]["vectorbt"]
    closed = [t for t in vectorbt["trades"] if t[2] is not None]
    assert [(t.side, t.entry_bar, t.exit_bar) for t in ours] == [tuple(t[:3]) for t in closed]
    assert abs(result.final_equity / vectorbt["final_equity"] - 1) > 1e-4
