"""Backtest engine: peer agreement and speed, side by side with backtesting.py and vectorbt.

1. **Peer agreement**: the SMA crossover on the real OKX BTC-USDT-SWAP 5m fixture (70,499 bars), on
   real Coinbase BTC-USD daily bars whose opens gap from the previous close, and on backtesting.py's
   GOOG daily sample; long-only and long/short, all equity per entry, fills at the next open, our
   entries sized at the signal close and at the fill: our trades (entry/exit bars and prices)
   against backtesting.py's and vectorbt's, final equity.
2. **One backtest of 1M 1m candles** (SMA crossover): bars/s of our vectorised path and of the
   bar-by-bar path through the full PaperBroker, beside vectorbt on the same candles.
3. **A 400-combination grid** (fast x slow) on 100k candles: our optimisation job (all cores,
   every trial stored in SQLite) beside vectorbt's broadcast portfolio.
4. **Loading 1M candles from PostgreSQL** into the engine (binary COPY) beside the row-by-row fetch.

Needs the ``bench`` extra (``pip install -e '.[bench]'``) and PostgreSQL for part 4.
Run: ``.venv/bin/python benchmarks/bench_backtest.py [--skip-postgres] [--rows 1000000]``;
``--record-peers`` only rewrites the peers' trades fixture that tests/backtesting/test_peer_agreement.py
compares with (tests/fixtures/bt_peer_trades_*.json.gz).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from backtesting.data import CandleData, read_csv_candles  # noqa: E402
from backtesting.engine import run_bars  # noqa: E402
from backtesting.runner import Prepared, compute_signals, make_strategy, run_backtest  # noqa: E402
from backtesting.spec import BacktestSpec, build_bot_config  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "bt_okx_BTC-USDT-SWAP_5m_2022-05-01_2022-12-31.csv.gz"
PEERS = Path(__file__).resolve().parent / "bench_backtest_peers.py"
PEER_FIXTURE = ROOT / "tests" / "fixtures" / "bt_peer_trades_sma10_30_okx_5m.json.gz"
COINBASE_1D = ROOT / "tests" / "fixtures" / "bt_coinbase_BTC-USD_1d_2014-12-01_2018-08-13.csv.gz"
PEER_FIXTURE_1D = ROOT / "tests" / "fixtures" / "bt_peer_trades_sma5_20_coinbase_1d.json.gz"
MODES = ("long_only", "long_short")
DAY_MS = 86_400_000


def peers(*args: str) -> dict:
    """Run the peer script outside the repository (PyPI's ``backtesting`` must not be shadowed)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"BENCH_REPEAT": str(REPEAT)}
    done = subprocess.run([sys.executable, str(PEERS), *args], cwd=tempfile.gettempdir(), env=env,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"peer script failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def random_walk(n: int, seed: int = 42) -> CandleData:
    rng = np.random.default_rng(seed)
    close = np.round(30_000 * np.exp(np.cumsum(rng.normal(0, 0.0008, n))), 1)
    open_ = np.concatenate([[close[0]], close[:-1]])
    wick = np.round(np.abs(rng.normal(0, 0.0004, n)) * close, 1)
    start = 1_600_000_000_000 - 1_600_000_000_000 % DAY_MS
    return CandleData(start + np.arange(n, dtype=np.int64) * 60_000, open_, np.maximum(open_, close) + wick,
                      np.minimum(open_, close) - wick, close, np.round(rng.uniform(1, 50, n), 3), "random walk")


def write_csv(data: CandleData, path: Path) -> Path:
    data.frame().to_csv(path, index=False)
    return path


REPEAT = 3  # every engine, ours and the peers alike: the median wall time of this many runs


def median_of(repeat: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# ------------------------------------------------------------------------------------- 1. peers

@dataclass(frozen=True)
class PeerSet:
    """A data set the peers and we run the same SMA crossover on."""

    label: str
    csv: Path | None  # None: backtesting.py's GOOG sample, exported by the peer script (dev-only data)
    symbol: str
    timeframe: str
    fast: int
    slow: int
    fee: float
    fixture: Path | None  # where --record-peers writes the peers' trades (None: not recorded)


PEER_SETS = (
    PeerSet("OKX BTC-USDT-SWAP 5m (70,499 bars)", FIXTURE, "BTC-USDT-SWAP", "5m", 10, 30, 0.001, PEER_FIXTURE),
    PeerSet("Coinbase BTC-USD 1d with overnight gaps (1,318 bars)", COINBASE_1D, "BTC-USD", "1d", 5, 20, 0.001,
            PEER_FIXTURE_1D),
    PeerSet("backtesting.py's GOOG 1d sample (2,148 bars)", None, "GOOG-USD", "1d", 10, 20, 0.002, None),
)


def peer_csv(peer_set: PeerSet, workdir: Path) -> Path:
    if peer_set.csv is not None:
        return peer_set.csv
    path = workdir / "goog_1d.csv"
    if not path.exists():
        peers("export-goog", str(path))
    return path


def peer_agreement(peer_set: PeerSet, cash: float, workdir: Path) -> None:
    print(f"\n== Peer agreement: SMA({peer_set.fast})/SMA({peer_set.slow}), {peer_set.label}, fee {peer_set.fee:.1%}, "
          f"100% equity, next-open fills, cash {cash:,.0f}")
    csv = peer_csv(peer_set, workdir)
    data = read_csv_candles(csv)
    for mode in MODES:
        theirs = peers(str(csv), str(peer_set.fast), str(peer_set.slow), repr(peer_set.fee), str(cash), mode)["results"]
        vectorbt_final = next(r["final_equity"] for r in theirs if r["engine"] == "vectorbt")
        rows = []
        for size_at in ("signal_close", "fill"):
            bot = build_bot_config("sma_cross", {"fast": peer_set.fast, "slow": peer_set.slow},
                                   symbol=peer_set.symbol, timeframe=peer_set.timeframe, cash=cash, fee=peer_set.fee,
                                   allow_short=mode == "long_short", size_at=size_at)
            for path in ("vectorised", "bar"):
                result = run_backtest(BacktestSpec(bot=bot, path=path), Prepared(data, 0))
                rows.append((f"ours, {path}, sized at {size_at}", [t.to_json() for t in result.trades.records()],
                             result.final_equity))
        rows += [(r["engine"], r["trades"], r["final_equity"]) for r in theirs]
        reference = [t for t in rows[-1][1] if t["exit_bar"] is not None]  # vectorbt's closed trades
        print(f"-- {mode}: vectorbt closes {len(reference)} trades")
        print(f"   {'engine':<38}{'closed trades':>14}{'same bars+prices':>18}{'final equity':>18}{'vs vectorbt':>13}")
        for name, trades, final in rows:
            closed = [t for t in trades if t["exit_bar"] is not None]
            change = (final / vectorbt_final - 1) * 100
            print(f"   {name:<38}{len(closed):>14}{str(_same_trades(reference, closed)):>18}{final:>18.6f}"
                  f"{change:>12.5f}%")


def record_peers() -> None:
    """Rewrite the fixtures of the peers' trades at cash 10,000 (what the peer-agreement test reads)."""
    for peer_set in PEER_SETS:
        if peer_set.fixture is None or peer_set.csv is None:
            continue
        runs = {}
        for mode in MODES:
            results = peers(str(peer_set.csv), str(peer_set.fast), str(peer_set.slow), repr(peer_set.fee), "10000",
                            mode)["results"]
            runs[mode] = {r["engine"]: {"final_equity": r["final_equity"], "trades": [
                [t["side"], t["entry_bar"], t["exit_bar"], t["entry_price"], t["exit_price"], t["size"]]
                for t in r["trades"]]} for r in results}
        document = {
            "source": f"benchmarks/bench_backtest_peers.py on {peer_set.csv.name}",
            "rule": f"SMA({peer_set.fast})/SMA({peer_set.slow}) crossover, fee {peer_set.fee} per fill, cash 10000, "
                    "all equity, next-open fills; long_short stops and reverses on every opposite signal",
            "versions": {"backtesting.py": version("backtesting"), "vectorbt": version("vectorbt")},
            "runs": runs,
        }
        with gzip.GzipFile(peer_set.fixture, "wb", mtime=0) as out:
            out.write(json.dumps(document).encode())
        print(f"wrote {peer_set.fixture} ({', '.join(f'{m}: {len(r)} engines' for m, r in runs.items())})")


def _same_trades(reference: list[dict], trades: list[dict]) -> bool:
    """Same bars and sides; prices equal to 12 significant digits (backtesting.py scales prices by
    1e-8 and back for fractional sizes, vectorbt stores an average price: the last bits differ)."""
    if len(reference) != len(trades):
        return False
    for ours, other in zip(reference, trades, strict=True):
        if any(ours[key] != other[key] for key in ("entry_bar", "exit_bar", "side")):
            return False
        for key in ("entry_price", "exit_price"):
            if abs(ours[key] - other[key]) > 1e-12 * abs(ours[key]):
                return False
    return True


# ------------------------------------------------------------------------------------- 2. speed

def one_backtest(rows: int, workdir: Path, fee: float) -> None:
    print(f"\n== One SMA(10)/SMA(30) backtest on {rows:,} 1m candles (random walk), fee {fee:.1%} per fill, "
          f"all equity per entry, compounding; wall time, median of {REPEAT}")
    data = random_walk(rows)
    bot = build_bot_config("sma_cross", {"fast": 10, "slow": 30}, symbol="BTC-USDT", timeframe="1m", fee=fee)
    spec = BacktestSpec(bot=bot, path="vectorised")
    prepared = Prepared(data, 0)
    fast = median_of(REPEAT, lambda: run_backtest(spec, prepared))
    strategy = make_strategy(spec)
    signals = compute_signals(strategy, data)
    loop = median_of(REPEAT, lambda: run_bars(bot, strategy, data, signals))
    bar_spec = spec.model_copy(update={"path": "bar"})
    full_bar = median_of(REPEAT, lambda: run_backtest(bar_spec, prepared))
    vec_result, bar_result = run_backtest(spec, prepared), run_backtest(bar_spec, prepared)
    csv = write_csv(data, workdir / "walk_1m.csv")
    results = peers(str(csv), "10", "30", repr(fee), "10000", "long_only")["results"]
    vbt = next(r for r in results if r["engine"] == "vectorbt")
    bt = next(r for r in results if r["engine"] == "backtesting.py")
    blocked = bar_result.events.get("entry_blocked", 0)
    print(f"   trades: ours {len(vec_result.trades):,} (vectorised) = {len(bar_result.trades):,} (bar), "
          f"vectorbt {len(vbt['trades']):,}, backtesting.py {len(bt['trades']):,}; final equity ours "
          f"{vec_result.final_equity:,.6g} / {bar_result.final_equity:,.6g}, vectorbt {vbt['final_equity']:,.6g}"
          + (f"; entries skipped as below our 1 USDT minimum order (the peers have none, they trade on): "
             f"{blocked:,}" if blocked else ""))
    print(f"   {'engine':58s} {'ours':>13s} {'reference':>13s} {'ratio':>6s}")
    for label, ours_s, ref_s in (
            ("vectorised (signals + trades + equity + metrics) | vectorbt", fast, vbt["seconds"]),
            ("bar-by-bar through PaperBroker, loop only | backtesting.py", loop, bt["seconds"]),
            ("bar-by-bar, whole backtest | backtesting.py", full_bar, bt["seconds"])):
        print(f"   {label:58s} {rows / ours_s / 1e3:8,.0f} kb/s {rows / ref_s / 1e3:8,.0f} kb/s "
              f"{ref_s / ours_s:6.2f}")
    print("   (kb/s: thousand bars per second; ratio > 1: ours faster)")


def peak_memory(rows: int) -> None:
    """Peak RSS of one whole backtest of ``rows`` bars on each path, a fresh process each."""
    print(f"\n== Peak memory, one backtest of {rows:,} 1m candles (fee 0.1%), fresh process per path")
    for path in ("vectorised", "bar"):
        out = subprocess.run([sys.executable, __file__, "--peak-child", path, "--peak-rows", str(rows)],
                             capture_output=True, text=True, check=True).stdout
        before, after = (int(x) / 1024 for x in out.split())
        print(f"   {path:10s} path: peak {after:,.0f} MiB (candles and interpreter alone: {before:,.0f} MiB)")


def peak_child(path: str, rows: int) -> None:
    data = random_walk(rows)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bot = build_bot_config("sma_cross", {"fast": 10, "slow": 30}, symbol="BTC-USDT", timeframe="1m", fee=0.001)
    run_backtest(BacktestSpec(bot=bot, path=path), Prepared(data, 0))  # type: ignore[arg-type]
    print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def grid(workdir: Path) -> None:
    from backtesting.jobs import run_inline
    from backtesting.optimise import create_optimisation_run
    from backtesting.search import OptimisationSpec
    from database.engine import make_engine, make_session_factory, session_scope
    from database.migrate import upgrade
    from database.repositories.runs import RunStatus

    rows = 100_000
    print(f"\n== Grid of 400 (fast 10..29 x slow 50..145 step 5) on {rows:,} 1m candles, objective Sharpe")
    data = random_walk(rows, seed=7)
    csv = write_csv(data, workdir / "walk_100k.csv")
    url = f"sqlite:///{workdir / 'grid.db'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    bot = build_bot_config("sma_cross", {}, symbol="BTC-USDT", timeframe="1m", fee=0.001)
    spec = BacktestSpec(bot=bot, data_file=str(csv))
    search = OptimisationSpec(method="grid", grid={"fast": list(range(10, 30)), "slow": list(range(50, 150, 5))})
    with session_scope(factory) as session:
        run_id = create_optimisation_run(session, spec, search, status=RunStatus.RUNNING)
    started = time.perf_counter()
    run_inline(factory, run_id)
    ours = time.perf_counter() - started
    from backtesting.service import BacktestService

    service = BacktestService(url, local_workers=0)
    view = service.get_run(run_id)
    service.close()
    engine.dispose()
    assert view is not None and view.status == "done", view
    print(f"   ours: {ours:.2f} s on {search.pool_size} processes, 400 trials stored as runs "
          f"(best {view.metrics['best_params']})")
    vbt = peers(str(csv), "10", "50", "0.001", "10000", "long_only", "grid")
    print(f"   vectorbt: {vbt['seconds']:.2f} s, one process, {vbt['combinations']} columns broadcast "
          f"(best {vbt['best']})")


# ------------------------------------------------------------------------------------- 4. loading

def postgres_load(rows: int) -> None:
    from sqlalchemy import select

    from backtesting.data import load_db_candles
    from config.domain import Candle, Timeframe, datetime_to_ms, ms_to_datetime
    from database.engine import make_engine, make_session_factory, session_scope
    from database.migrate import upgrade
    from database.models import CandleRow
    from database.repositories.market import upsert_candles
    from tests.conftest import create_pg_database, drop_pg_database

    print(f"\n== Loading {rows:,} 1m candles from PostgreSQL into the engine")
    url = create_pg_database("tcp_bench_bt")
    try:
        upgrade(url)
        engine = make_engine(url)
        factory = make_session_factory(engine)
        data = random_walk(rows, seed=3)
        for start in range(0, rows, 200_000):
            part = data.slice(start, start + 200_000)
            columns = (part.open_time, part.open, part.high, part.low, part.close, part.volume)
            candles = [Candle("okx", "BTC-USDT", Timeframe.M1, int(t), o, h, lo, c, v)
                       for t, o, h, lo, c, v in zip(*(col.tolist() for col in columns), strict=True)]
            with session_scope(factory) as session:
                upsert_candles(session, candles)
        first, end = int(data.open_time[0]), int(data.open_time[-1]) + 60_000

        def ours() -> None:
            with session_scope(factory) as session:
                loaded, _ = load_db_candles(session, "okx", "BTC-USDT", Timeframe.M1, first, end)
            assert len(loaded) == rows

        def row_by_row() -> None:  # what load_candles_frame did before (ORM rows, one conversion each)
            t = CandleRow.__table__
            with session_scope(factory) as session:
                result = session.execute(select(t.c.open_time, t.c.open, t.c.high, t.c.low, t.c.close, t.c.volume)
                                         .where(t.c.symbol == "BTC-USDT", t.c.open_time >= ms_to_datetime(first))
                                         .order_by(t.c.open_time)).all()
                times = [datetime_to_ms(r[0]) for r in result]
            assert len(times) == rows

        print(f"   ours (binary COPY -> numpy -> validated CandleData): {median_of(REPEAT, ours):.3f} s")
        print(f"   reference, rows through SQLAlchemy + per-row time conversion: {median_of(REPEAT, row_by_row):.3f} s")
        engine.dispose()
    finally:
        drop_pg_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--peak-rows", type=int, default=5_000_000, help="bars of the peak-memory run")
    parser.add_argument("--peak-child", choices=("vectorised", "bar"), help=argparse.SUPPRESS)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--record-peers", action="store_true", help="only rewrite the peer trades fixture")
    args = parser.parse_args()
    if args.peak_child:
        peak_child(args.peak_child, args.peak_rows)
        return
    if args.record_peers:
        record_peers()
        return
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}  numpy: {np.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for peer_set in PEER_SETS:
            peer_agreement(peer_set, 10_000.0, workdir)
        peer_agreement(PEER_SETS[0], 1_000_000.0, workdir)
        one_backtest(args.rows, workdir, fee=0.0)
        one_backtest(args.rows, workdir, fee=0.001)
        peak_memory(args.peak_rows)
        grid(workdir)
        if not args.skip_postgres:
            postgres_load(args.rows)


if __name__ == "__main__":
    main()
