"""Market data: idempotent upserts of trades and candles, range reads, retention.

PostgreSQL bulk writes are one binary ``COPY`` built from numpy arrays (database/pgcopy.py), straight
into the table when no row is stored yet, else through a temp table and one ``INSERT … ON
CONFLICT``; small candle batches are one multi-row ``INSERT … ON CONFLICT`` (one round trip). SQLite uses
``INSERT … ON CONFLICT`` with ``executemany``. Candles: last write wins. Trades: first write wins
(a trade never changes).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from operator import attrgetter
from typing import TYPE_CHECKING, cast

import numpy as np
from sqlalchemy import Connection, CursorResult, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from config.domain import Candle, Side, Timeframe, Trade, datetime_to_ms, ms_to_datetime
from database import pgcopy
from database.models import CandleRow, Instrument, TradeRow

if TYPE_CHECKING:  # pandas is imported where a frame is built: the collector never loads it
    import pandas as pd
    import psycopg2.extensions

CANDLE_COLUMNS = (
    "exchange", "symbol", "timeframe", "open_time", "open", "high", "low", "close",
    "volume", "quote_volume", "buy_volume", "trade_count",
)
_CANDLE_UPDATE = CANDLE_COLUMNS[4:]
# Up to this many candles, upsert_candles on PostgreSQL is one multi-row INSERT (one round trip, one
# statement: atomic without a transaction); larger batches go through COPY.
CANDLES_PER_STATEMENT = 200


def _connection(session: Session | Connection) -> Connection:
    return session.connection() if isinstance(session, Session) else session


def _bulk_write(conn: Connection, table: str, columns: Sequence[str], payload: bytes, on_conflict: str) -> int:
    """Write a binary COPY ``payload`` of ``columns`` rows into ``table`` idempotently.

    The fast path is one ``COPY`` straight into the table inside a savepoint: a batch of new rows (the
    usual case: the collector writes each candle and trade once) costs the table's own inserts and
    nothing else. If a row's key is already stored, that ``COPY`` stops at the first such row; the
    savepoint is rolled back and the same payload goes into a temp table, from which one
    ``INSERT … {on_conflict}`` writes it. Returns the rows inserted or changed.
    """
    import psycopg2.errors

    raw = cast("psycopg2.extensions.connection", conn.connection.dbapi_connection)
    assert raw is not None
    names = ", ".join(columns)
    with raw.cursor() as cur:
        cur.execute("SAVEPOINT bulk_write")
        try:
            cur.copy_expert(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT binary)", io.BytesIO(payload))
            copied = cur.rowcount
        except psycopg2.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT bulk_write")
        else:
            cur.execute("RELEASE SAVEPOINT bulk_write")
            return int(copied)
        cur.execute(f"CREATE TEMP TABLE tmp_{table} (LIKE {table}) ON COMMIT DROP")
        cur.copy_expert(f"COPY tmp_{table} ({names}) FROM STDIN WITH (FORMAT binary)", io.BytesIO(payload))
        cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM tmp_{table} {on_conflict}")
        count = cur.rowcount
        cur.execute(f"DROP TABLE tmp_{table}")
    return int(count)


_CANDLE_VALUES = attrgetter("open_time_ms", "open", "high", "low", "close", "volume", "quote_volume",
                            "buy_volume", "trade_count")
_CANDLE_ARRAY = np.dtype([("t", "i8"), ("open", "f8"), ("high", "f8"), ("low", "f8"), ("close", "f8"),
                          ("volume", "f8"), ("quote_volume", "f8"), ("buy_volume", "f8"), ("trade_count", "i4")])
# A revision that changes nothing is not written (no dead row version, no new index entry).
_CANDLE_CONFLICT = (
    "ON CONFLICT (exchange, symbol, timeframe, open_time) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _CANDLE_UPDATE)
    + " WHERE (" + ", ".join(f"candles.{c}" for c in _CANDLE_UPDATE) + ") IS DISTINCT FROM ("
    + ", ".join(f"EXCLUDED.{c}" for c in _CANDLE_UPDATE) + ")"
)


def upsert_candles(session: Session | Connection, candles: Sequence[Candle]) -> int:
    """Insert or replace candles on (exchange, symbol, timeframe, open_time); the last version of a
    candle in ``candles`` wins. Returns the number of distinct candles upserted.

    PostgreSQL: up to 200 candles are one multi-row ``INSERT … ON CONFLICT`` (one round trip); larger
    batches are sorted by key (index inserts then walk the B-tree in order) and sent as one binary
    ``COPY`` built from numpy arrays (:func:`_bulk_write`). Figures in docs/data.md.
    """
    if not candles:
        return 0
    conn = _connection(session)
    by_market: dict[tuple[str, str, Timeframe], dict[int, Candle]] = {}
    for c in candles:
        versions = by_market.get((c.exchange, c.symbol, c.timeframe))
        if versions is None:
            versions = by_market[(c.exchange, c.symbol, c.timeframe)] = {}
        versions[c.open_time_ms] = c
    total = sum(len(v) for v in by_market.values())
    if conn.dialect.name == "postgresql" and total <= CANDLES_PER_STATEMENT:
        params: list[object] = []
        for versions in by_market.values():
            for c in versions.values():
                params += (c.exchange, c.symbol, c.timeframe.value, ms_to_datetime(c.open_time_ms), c.open, c.high,
                           c.low, c.close, c.volume, c.quote_volume, c.buy_volume, c.trade_count)
        conn.exec_driver_sql(_small_upsert_sql(total), tuple(params))
        return total
    if conn.dialect.name == "postgresql":
        groups = []
        for exchange, symbol, timeframe in sorted(by_market, key=lambda m: (m[0], m[1], m[2].value)):
            versions = by_market[(exchange, symbol, timeframe)]
            rows = np.array([_CANDLE_VALUES(versions[t]) for t in sorted(versions)], dtype=_CANDLE_ARRAY)
            n = len(rows)
            groups.append([pgcopy.text(exchange, n), pgcopy.text(symbol, n), pgcopy.text(timeframe.value, n),
                           pgcopy.ms_to_pg_timestamp(rows["t"]), *(rows[c] for c in _CANDLE_UPDATE)])
        _bulk_write(conn, "candles", CANDLE_COLUMNS, pgcopy.encode(*groups), _CANDLE_CONFLICT)
        return total
    stmt = sqlite_insert(CandleRow)
    stmt = stmt.on_conflict_do_update(
        index_elements=["exchange", "symbol", "timeframe", "open_time"],
        set_={col: stmt.excluded[col] for col in _CANDLE_UPDATE},
    )
    conn.execute(stmt, [candle_to_row(c) for versions in by_market.values() for c in versions.values()])
    return total


@lru_cache(maxsize=CANDLES_PER_STATEMENT)
def _small_upsert_sql(rows: int) -> str:
    """One multi-row ``INSERT … ON CONFLICT DO UPDATE`` (driver SQL: no per-call statement compile)."""
    row = "(" + ", ".join(["%s"] * len(CANDLE_COLUMNS)) + ")"
    return f"INSERT INTO candles ({', '.join(CANDLE_COLUMNS)}) VALUES {', '.join([row] * rows)} {_CANDLE_CONFLICT}"


def insert_trades(session: Session | Connection, trades: Sequence[Trade]) -> int:
    """Insert raw trades; a trade already stored (same exchange, symbol, trade_id) is skipped."""
    return insert_trade_rows(
        session, [(t.exchange, t.symbol, t.trade_id, t.ts_ms, t.price, t.size, t.side.value) for t in trades])


TradeRowTuple = tuple[str, str, int, int, float, float, str]
TRADE_COLUMNS = ("exchange", "symbol", "side", "trade_id", "ts", "price", "size")
_TRADE_ARRAY = np.dtype([("trade_id", "i8"), ("ts", "i8"), ("price", "f8"), ("size", "f8")])


def insert_trade_rows(session: Session | Connection, rows: Iterable[TradeRowTuple]) -> int:
    """Insert raw trades given as plain tuples ``(exchange, symbol, trade_id, ts_ms, price, size,
    side)`` — the collector's bulk path, which skips building a ``Trade`` per row. A trade already
    stored (or earlier in ``rows``) is skipped. Returns rows added.

    PostgreSQL: grouped by market and side (so each group's text fields have one length), sorted by
    trade id, one binary ``COPY`` (:func:`_bulk_write`).
    """
    conn = _connection(session)
    groups: dict[tuple[str, str, str], dict[int, tuple[int, int, float, float]]] = {}
    seen: dict[tuple[str, str], set[int]] = {}
    for exchange, symbol, trade_id, ts_ms, price, size, side in rows:
        ids = seen.get((exchange, symbol))
        if ids is None:
            ids = seen[(exchange, symbol)] = set()
        if trade_id in ids:
            continue  # the first version of a trade wins, as in the database
        ids.add(trade_id)
        group = groups.get((exchange, symbol, side))
        if group is None:
            group = groups[(exchange, symbol, side)] = {}
        group[trade_id] = (trade_id, ts_ms, price, size)
    if not groups:
        return 0
    if conn.dialect.name == "postgresql":
        columns = []
        for (exchange, symbol, side), group in sorted(groups.items()):
            array = np.array([group[i] for i in sorted(group)], dtype=_TRADE_ARRAY)
            n = len(array)
            columns.append([pgcopy.text(exchange, n), pgcopy.text(symbol, n), pgcopy.text(side, n),
                            array["trade_id"], pgcopy.ms_to_pg_timestamp(array["ts"]), array["price"], array["size"]])
        return _bulk_write(conn, "trades", TRADE_COLUMNS, pgcopy.encode(*columns), "ON CONFLICT DO NOTHING")
    params = [{"exchange": exchange, "symbol": symbol, "trade_id": i, "ts": ms_to_datetime(ts), "price": p,
               "size": z, "side": side}
              for (exchange, symbol, side), group in groups.items() for i, ts, p, z in group.values()]
    result = conn.execute(sqlite_insert(TradeRow).on_conflict_do_nothing(), params)
    return int(result.rowcount or 0)


def relax_commit_durability(session: Session | Connection) -> None:
    """Commits on this connection return before their WAL reaches disk (PostgreSQL ``synchronous_commit
    = off`` for the session; visible at once, durable within ~3 x ``wal_writer_delay``). No-op on SQLite."""
    conn = _connection(session)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET synchronous_commit = off")


def wal_positions(conn: Connection) -> tuple[int, int]:
    """PostgreSQL's WAL positions as byte offsets: (inserted, flushed to disk). A commit that returned
    before ``inserted`` was read is durable once ``flushed`` reaches that value."""
    row = conn.exec_driver_sql(
        "SELECT pg_current_wal_insert_lsn() - '0/0', pg_current_wal_flush_lsn() - '0/0'").one()
    return int(row[0]), int(row[1])


def flush_wal(conn: Connection) -> None:
    """Put everything this server has committed on disk now: a transaction that writes WAL, committed
    synchronously, flushes the WAL up to its own commit record. The write is a temporary table dropped
    at commit (its catalog rows are WAL-logged; an xid alone, or a no-op statement, writes no WAL and
    its commit would not wait). Run it in a transaction of its own."""
    conn.exec_driver_sql("SET LOCAL synchronous_commit = on")
    conn.exec_driver_sql("CREATE TEMPORARY TABLE tcp_flush_wal (x int) ON COMMIT DROP")


def candle_to_row(c: Candle) -> dict[str, object]:
    return {
        "exchange": c.exchange, "symbol": c.symbol, "timeframe": c.timeframe.value,
        "open_time": ms_to_datetime(c.open_time_ms), "open": c.open, "high": c.high, "low": c.low,
        "close": c.close, "volume": c.volume, "quote_volume": c.quote_volume,
        "buy_volume": c.buy_volume, "trade_count": c.trade_count,
    }


CANDLE_ARRAY = np.dtype([("open_time_ms", "i8"), ("open", "f8"), ("high", "f8"), ("low", "f8"), ("close", "f8"),
                         ("volume", "f8"), ("quote_volume", "f8"), ("buy_volume", "f8"), ("trade_count", "i4")])
_ARRAY_WIRE = [">i8", ">f8", ">f8", ">f8", ">f8", ">f8", ">f8", ">f8", ">i4"]
_ARRAY_SELECT = ("SELECT (extract(epoch FROM open_time) * 1000)::int8, open, high, low, close, volume, quote_volume, "
                 "buy_volume, trade_count FROM candles")


def candle_arrays(
    session: Session | Connection,
    exchange: str,
    symbol: str,
    timeframe: Timeframe,
    start_ms: int | None = None,
    end_ms: int | None = None,
    limit: int | None = None,
) -> np.ndarray:
    """Candles in ``[start_ms, end_ms)`` ascending as one numpy structured array (:data:`CANDLE_ARRAY`:
    ``open_time_ms`` int64, prices and volumes float64, ``trade_count`` int32); with ``limit`` and no
    start, the latest ``limit`` (a backward scan of the primary key, then reversed).

    No row object is built: PostgreSQL sends the rows as one binary ``COPY … TO STDOUT`` that numpy
    decodes (open times converted to epoch ms by the server); SQLite rows are plain tuples.
    """
    conn = _connection(session)
    newest = limit is not None and start_ms is None
    if conn.dialect.name == "postgresql":
        where = ["exchange = %(exchange)s", "symbol = %(symbol)s", "timeframe = %(timeframe)s"]
        values: dict[str, object] = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe.value}
        if start_ms is not None:
            where.append("open_time >= %(start)s")
            values["start"] = ms_to_datetime(start_ms)
        if end_ms is not None:
            where.append("open_time < %(end)s")
            values["end"] = ms_to_datetime(end_ms)
        tail = " ORDER BY open_time DESC" if newest else " ORDER BY open_time"
        if limit is not None:
            tail += f" LIMIT {int(limit)}"
        raw = cast("psycopg2.extensions.connection", conn.connection.dbapi_connection)
        assert raw is not None
        buffer = io.BytesIO()
        with raw.cursor() as cur:
            query = cur.mogrify(f"{_ARRAY_SELECT} WHERE {' AND '.join(where)}{tail}", values).decode()
            cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT binary)", buffer)
        columns = pgcopy.decode(buffer.getbuffer(), _ARRAY_WIRE)
        out = np.empty(len(columns[0]), dtype=CANDLE_ARRAY)
        for name, column in zip(CANDLE_ARRAY.names, columns, strict=True):
            out[name] = column
    else:
        t = CandleRow.__table__
        query = select(t.c.open_time, t.c.open, t.c.high, t.c.low, t.c.close, t.c.volume, t.c.quote_volume,
                       t.c.buy_volume, t.c.trade_count).where(
            t.c.exchange == exchange, t.c.symbol == symbol, t.c.timeframe == timeframe.value)
        if start_ms is not None:
            query = query.where(t.c.open_time >= ms_to_datetime(start_ms))
        if end_ms is not None:
            query = query.where(t.c.open_time < ms_to_datetime(end_ms))
        query = query.order_by(t.c.open_time.desc() if newest else t.c.open_time)
        if limit is not None:
            query = query.limit(limit)
        rows = [(datetime_to_ms(r[0]), *r[1:]) for r in conn.execute(query)]
        out = np.array(rows, dtype=CANDLE_ARRAY) if rows else np.empty(0, dtype=CANDLE_ARRAY)
    return out[::-1] if newest else out


def get_candles(
    session: Session,
    exchange: str,
    symbol: str,
    timeframe: Timeframe,
    start_ms: int | None = None,
    end_ms: int | None = None,
    limit: int | None = None,
) -> list[Candle]:
    """Candles in ``[start_ms, end_ms)`` ascending; with ``limit`` and no start, the latest ``limit``.

    Read as arrays (:func:`candle_arrays`), then one :class:`Candle` per row; callers that only need
    the numbers (charts) should take the arrays.
    """
    arrays = candle_arrays(session, exchange, symbol, timeframe, start_ms, end_ms, limit)
    return [Candle(exchange, symbol, timeframe, *row) for row in arrays.tolist()]


def load_candles_frame(
    session: Session,
    exchange: str,
    symbol: str,
    timeframe: Timeframe,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> pd.DataFrame:
    """Candles as a DataFrame (``open_time`` in epoch ms, int64) for analytics and backtests.

    Built from :func:`candle_arrays` (on PostgreSQL one binary ``COPY … TO STDOUT`` decoded by numpy,
    about ten times faster than fetching row objects; see docs/backtesting.md for the figures).
    """
    import pandas as pd

    arrays = candle_arrays(session, exchange, symbol, timeframe, start_ms, end_ms)
    return pd.DataFrame({"open_time": arrays["open_time_ms"], **{c: arrays[c] for c in _FRAME_COLUMNS[1:]}})


_FRAME_COLUMNS = ["open_time", "open", "high", "low", "close", "volume"]


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
    """Delete raw trades with ``ts`` before ``older_than`` (the plain-PostgreSQL/SQLite retention job;
    one range delete through the ``ts`` index, BRIN on PostgreSQL)."""
    result = cast("CursorResult[tuple[()]]", session.execute(delete(TradeRow).where(TradeRow.ts < older_than)))
    return int(result.rowcount or 0)


def retention_cutoff(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


_PG_MARKETS = text("""
WITH RECURSIVE markets AS (
    (SELECT exchange, symbol, timeframe FROM candles ORDER BY exchange, symbol, timeframe LIMIT 1)
    UNION ALL
    SELECT next.exchange, next.symbol, next.timeframe FROM markets, LATERAL (
        SELECT c.exchange, c.symbol, c.timeframe FROM candles c
        WHERE (c.exchange, c.symbol, c.timeframe) > (markets.exchange, markets.symbol, markets.timeframe)
        ORDER BY c.exchange, c.symbol, c.timeframe LIMIT 1) next
)
SELECT exchange, symbol, timeframe FROM markets""")


def list_markets(session: Session) -> list[tuple[str, str, str]]:
    """Distinct (exchange, symbol, timeframe) combinations that have candles, in key order.

    On PostgreSQL a loose index scan of the primary key (one index probe per market, a recursive
    query): ``SELECT DISTINCT`` reads every row, 30 ms on 110k candles and seconds on millions.
    """
    if _connection(session).dialect.name == "postgresql":
        return [(r[0], r[1], r[2]) for r in session.execute(_PG_MARKETS)]
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
