"""Market data: idempotent upserts of trades and candles, range reads, retention.

PostgreSQL writes go through ``COPY`` into a temporary table followed by one
``INSERT … ON CONFLICT`` (the fastest idempotent path psycopg2 offers); SQLite uses
``INSERT … ON CONFLICT`` with ``executemany``. Candles: last write wins. Trades: first write wins
(a trade never changes).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Connection, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from config.domain import Candle, Side, Timeframe, Trade, datetime_to_ms, ms_to_datetime
from database.models import CandleRow, Instrument, TradeRow

if TYPE_CHECKING:  # pandas is imported where a frame is built: the collector never loads it
    import pandas as pd

CANDLE_COLUMNS = (
    "exchange", "symbol", "timeframe", "open_time", "open", "high", "low", "close",
    "volume", "quote_volume", "buy_volume", "trade_count",
)
_CANDLE_UPDATE = CANDLE_COLUMNS[4:]
# Below this many rows one multi-row INSERT (one round trip) beats COPY through a temp table.
_SMALL_BATCH = 200


def _connection(session: Session | Connection) -> Connection:
    return session.connection() if isinstance(session, Session) else session


def _copy_rows(conn: Connection, temp_sql: str, table: str, rows: Iterable[str], insert_sql: str) -> int:
    """COPY text rows into a fresh temp table, then run ``insert_sql`` from it."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    buffer = io.StringIO("".join(rows))
    with raw.cursor() as cur:
        cur.execute(temp_sql)
        cur.copy_expert(f"COPY {table} FROM STDIN", buffer)
        cur.execute(insert_sql)
        count = cur.rowcount
        cur.execute(f"DROP TABLE {table}")
    return int(count)


def upsert_candles(session: Session | Connection, candles: Sequence[Candle]) -> int:
    """Insert or replace candles on (exchange, symbol, timeframe, open_time). Returns rows written."""
    if not candles:
        return 0
    conn = _connection(session)
    # The last version of a candle wins, also inside one batch.
    latest: dict[tuple[str, str, str, int], Candle] = {}
    for c in candles:
        latest[(c.exchange, c.symbol, c.timeframe.value, c.open_time_ms)] = c
    if conn.dialect.name == "postgresql" and len(latest) <= _SMALL_BATCH:
        params: list[object] = []
        for c in latest.values():
            params += (c.exchange, c.symbol, c.timeframe.value, ms_to_datetime(c.open_time_ms), c.open, c.high,
                       c.low, c.close, c.volume, c.quote_volume, c.buy_volume, c.trade_count)
        conn.exec_driver_sql(_small_upsert_sql(len(latest)), tuple(params))
        return len(latest)
    if conn.dialect.name == "postgresql":
        rows = (
            f"{c.exchange}\t{c.symbol}\t{c.timeframe.value}\t{c.open_time_ms}\t{c.open!r}\t{c.high!r}\t"
            f"{c.low!r}\t{c.close!r}\t{c.volume!r}\t{c.quote_volume!r}\t{c.buy_volume!r}\t{c.trade_count}\n"
            for c in latest.values()
        )
        updates = ", ".join(f"{col} = EXCLUDED.{col}" for col in _CANDLE_UPDATE)
        return _copy_rows(
            conn,
            "CREATE TEMP TABLE tmp_candles (exchange text, symbol text, timeframe text, open_ms bigint, "
            "open float8, high float8, low float8, close float8, volume float8, quote_volume float8, "
            "buy_volume float8, trade_count int) ON COMMIT DROP",
            "tmp_candles",
            rows,
            "INSERT INTO candles (" + ", ".join(CANDLE_COLUMNS) + ") "
            "SELECT exchange, symbol, timeframe, to_timestamp(open_ms::float8 / 1000), open, high, low, close, "
            "volume, quote_volume, buy_volume, trade_count FROM tmp_candles "
            f"ON CONFLICT (exchange, symbol, timeframe, open_time) DO UPDATE SET {updates}",
        )
    stmt = sqlite_insert(CandleRow)
    stmt = stmt.on_conflict_do_update(
        index_elements=["exchange", "symbol", "timeframe", "open_time"],
        set_={col: stmt.excluded[col] for col in _CANDLE_UPDATE},
    )
    conn.execute(stmt, [candle_to_row(c) for c in latest.values()])
    return len(latest)


