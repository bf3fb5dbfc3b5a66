"""Order-book snapshots: batched inserts (a repeated ``(exchange, symbol, ts)`` keeps the first) and reads."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from config.domain import BookTop, datetime_to_ms, ms_to_datetime
from database.models import BookSnapshotRow


def add_book_snapshots(session: Session, tops: Sequence[BookTop]) -> int:
    """Insert ``tops``; returns how many rows were given (duplicates are ignored, not counted apart)."""
    if not tops:
        return 0
    rows = [{"exchange": t.exchange, "symbol": t.symbol, "ts": ms_to_datetime(t.ts_ms),
             "bids": [list(level) for level in t.bids], "asks": [list(level) for level in t.asks],
             "update_id": t.update_id} for t in tops]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(BookSnapshotRow).on_conflict_do_nothing(), rows)
    return len(rows)


def get_book_snapshots(session: Session, exchange: str, symbol: str, start_ms: int | None = None,
                       end_ms: int | None = None) -> list[BookTop]:
    """Snapshots with ``start_ms <= ts < end_ms``, oldest first."""
    query = select(BookSnapshotRow).where(BookSnapshotRow.exchange == exchange, BookSnapshotRow.symbol == symbol)
    if start_ms is not None:
        query = query.where(BookSnapshotRow.ts >= ms_to_datetime(start_ms))
    if end_ms is not None:
        query = query.where(BookSnapshotRow.ts < ms_to_datetime(end_ms))
    return [_top(r) for r in session.scalars(query.order_by(BookSnapshotRow.ts))]


def latest_book_snapshots(session: Session) -> list[BookTop]:
    """The newest stored snapshot of every market."""
    newest = (select(BookSnapshotRow.exchange, BookSnapshotRow.symbol, func.max(BookSnapshotRow.ts).label("ts"))
              .group_by(BookSnapshotRow.exchange, BookSnapshotRow.symbol).subquery())
    rows = session.scalars(select(BookSnapshotRow).join(newest, (BookSnapshotRow.exchange == newest.c.exchange)
                                                        & (BookSnapshotRow.symbol == newest.c.symbol)
                                                        & (BookSnapshotRow.ts == newest.c.ts)))
    return [_top(r) for r in rows]


def _top(r: BookSnapshotRow) -> BookTop:
    return BookTop(r.exchange, r.symbol, datetime_to_ms(r.ts), tuple((float(p), float(s)) for p, s in r.bids),
                   tuple((float(p), float(s)) for p, s in r.asks), r.update_id)
