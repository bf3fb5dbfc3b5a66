"""Funding rates, open interest and liquidations: batched inserts (a repeated report is kept once) and reads,
including the funding settlements a backtest charges (:func:`funding_settlements`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from config.domain import FundingRate, Liquidation, OpenInterest, Side, datetime_to_ms, ms_to_datetime
from database.models import FundingRateRow, LiquidationRow, OpenInterestRow


def _insert(session: Session):  # type: ignore[no-untyped-def]
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def add_derivatives(session: Session, messages: Sequence[FundingRate | OpenInterest | Liquidation]) -> int:
    """Store a batch of messages of any of the three kinds; returns how many were given."""
    funding = [{"exchange": m.exchange, "symbol": m.symbol, "ts": ms_to_datetime(m.ts_ms), "rate": m.rate,
                "funding_time": ms_to_datetime(m.funding_time_ms), "next_rate": m.next_rate,
                "mark_price": m.mark_price, "venue_symbol": m.venue_symbol}
               for m in messages if isinstance(m, FundingRate)]
    oi = [{"exchange": m.exchange, "symbol": m.symbol, "ts": ms_to_datetime(m.ts_ms), "contracts": m.contracts,
           "base": m.base, "venue_symbol": m.venue_symbol} for m in messages if isinstance(m, OpenInterest)]
    liquidations = [{"exchange": m.exchange, "symbol": m.symbol, "ts": ms_to_datetime(m.ts_ms), "side": m.side.value,
                     "price": m.price, "size": m.size, "venue_symbol": m.venue_symbol}
                    for m in messages if isinstance(m, Liquidation)]
    insert = _insert(session)
    if funding:
        session.execute(insert(FundingRateRow).on_conflict_do_nothing(), funding)
    if oi:
        session.execute(insert(OpenInterestRow).on_conflict_do_nothing(), oi)
    if liquidations:
        session.execute(insert(LiquidationRow), liquidations)
    return len(funding) + len(oi) + len(liquidations)


def _window(query, column, start_ms: int | None, end_ms: int | None):  # type: ignore[no-untyped-def]
    if start_ms is not None:
        query = query.where(column >= ms_to_datetime(start_ms))
    if end_ms is not None:
        query = query.where(column < ms_to_datetime(end_ms))
    return query


def funding_rates(session: Session, exchange: str, symbol: str, start_ms: int | None = None,
                  end_ms: int | None = None) -> list[FundingRate]:
    q = _window(select(FundingRateRow).where(FundingRateRow.exchange == exchange, FundingRateRow.symbol == symbol),
                FundingRateRow.ts, start_ms, end_ms)
    return [FundingRate(r.exchange, r.symbol, r.venue_symbol, datetime_to_ms(r.ts), r.rate,
                        datetime_to_ms(r.funding_time), r.next_rate, r.mark_price)
            for r in session.scalars(q.order_by(FundingRateRow.ts))]


def open_interest(session: Session, exchange: str, symbol: str, start_ms: int | None = None,
                  end_ms: int | None = None) -> list[OpenInterest]:
    q = _window(select(OpenInterestRow).where(OpenInterestRow.exchange == exchange, OpenInterestRow.symbol == symbol),
                OpenInterestRow.ts, start_ms, end_ms)
    return [OpenInterest(r.exchange, r.symbol, r.venue_symbol, datetime_to_ms(r.ts), r.contracts, r.base)
            for r in session.scalars(q.order_by(OpenInterestRow.ts))]


def liquidations(session: Session, exchange: str, symbol: str, start_ms: int | None = None,
                 end_ms: int | None = None) -> list[Liquidation]:
    q = _window(select(LiquidationRow).where(LiquidationRow.exchange == exchange, LiquidationRow.symbol == symbol),
                LiquidationRow.ts, start_ms, end_ms)
    return [Liquidation(r.exchange, r.symbol, r.venue_symbol, datetime_to_ms(r.ts), Side(r.side), r.price, r.size)
            for r in session.scalars(q.order_by(LiquidationRow.ts, LiquidationRow.id))]


def funding_settlements(session: Session, exchange: str, symbol: str, start_ms: int | None = None,
                        end_ms: int | None = None) -> list[tuple[int, float]]:
    """``(settlement time ms, rate)`` of each settlement in the window: for every ``funding_time`` the stored
    reports name, the rate of the last report made before it (what settled), oldest first."""
    q = _window(select(FundingRateRow.ts, FundingRateRow.funding_time, FundingRateRow.rate)
                .where(FundingRateRow.exchange == exchange, FundingRateRow.symbol == symbol,
                       FundingRateRow.rate.is_not(None), FundingRateRow.ts <= FundingRateRow.funding_time),
                FundingRateRow.funding_time, start_ms, end_ms)
    settled: dict[int, float] = {}
    for _, funding_time, rate in session.execute(q.order_by(FundingRateRow.ts)):
        settled[datetime_to_ms(funding_time)] = rate  # in report order: the last one before it wins
    return sorted(settled.items())