@lru_cache(maxsize=_SMALL_BATCH)
def _small_upsert_sql(rows: int) -> str:
    """One multi-row ``INSERT … ON CONFLICT DO UPDATE`` (driver SQL: no per-call statement compile)."""
    row = "(" + ", ".join(["%s"] * len(CANDLE_COLUMNS)) + ")"
    updates = ", ".join(f"{col} = EXCLUDED.{col}" for col in _CANDLE_UPDATE)
    return (f"INSERT INTO candles ({', '.join(CANDLE_COLUMNS)}) VALUES {', '.join([row] * rows)} "
            f"ON CONFLICT (exchange, symbol, timeframe, open_time) DO UPDATE SET {updates}")


def insert_trades(session: Session | Connection, trades: Sequence[Trade]) -> int:
    """Insert raw trades; a trade already stored (same exchange, symbol, trade_id) is skipped."""
    if not trades:
        return 0
    conn = _connection(session)
    if conn.dialect.name == "postgresql":
        rows = (
            f"{t.exchange}\t{t.symbol}\t{t.trade_id}\t{t.ts_ms}\t{t.price!r}\t{t.size!r}\t{t.side.value}\n"
            for t in trades
        )
        return _copy_rows(
            conn,
            "CREATE TEMP TABLE tmp_trades (exchange text, symbol text, trade_id bigint, ts_ms bigint, "
            "price float8, size float8, side text) ON COMMIT DROP",
            "tmp_trades",
            rows,
            "INSERT INTO trades (exchange, symbol, trade_id, ts, price, size, side) "
            "SELECT exchange, symbol, trade_id, to_timestamp(ts_ms::float8 / 1000), price, size, side "
            "FROM tmp_trades ON CONFLICT DO NOTHING",
        )
    stmt = sqlite_insert(TradeRow).on_conflict_do_nothing()
    result = conn.execute(stmt, [
        {"exchange": t.exchange, "symbol": t.symbol, "trade_id": t.trade_id, "ts": ms_to_datetime(t.ts_ms),
         "price": t.price, "size": t.size, "side": t.side.value}
        for t in trades
    ])
    return int(result.rowcount or 0)


TradeRowTuple = tuple[str, str, int, int, float, float, str]


def insert_trade_rows(session: Session | Connection, rows: Iterable[TradeRowTuple]) -> int:
    """Like :func:`insert_trades` for plain tuples ``(exchange, symbol, trade_id, ts_ms, price, size,
    side)`` — the collector's bulk path, which skips building a ``Trade`` per row. Returns rows added."""
    conn = _connection(session)
    if conn.dialect.name == "postgresql":
        lines = [f"{e}\t{s}\t{i}\t{ts}\t{p!r}\t{z!r}\t{d}\n" for e, s, i, ts, p, z, d in rows]
        if not lines:
            return 0
        return _copy_rows(
            conn,
            "CREATE TEMP TABLE tmp_trades (exchange text, symbol text, trade_id bigint, ts_ms bigint, "
            "price float8, size float8, side text) ON COMMIT DROP",
            "tmp_trades",
            lines,
            "INSERT INTO trades (exchange, symbol, trade_id, ts, price, size, side) "
            "SELECT exchange, symbol, trade_id, to_timestamp(ts_ms::float8 / 1000), price, size, side "
            "FROM tmp_trades ON CONFLICT DO NOTHING",
        )
    params = [{"exchange": e, "symbol": s, "trade_id": i, "ts": ms_to_datetime(ts), "price": p, "size": z,
               "side": d} for e, s, i, ts, p, z, d in rows]
    if not params:
        return 0
    result = conn.execute(sqlite_insert(TradeRow).on_conflict_do_nothing(), params)
    return int(result.rowcount or 0)


def relax_commit_durability(session: Session | Connection) -> None:
    """This transaction's commit returns before its WAL reaches disk (PostgreSQL ``synchronous_commit
    = off``; visible at once, durable within ~3 x ``wal_writer_delay``). No-op on SQLite."""
    conn = _connection(session)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")


def candle_to_row(c: Candle) -> dict[str, object]:
    return {
        "exchange": c.exchange, "symbol": c.symbol, "timeframe": c.timeframe.value,
        "open_time": ms_to_datetime(c.open_time_ms), "open": c.open, "high": c.high, "low": c.low,
        "close": c.close, "volume": c.volume, "quote_volume": c.quote_volume,
        "buy_volume": c.buy_volume, "trade_count": c.trade_count,
    }


