"""Candle reads: the newest 1000 candles of one market out of a 5M-row ``candles`` table.

    .venv/bin/python benchmarks/bench_candle_reads.py              # 5M rows, 2000 calls per variant
    .venv/bin/python benchmarks/bench_candle_reads.py --rows 1000000 --calls 500   # quicker

A scratch database is created on the local PostgreSQL (``BENCH_PG_ADMIN_URL``), migrated to head and
filled with one ``INSERT … SELECT generate_series`` (5 markets of 1m candles, 1M each by default, in
key order, then ``ANALYZE``), then dropped. Every variant reads the same 1000 rows of one market and
is timed the same way: ``N`` calls on one open connection / session after 20 warm-up calls, p50 and
p99 of the per-call wall time.

Reference: psycopg 3 (binary protocol, ``cursor(binary=True)``) fetching the same rows as tuples, the
fastest plain way to get rows into Python; ratio = ours / reference (lower is better).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_dashboard import create_database, drop_database  # noqa: E402

from config.domain import Timeframe  # noqa: E402
from database.engine import make_engine, make_session_factory  # noqa: E402
from database.repositories import market  # noqa: E402

MARKETS = 5
LAST = 1000
START_MS = 1_500_000_000_000 - 1_500_000_000_000 % 60_000
REFERENCE_SQL = (
    "SELECT open_time, open, high, low, close, volume, quote_volume, buy_volume, trade_count FROM candles "
    "WHERE exchange = %s AND symbol = %s AND timeframe = %s ORDER BY open_time DESC LIMIT %s"
)


def fill(url: str, rows: int) -> float:
    """``rows`` 1m candles over MARKETS symbols (a random walk per market), in key order."""
    per_market = rows // MARKETS
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO candles (exchange, symbol, timeframe, open_time, open, high, low, close, volume, "
            "quote_volume, buy_volume, trade_count) "
            "SELECT 'okx', 'SYM' || m || '-USDT', '1m', to_timestamp((%s::int8 + i::int8 * 60000) / 1000.0), "
            "p, p + 2, p - 2, p + 1, 1 + (i %% 97), 30000 * (1 + (i %% 97)), 0.5 * (1 + (i %% 97)), 10 + i %% 50 "
            "FROM generate_series(0, %s - 1) AS m, generate_series(0, %s - 1) AS i, "
            "LATERAL (SELECT 30000 + 500 * sin(i / 5000.0) + m AS p) AS price",
            (START_MS, MARKETS, per_market),
        )
        conn.execute("VACUUM ANALYZE candles")
    return time.perf_counter() - started


def timed(call: Callable[[], object], calls: int) -> tuple[float, float]:
    for _ in range(20):
        call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]


def explain(url: str) -> str:
    with psycopg.connect(url) as conn:
        rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + REFERENCE_SQL,
                            ("okx", "SYM2-USDT", "1m", LAST)).fetchall()
    return "\n".join("    " + r[0] for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs")
    url = create_database()
    try:
        seconds = fill(url, args.rows)
        print(f"filled {args.rows:,} candles ({MARKETS} markets) in {seconds:.1f} s; "
              f"read: the newest {LAST} of okx SYM2-USDT 1m; {args.calls} calls per variant")
        print("plan of the reference query:\n" + explain(url))
        engine = make_engine(url)
        session = make_session_factory(engine)()
        reference_conn = psycopg.connect(url)
        reference_cur = reference_conn.cursor(binary=True)

        def reference() -> list[tuple[object, ...]]:
            reference_cur.execute(REFERENCE_SQL, ("okx", "SYM2-USDT", "1m", LAST))
            return reference_cur.fetchall()

        ref = timed(reference, args.calls)
        candles = market.get_candles(session, "okx", "SYM2-USDT", Timeframe.M1, limit=LAST)
        assert len(candles) == LAST and candles[0].open_time_ms < candles[-1].open_time_ms
        assert [c.close for c in candles] == [float(r[4]) for r in reversed(reference())]
        variants: list[tuple[str, Callable[[], object]]] = [
            ("get_candles(limit=1000) -> list[Candle]",
             lambda: market.get_candles(session, "okx", "SYM2-USDT", Timeframe.M1, limit=LAST)),
        ]
        arrays = market.candle_arrays(session, "okx", "SYM2-USDT", Timeframe.M1, limit=LAST)
        assert list(arrays["close"]) == [c.close for c in candles]
        variants.append(("candle_arrays(limit=1000) -> numpy",
                         lambda: market.candle_arrays(session, "okx", "SYM2-USDT", Timeframe.M1, limit=LAST)))
        print(f"\n{'what':44s} {'project p50 / p99':>22s} | {'psycopg3 binary p50 / p99':>26s} | ratio p50 / p99")
        for label, call in variants:
            ours = timed(call, args.calls)
            print(f"{label:44s} {ours[0]:8.3f} / {ours[1]:7.3f} ms | {ref[0]:10.3f} / {ref[1]:7.3f} ms |"
                  f" {ours[0] / ref[0]:5.2f} / {ours[1] / ref[1]:5.2f}")
        session.close()
        engine.dispose()
        reference_conn.close()
    finally:
        drop_database(url)
    print("\ngoal: p50 <= 1 ms, p99 <= 5 ms from the repository API the dashboard uses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
