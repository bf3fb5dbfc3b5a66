"""Trade-id queries of the collector's gap backfill (kept apart from the hot write path in market.py)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from database.models import TradeRow


def latest_trade_id(session: Session, exchange: str, symbol: str) -> int | None:
    """The highest stored trade id of a market (where a restarted collector's trade gap begins)."""
    value = session.scalar(
        select(func.max(TradeRow.trade_id)).where(TradeRow.exchange == exchange, TradeRow.symbol == symbol))
    return None if value is None else int(value)
