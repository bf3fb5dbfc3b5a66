"""Candle and trade writes to PostgreSQL as idempotent batched upserts, rows/s.

Ours (database/repositories/market.py: rows sorted by key, one binary ``COPY`` built from numpy
arrays into a temp table, one ``INSERT … ON CONFLICT``) beside, in the same run, the strongest plain
reference: **psycopg 3's binary ``COPY``** (``cursor.copy`` with ``set_types``, ``write_row``) into a
temp table and the same ``INSERT … ON CONFLICT`` (for candles with the same ``WHERE … IS DISTINCT
FROM`` rule as ours, so both skip unchanged rows); plus a text ``COPY`` formatted in Python (our
previous path) and the plain SQLAlchemy ``executemany`` upsert. Phases: new rows; the same rows again
(a re-upsert, e.g. a repeated backfill: **no row changes, so both sides only compare and skip**);
for candles also changed rows (every candle revised, the worst case). The rows are 50
markets interleaved in time order, as the collector produces them. Needs PostgreSQL
(TEST_PG_ADMIN_URL, default local).

    .venv/bin/python benchmarks/bench_collector_storage.py [--rows 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg2  # noqa: E402
from sqlalchemy import Connection  # noqa: E402
from sqlalchemy.dialects.postgresql import insert as pg_insert  # noqa: E402

from config.domain import Candle, Timeframe, ms_to_datetime  # noqa: E402
from database.engine import make_engine, make_session_factory, session_scope  # noqa: E402
from database.migrate import upgrade  # noqa: E402
from database.models import CandleRow, TradeRow  # noqa: E402
from database.repositories.market import candle_to_row, insert_trade_rows, upsert_candles  # noqa: E402

ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
T0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
BATCH = 50_000
Rows = tuple[str, str, int, int, float, float, str]
UPDATED = ("open", "high", "low", "close", "volume", "quote_volume", "buy_volume", "trade_count")


def make_candles(n: int, symbols: int = 50, bump: float = 0.0) -> list[Candle]:
    return [Candle("okx", f"S{i % symbols}-USDT", Timeframe.M1, T0 + (i // symbols) * 60_000, 100.0, 101.5 + bump, 99.5,
                   100.5 + i % 7 * 0.1 + bump, 3.25, 326.6, 1.5, 12) for i in range(n)]


def make_trades(n: int, symbols: int = 50) -> list[Rows]:
    return [("okx", f"S{i % symbols}-USDT", 10_000_000 + i, T0 + i * 3, 60_000.0 + i % 97 * 0.1, 0.0123,
             "buy" if i % 2 else "sell") for i in range(n)]


def text_copy_candles(conn: Connection, candles: Sequence[Candle]) -> None:
    """The reference: rows formatted as text in Python, ``COPY`` into a temp table, one upsert."""
    body = "".join(f"{c.exchange}\t{c.symbol}\t{c.timeframe.value}\t{c.open_time_ms}\t{c.open!r}\t{c.high!r}\t"
                   f"{c.low!r}\t{c.close!r}\t{c.volume!r}\t{c.quote_volume!r}\t{c.buy_volume!r}\t{c.trade_count}\n"
                   for c in candles)
    updates = ", ".join(f"{col} = EXCLUDED.{col}" for col in UPDATED)
    with conn.connection.dbapi_connection.cursor() as cur:  # type: ignore[union-attr]
        cur.execute("CREATE TEMP TABLE ref_candles (exchange text, symbol text, timeframe text, open_ms bigint, "
                    "open float8, high float8, low float8, close float8, volume float8, quote_volume float8, "
                    "buy_volume float8, trade_count int) ON COMMIT DROP")
        cur.copy_expert("COPY ref_candles FROM STDIN", io.StringIO(body))
        cur.execute("INSERT INTO candles (exchange, symbol, timeframe, open_time, " + ", ".join(UPDATED) + ") "
                    "SELECT exchange, symbol, timeframe, to_timestamp(open_ms::float8 / 1000), "
                    + ", ".join(UPDATED) + " FROM ref_candles "
                    f"ON CONFLICT (exchange, symbol, timeframe, open_time) DO UPDATE SET {updates}")


def text_copy_trades(conn: Connection, rows: Sequence[Rows]) -> None:
    body = "".join(f"{e}\t{s}\t{i}\t{ts}\t{p!r}\t{z!r}\t{d}\n" for e, s, i, ts, p, z, d in rows)
    with conn.connection.dbapi_connection.cursor() as cur:  # type: ignore[union-attr]
        cur.execute("CREATE TEMP TABLE ref_trades (exchange text, symbol text, trade_id bigint, ts_ms bigint, "
                    "price float8, size float8, side text) ON COMMIT DROP")
        cur.copy_expert("COPY ref_trades FROM STDIN", io.StringIO(body))
        cur.execute("INSERT INTO trades (exchange, symbol, trade_id, ts, price, size, side) "
                    "SELECT exchange, symbol, trade_id, to_timestamp(ts_ms::float8 / 1000), price, size, side "
                    "FROM ref_trades ON CONFLICT DO NOTHING")


_TYPES_CANDLES = ["text", "text", "text", "int8", "float8", "float8", "float8", "float8", "float8", "float8", "float8",
                  "int4"]
_DISTINCT = ("WHERE (" + ", ".join(f"candles.{c}" for c in UPDATED) + ") IS DISTINCT FROM ("
             + ", ".join(f"EXCLUDED.{c}" for c in UPDATED) + ")")


def psycopg3_candles(conn3: object, candles: Sequence[Candle]) -> None:
    """The strongest reference: psycopg 3 binary COPY into a temp table, one upsert skipping equal rows."""
    import psycopg

    assert isinstance(conn3, psycopg.Connection)
    updates = ", ".join(f"{col} = EXCLUDED.{col}" for col in UPDATED)
    with conn3.transaction(), conn3.cursor() as cur:
        cur.execute("CREATE TEMP TABLE ref3_candles (exchange text, symbol text, timeframe text, open_ms int8, "
                    "open float8, high float8, low float8, close float8, volume float8, quote_volume float8, "
                    "buy_volume float8, trade_count int4) ON COMMIT DROP")
        with cur.copy("COPY ref3_candles FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_TYPES_CANDLES)
            for c in candles:
                copy.write_row((c.exchange, c.symbol, c.timeframe.value, c.open_time_ms, c.open, c.high, c.low,
                                c.close, c.volume, c.quote_volume, c.buy_volume, c.trade_count))
        cur.execute("INSERT INTO candles (exchange, symbol, timeframe, open_time, " + ", ".join(UPDATED) + ") "
                    "SELECT exchange, symbol, timeframe, to_timestamp(open_ms::float8 / 1000), "
                    + ", ".join(UPDATED) + " FROM ref3_candles "
                    f"ON CONFLICT (exchange, symbol, timeframe, open_time) DO UPDATE SET {updates} {_DISTINCT}")


def psycopg3_trades(conn3: object, rows: Sequence[Rows]) -> None:
    import psycopg

    assert isinstance(conn3, psycopg.Connection)
    with conn3.transaction(), conn3.cursor() as cur:
        cur.execute("CREATE TEMP TABLE ref3_trades (exchange text, symbol text, trade_id int8, ts_ms int8, "
                    "price float8, size float8, side text) ON COMMIT DROP")
        with cur.copy("COPY ref3_trades FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "text", "int8", "int8", "float8", "float8", "text"])
            for row in rows:
                copy.write_row(row)
        cur.execute("INSERT INTO trades (exchange, symbol, trade_id, ts, price, size, side) "
                    "SELECT exchange, symbol, trade_id, to_timestamp(ts_ms::float8 / 1000), price, size, side "
                    "FROM ref3_trades ON CONFLICT DO NOTHING")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is printed")
    args = parser.parse_args()
    name = f"bench_collector_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade(url)
        engine = make_engine(url)
        factory = make_session_factory(engine)
        candles, changed, trades = make_candles(args.rows), make_candles(args.rows, bump=0.25), make_trades(args.rows)

        import psycopg

        conn3 = psycopg.connect(url, autocommit=True)

        def batches(rows: Sequence, write: Callable[[Connection, Sequence], object]) -> Callable[[], None]:
            def run() -> None:
                for i in range(0, len(rows), BATCH):
                    if write in (psycopg3_candles, psycopg3_trades):
                        write(conn3, rows[i:i + BATCH])  # type: ignore[arg-type]
                        continue
                    with session_scope(factory) as s:
                        write(s.connection(), rows[i:i + BATCH])
            return run

        def orm_candles(conn: Connection, rows: Sequence[Candle]) -> None:
            stmt = pg_insert(CandleRow)
            stmt = stmt.on_conflict_do_update(index_elements=["exchange", "symbol", "timeframe", "open_time"],
                                              set_={c: stmt.excluded[c] for c in UPDATED})
            conn.execute(stmt, [candle_to_row(c) for c in rows])

        def orm_trades(conn: Connection, rows: Sequence[Rows]) -> None:
            conn.execute(pg_insert(TradeRow).on_conflict_do_nothing(),
                         [{"exchange": e, "symbol": y, "trade_id": t, "ts": ms_to_datetime(ts), "price": p, "size": z,
                           "side": d} for e, y, t, ts, p, z, d in rows])

        def truncate(table: str) -> None:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"TRUNCATE {table}")

        def measure(table: str, phases: Sequence[tuple[str, Callable[[], None]]], repeat: int) -> list[float]:
            """Median rows/s per phase; each repeat starts from an empty table."""
            figures: list[list[float]] = [[] for _ in phases]
            for _ in range(repeat):
                truncate(table)
                for k, (_, fn) in enumerate(phases):
                    start = time.perf_counter()
                    fn()
                    figures[k].append(args.rows / (time.perf_counter() - start))
            truncate(table)
            return [statistics.median(f) for f in figures]

        print(f"{args.rows:,} rows per run, batches of {BATCH:,}, 50 markets, PostgreSQL on loopback, "
              f"median of {args.repeat} (executemany: 1 run)")
        methods = (
            ("candles", "executemany upsert (SQLAlchemy)", orm_candles, 1),
            ("candles", "text COPY + upsert (our previous path)", text_copy_candles, args.repeat),
            ("candles", "psycopg3 binary COPY + upsert (reference)", psycopg3_candles, args.repeat),
            ("candles", "binary COPY + upsert (ours)", lambda c, r: upsert_candles(c, r), args.repeat),
            ("trades", "executemany insert (SQLAlchemy)", orm_trades, 1),
            ("trades", "text COPY + insert (our previous path)", text_copy_trades, args.repeat),
            ("trades", "psycopg3 binary COPY + insert (reference)", psycopg3_trades, args.repeat),
            ("trades", "binary COPY + insert (ours)", lambda c, r: insert_trade_rows(c, r), args.repeat),
        )
        print(f"  {'':52s} {'new rows':>12s} {'same again':>12s} {'changed':>12s}   (k rows/s; same again: "
              "every row already stored and equal, nothing written)")
        results: dict[tuple[str, str], list[float]] = {}
        for table, label, write, repeat in methods:
            if table == "candles":
                phases = [("new", batches(candles, write)), ("again", batches(candles, write)),
                          ("changed", batches(changed, write))]
            else:
                phases = [("new", batches(trades, write)), ("again", batches(trades, write))]
            figures = measure(table, phases, repeat)
            cells = " ".join(f"{f / 1000:12.1f}" for f in figures) + ("" if len(figures) == 3 else f"{'-':>13s}")
            print(f"  {table + ': ' + label:52s} {cells}")
            results[(table, label.split(" (")[-1])] = figures
        print(f"\n  {'project | psycopg3 binary COPY reference | ratio':46s}")
        for table in ("candles", "trades"):
            ours, ref = results[(table, "ours)")], results[(table, "reference)")]
            for k, phase in enumerate(("new rows", "same again", "changed")[:len(ours)]):
                print(f"  {table + ', ' + phase:46s} {ours[k] / 1000:8.1f} | {ref[k] / 1000:8.1f} k rows/s | "
                      f"x{ours[k] / ref[k]:.2f}")
        conn3.close()
        engine.dispose()
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    main()