def row_to_candle(row: CandleRow) -> Candle:
    return Candle(
        exchange=row.exchange, symbol=row.symbol, timeframe=Timeframe(row.timeframe),
        open_time_ms=datetime_to_ms(row.open_time), open=row.open, high=row.high, low=row.low,
        close=row.close, volume=row.volume, quote_volume=row.quote_volume,
        buy_volume=row.buy_volume, trade_count=row.trade_count,
    )


def get_candles(
    session: Session,
    exchange: str,
    symbol: str,
    timeframe: Timeframe,
    start_ms: int | None = None,
    end_ms: int | None = None,
    limit: int | None = None,
) -> list[Candle]:
    """Candles in ``[start_ms, end_ms)`` ascending; with ``limit`` and no start, the latest ``limit``."""
    query = select(CandleRow).where(
        CandleRow.exchange == exchange, CandleRow.symbol == symbol, CandleRow.timeframe == timeframe.value
    )
    if start_ms is not None:
        query = query.where(CandleRow.open_time >= ms_to_datetime(start_ms))
    if end_ms is not None:
        query = query.where(CandleRow.open_time < ms_to_datetime(end_ms))
    if limit is not None and start_ms is None:
        rows = session.scalars(query.order_by(CandleRow.open_time.desc()).limit(limit)).all()
        return [row_to_candle(r) for r in reversed(rows)]
    if limit is not None:
        query = query.limit(limit)
    return [row_to_candle(r) for r in session.scalars(query.order_by(CandleRow.open_time))]


def load_candles_frame(
    session: Session,
    exchange: str,
    symbol: str,
    timeframe: Timeframe,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> pd.DataFrame:
    """Candles as a DataFrame (``open_time`` in epoch ms, int64) for analytics and backtests.

    On PostgreSQL the rows come through one binary ``COPY … TO STDOUT`` decoded by numpy (about
    ten times faster than fetching row objects; see docs/backtesting.md for the figures).
    """
    import pandas as pd

    conn = _connection(session)
    if conn.dialect.name == "postgresql":
        return _load_candles_frame_copy(conn, exchange, symbol, timeframe, start_ms, end_ms)
    t = CandleRow.__table__
    query = select(t.c.open_time, t.c.open, t.c.high, t.c.low, t.c.close, t.c.volume).where(
        t.c.exchange == exchange, t.c.symbol == symbol, t.c.timeframe == timeframe.value
    )
    if start_ms is not None:
        query = query.where(t.c.open_time >= ms_to_datetime(start_ms))
    if end_ms is not None:
        query = query.where(t.c.open_time < ms_to_datetime(end_ms))
    rows = conn.execute(query.order_by(t.c.open_time)).all()
    frame = pd.DataFrame(rows, columns=["open_time", "open", "high", "low", "close", "volume"])
    if frame.empty:
        frame["open_time"] = frame["open_time"].astype(np.int64)
        return frame
    times = pd.to_datetime(frame["open_time"], utc=True).astype("datetime64[ms, UTC]")
    frame["open_time"] = times.astype(np.int64).to_numpy()
    return frame


_FRAME_COLUMNS = ["open_time", "open", "high", "low", "close", "volume"]
# One binary COPY tuple: field count (int16), then per field a length (int32) and the value.
_COPY_ROW = np.dtype([("fields", ">i2"), ("n0", ">i4"), ("open_time", ">i8"), ("n1", ">i4"), ("open", ">f8"),
                      ("n2", ">i4"), ("high", ">f8"), ("n3", ">i4"), ("low", ">f8"), ("n4", ">i4"),
                      ("close", ">f8"), ("n5", ">i4"), ("volume", ">f8")])
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _load_candles_frame_copy(conn: Connection, exchange: str, symbol: str, timeframe: Timeframe,
                             start_ms: int | None, end_ms: int | None) -> pd.DataFrame:
    import pandas as pd

    raw = conn.connection.dbapi_connection
    assert raw is not None
    where = ["exchange = %(exchange)s", "symbol = %(symbol)s", "timeframe = %(timeframe)s"]
    values: dict[str, object] = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe.value}
    if start_ms is not None:
        where.append("open_time >= %(start)s")
        values["start"] = ms_to_datetime(start_ms)
    if end_ms is not None:
        where.append("open_time < %(end)s")
        values["end"] = ms_to_datetime(end_ms)
    buffer = io.BytesIO()
    with raw.cursor() as cur:
        query = cur.mogrify(
            "SELECT (extract(epoch FROM open_time) * 1000)::int8, open, high, low, close, volume FROM candles "
            f"WHERE {' AND '.join(where)} ORDER BY open_time", values,
        ).decode()
        cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT binary)", buffer)
    payload = buffer.getbuffer()
    if bytes(payload[:11]) != _COPY_SIGNATURE:
        raise ValueError("unexpected PostgreSQL binary COPY header")
    extension = int.from_bytes(payload[15:19], "big")
    start = 19 + extension
    count = (len(payload) - start - 2) // _COPY_ROW.itemsize
    rows = np.frombuffer(payload, dtype=_COPY_ROW, count=count, offset=start)
    frame = pd.DataFrame({name: rows[name].astype(np.int64 if name == "open_time" else np.float64)
                          for name in _FRAME_COLUMNS})
    del rows, payload
    return frame


