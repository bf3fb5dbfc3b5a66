"""Dev-only: run the SMA crossover in backtesting.py and vectorbt and print their trades as JSON.

Run by benchmarks/bench_backtest.py in a separate process: PyPI's backtesting.py installs a
top-level package named ``backtesting``, which our own package shadows when the repository root is
on ``sys.path``. This script must therefore not import anything of ours (and is run from a working
directory outside the repository). Needs the ``bench`` extra: ``pip install -e '.[bench]'``.

Both peers get the same rule as our ``sma_cross``: BUY on the bar where SMA(fast) closes above
SMA(slow) after being at or below it, SELL on the mirror event. Long-only, BUY enters and SELL
exits; long/short, every signal stops and reverses (SELL while long closes the long and enters
short at the same open, BUY while short the mirror; from flat a signal just enters). Orders fill at
the next bar's open, fee on every fill, the whole equity per entry (fee included, after the exit of
a reversal), an open position stays open at the end.

Usage: ``python bench_backtest_peers.py CSV FAST SLOW FEE CASH {long_only,long_short} [grid]``, or
``python bench_backtest_peers.py export-goog CSV`` (backtesting.py's GOOG sample as candles).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import warnings

import numpy as np
import pandas as pd

ALL_IN = 1 - 1e-12  # backtesting.py reads sizes in (0, 1) as a share of available margin
REPEAT = int(os.environ.get("BENCH_REPEAT", "1"))  # timings are the median of this many runs


def median_seconds(fn):  # type: ignore[no-untyped-def]
    """Run ``fn`` REPEAT times; (its last result, the median wall time)."""
    times, result = [], None
    for _ in range(REPEAT):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return result, statistics.median(times)


def load(path: str) -> pd.DataFrame:
    frame = pd.read_csv(path)
    time_column = next(c for c in ("open_time", "ts_ms", "timestamp") if c in frame.columns)
    index = pd.to_datetime(frame[time_column], unit="ms", utc=True).dt.tz_localize(None)
    return pd.DataFrame({"Open": frame["open"].to_numpy(), "High": frame["high"].to_numpy(),
                         "Low": frame["low"].to_numpy(), "Close": frame["close"].to_numpy(),
                         "Volume": frame["volume"].to_numpy()}, index=index)


def crossings(close: pd.Series, fast: int, slow: int) -> tuple[pd.Series, pd.Series]:
    a, b = close.rolling(fast).mean(), close.rolling(slow).mean()
    up = (a > b) & (a.shift() <= b.shift())
    down = (a < b) & (a.shift() >= b.shift())
    return up, down


def run_backtesting_py(data: pd.DataFrame, fast: int, slow: int, fee: float, cash: float, short: bool) -> dict:
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest

    class SmaCross(Strategy):
        def init(self) -> None:
            close = pd.Series(self.data.Close)
            up, down = crossings(close, fast, slow)
            self.up = self.I(lambda: up.to_numpy(), name="up", plot=False)
            self.down = self.I(lambda: down.to_numpy(), name="down", plot=False)

        def next(self) -> None:
            # Orders fill at the next open in this order: the close first, then the new entry,
            # sized on the margin available once the close has filled.
            if self.up[-1] and not self.position.is_long:
                if self.position.is_short:
                    self.position.close()
                self.buy(size=ALL_IN)
            elif self.down[-1] and not self.position.is_short:
                if self.position.is_long:
                    self.position.close()
                if short:
                    self.sell(size=ALL_IN)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test = FractionalBacktest(data, SmaCross, cash=cash, commission=fee, trade_on_close=False,
                                  exclusive_orders=False, finalize_trades=False)
        stats, seconds = median_seconds(test.run)
    trades = stats["_trades"]
    rows = [{"side": "long" if size > 0 else "short", "entry_bar": int(eb), "exit_bar": int(xb),
             "entry_price": float(ep), "exit_price": float(xp), "size": abs(float(size))}
            for size, eb, xb, ep, xp in zip(trades["Size"], trades["EntryBar"], trades["ExitBar"],
                                            trades["EntryPrice"], trades["ExitPrice"], strict=True)]
    return {"engine": "backtesting.py", "trades": rows, "final_equity": float(stats["Equity Final [$]"]),
            "seconds": seconds}


def run_vectorbt(data: pd.DataFrame, fast: int, slow: int, fee: float, cash: float, short: bool) -> dict:
    def backtest(frame: pd.DataFrame) -> tuple[object, float]:
        import vectorbt as vbt

        up, down = crossings(frame["Close"], fast, slow)
        buy, sell = up.shift(1, fill_value=False), down.shift(1, fill_value=False)  # act at the next open
        # Long/short: an entry against the position reverses it (close, then all the cash the other way).
        exits = None if short else sell
        portfolio = vbt.Portfolio.from_signals(
            frame["Close"], entries=buy, exits=exits, short_entries=sell if short else None,
            price=frame["Open"], fees=fee, init_cash=cash, size=np.inf, upon_opposite_entry="reverse",
            freq="5min")
        return portfolio, float(portfolio.final_value())

    backtest(data.iloc[:1_000])  # numba compiles on first use: not part of the timing
    (portfolio, final), seconds = median_seconds(lambda: backtest(data))
    records = portfolio.trades.records  # type: ignore[attr-defined]
    rows = [{"side": "long" if d == 0 else "short", "entry_bar": int(e), "exit_bar": int(x) if s == 1 else None,
             "entry_price": float(ep), "exit_price": float(xp) if s == 1 else None, "size": float(sz)}
            for d, e, x, s, ep, xp, sz in zip(records["direction"], records["entry_idx"], records["exit_idx"],
                                              records["status"], records["entry_price"], records["exit_price"],
                                              records["size"], strict=True)]
    return {"engine": "vectorbt", "trades": rows, "final_equity": final, "seconds": seconds}


def grid_vectorbt(data: pd.DataFrame, fasts: list[int], slows: list[int], fee: float, cash: float) -> dict:
    """The same crossover over every (fast, slow) pair in one broadcast vectorbt portfolio."""
    import vectorbt as vbt

    warm = data.iloc[:1_000]
    vbt.Portfolio.from_signals(warm["Close"], warm["Close"] > 0, warm["Close"] < 0, price=warm["Open"], fees=fee,
                               init_cash=cash, size=np.inf, freq="1min").sharpe_ratio()  # numba warm-up
    started = time.perf_counter()
    close = data["Close"]
    pairs = [(f, s) for f in fasts for s in slows]
    means = {p: close.rolling(p).mean() for p in sorted({*fasts, *slows})}
    ups, downs = {}, {}
    for f, s in pairs:
        a, b = means[f], means[s]
        ups[(f, s)] = ((a > b) & (a.shift() <= b.shift())).shift(1, fill_value=False)
        downs[(f, s)] = ((a < b) & (a.shift() >= b.shift())).shift(1, fill_value=False)
    entries, exits = pd.DataFrame(ups), pd.DataFrame(downs)
    portfolio = vbt.Portfolio.from_signals(close, entries, exits, price=data["Open"], fees=fee, init_cash=cash,
                                           size=np.inf, freq="1min")
    sharpe = portfolio.sharpe_ratio()
    seconds = time.perf_counter() - started
    return {"engine": "vectorbt", "combinations": len(pairs), "seconds": seconds, "best": str(sharpe.idxmax())}


def export_goog(path: str) -> None:
    """Write backtesting.py's bundled GOOG daily sample (2004-2013) as a candle CSV (dev-only data)."""
    from backtesting.test import GOOG

    times = (GOOG.index - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)
    pd.DataFrame({"ts_ms": times, "open": GOOG["Open"].to_numpy(), "high": GOOG["High"].to_numpy(),
                  "low": GOOG["Low"].to_numpy(), "close": GOOG["Close"].to_numpy(),
                  "volume": GOOG["Volume"].to_numpy()}).to_csv(path, index=False)
    print(json.dumps({"bars": len(GOOG)}))


def main() -> None:
    if sys.argv[1] == "export-goog":
        export_goog(sys.argv[2])
        return
    path, fast, slow, fee, cash, mode = sys.argv[1:7]
    data = load(path)
    if len(sys.argv) > 7 and sys.argv[7] == "grid":
        fasts = list(range(int(fast), int(fast) + 20))
        slows = list(range(int(slow), int(slow) + 20 * 5, 5))
        print(json.dumps(grid_vectorbt(data, fasts, slows, float(fee), float(cash))))
        return
    short = mode == "long_short"
    results = [run(data, int(fast), int(slow), float(fee), float(cash), short)
               for run in (run_backtesting_py, run_vectorbt)]
    print(json.dumps({"bars": len(data), "results": results}))


if __name__ == "__main__":
    main()
