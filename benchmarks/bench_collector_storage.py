"""Candle and trade writes to PostgreSQL as idempotent batched upserts, rows/s.

Ours (COPY into a temp table + one ``INSERT … ON CONFLICT``) beside the plain SQLAlchemy
``executemany`` upsert in the same run. Needs PostgreSQL (TEST_PG_ADMIN_URL, default local).

    .venv/bin/python benchmarks/bench_collector_storage.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg2  # noqa: E402
from sqlalchemy.dialects.postgresql import insert as pg_insert  # noqa: E402

from config.domain import Candle, Timeframe, ms_to_datetime  # noqa: E402
from database.engine import make_engine, make_session_factory, session_scope  # noqa: E402
from database.migrate import upgrade  # noqa: E402
from database.models import CandleRow, TradeRow  # noqa: E402
from database.repositories.market import candle_to_row, insert_trade_rows, upsert_candles  # noqa: E402

ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
T0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000


def make_candles(n: int, symbols: int = 50) -> list[Candle]:
    return [Candle("okx", f"S{i % symbols}-USDT", Timeframe.M1, T0 + (i // symbols) * 60_000, 100.0, 101.5, 99.5,
                   100.5 + i % 7 * 0.1, 3.25, 326.6, 1.5, 12) for i in range(n)]


def make_trades(n: int) -> list[tuple[str, str, int, int, float, float, str]]:
    return [("okx", "BTC-USDT", 10_000_000 + i, T0 + i * 3, 60_000.0 + i % 97 * 0.1, 0.0123, "buy" if i % 2 else "sell")
            for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
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
        candles, trades = make_candles(args.rows), make_trades(args.rows)
        batch = 50_000

        def ours_candles() -> None:
            for i in range(0, len(candles), batch):
                with session_scope(factory) as s:
                    upsert_candles(s, candles[i:i + batch])

        def ours_trades() -> None:
            for i in range(0, len(trades), batch):
                with session_scope(factory) as s:
                    insert_trade_rows(s, trades[i:i + batch])

        def plain_candles() -> None:
            stmt = pg_insert(CandleRow)
            stmt = stmt.on_conflict_do_update(index_elements=["exchange", "symbol", "timeframe", "open_time"],
                                              set_={c: stmt.excluded[c] for c in ("open", "high", "low", "close",
                                                                                  "volume", "quote_volume",
                                                                                  "buy_volume", "trade_count")})
            for i in range(0, len(candles), batch):
                with session_scope(factory) as s:
                    s.execute(stmt, [candle_to_row(c) for c in candles[i:i + batch]])

        def plain_trades() -> None:
            stmt = pg_insert(TradeRow).on_conflict_do_nothing()
            for i in range(0, len(trades), batch):
                with session_scope(factory) as s:
                    s.execute(stmt, [{"exchange": e, "symbol": y, "trade_id": t, "ts": ms_to_datetime(ts), "price": p,
                                      "size": z, "side": d} for e, y, t, ts, p, z, d in trades[i:i + batch]])

        print(f"{args.rows:,} rows per run, batches of {batch:,}, PostgreSQL on loopback")
        for label, fn, table in (("candles: executemany upsert (baseline)", plain_candles, "candles"),
                                 ("candles: COPY + upsert (ours)", ours_candles, "candles"),
                                 ("trades: executemany insert (baseline)", plain_trades, "trades"),
                                 ("trades: COPY + insert (ours)", ours_trades, "trades")):
            for phase in ("new rows", "same rows again"):
                start = time.perf_counter()
                fn()
                seconds = time.perf_counter() - start
                print(f"  {label:42s} {phase:16s} {args.rows / seconds / 1000:8.1f} k rows/s")
            with engine.begin() as conn:
                conn.exec_driver_sql(f"TRUNCATE {table}")
        engine.dispose()
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    main()