def latest_candle_time_ms(session: Session, exchange: str, symbol: str, timeframe: Timeframe) -> int | None:
    value = session.scalar(
        select(func.max(CandleRow.open_time)).where(
            CandleRow.exchange == exchange, CandleRow.symbol == symbol, CandleRow.timeframe == timeframe.value
        )
    )
    return None if value is None else datetime_to_ms(value)


def count_candles(session: Session, exchange: str | None = None, symbol: str | None = None,
                  timeframe: Timeframe | None = None) -> int:
    query = select(func.count()).select_from(CandleRow)
    if exchange:
        query = query.where(CandleRow.exchange == exchange)
    if symbol:
        query = query.where(CandleRow.symbol == symbol)
    if timeframe:
        query = query.where(CandleRow.timeframe == timeframe.value)
    return int(session.scalar(query) or 0)


def get_trades(session: Session, exchange: str, symbol: str) -> list[Trade]:
    rows = session.scalars(
        select(TradeRow).where(TradeRow.exchange == exchange, TradeRow.symbol == symbol)
        .order_by(TradeRow.ts, TradeRow.trade_id)
    )
    return [
        Trade(r.exchange, r.symbol, r.trade_id, datetime_to_ms(r.ts), r.price, r.size, Side(r.side))
        for r in rows
    ]


def count_trades(session: Session, exchange: str | None = None, symbol: str | None = None) -> int:
    query = select(func.count()).select_from(TradeRow)
    if exchange:
        query = query.where(TradeRow.exchange == exchange)
    if symbol:
        query = query.where(TradeRow.symbol == symbol)
    return int(session.scalar(query) or 0)


def prune_trades(session: Session, older_than: datetime) -> int:
    """Delete raw trades with ``ts`` before ``older_than`` (the plain-PostgreSQL/SQLite retention job).

    Market by market, so each delete walks the ``(exchange, symbol, ts)`` index; the markets are
    those with candles (the collector stores a market's candles with its trades).
    """
    markets = session.execute(select(CandleRow.exchange, CandleRow.symbol).distinct()).all()
    deleted = 0
    for exchange, symbol in markets:
        result = session.execute(delete(TradeRow).where(
            TradeRow.exchange == exchange, TradeRow.symbol == symbol, TradeRow.ts < older_than))
        deleted += int(result.rowcount or 0)
    return deleted


def retention_cutoff(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


def list_markets(session: Session) -> list[tuple[str, str, str]]:
    """Distinct (exchange, symbol, timeframe) combinations that have candles."""
    rows = session.execute(
        select(CandleRow.exchange, CandleRow.symbol, CandleRow.timeframe).distinct()
        .order_by(CandleRow.exchange, CandleRow.symbol, CandleRow.timeframe)
    )
    return [(r[0], r[1], r[2]) for r in rows]


def upsert_instrument(session: Session, exchange: str, symbol: str, **fields: object) -> None:
    values = {"exchange": exchange, "symbol": symbol, **fields}
    dialect = _connection(session).dialect.name
    ins = pg_insert(Instrument) if dialect == "postgresql" else sqlite_insert(Instrument)
    update = {k: ins.excluded[k] for k in fields} or {"symbol": ins.excluded.symbol}
    session.execute(ins.values(values).on_conflict_do_update(index_elements=["exchange", "symbol"], set_=update))
