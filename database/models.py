"""SQLAlchemy 2.0 typed models. Alembic (alembic/versions) owns the schema; these mirror it.

Market data (prices, sizes, volumes) is float64 (``Double``); money in the paper-trading
tables (balances, fees, PnL) is ``Numeric`` and rounded as docs/paper_trading.md describes.
All timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(28, 10)
UtcDateTime = DateTime(timezone=True)
# BIGINT on PostgreSQL, INTEGER (a rowid alias, so autoincrementing) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, datetime: UtcDateTime, Decimal: Money}


# ---------------------------------------------------------------------------- market data


class Instrument(Base):
    __tablename__ = "instruments"
    __table_args__ = (UniqueConstraint("exchange", "symbol"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    inst_type: Mapped[str] = mapped_column(String(16), default="SPOT")
    base_currency: Mapped[str | None] = mapped_column(String(16))
    quote_currency: Mapped[str | None] = mapped_column(String(16))
    tick_size: Mapped[float | None] = mapped_column(Double)
    lot_size: Mapped[float | None] = mapped_column(Double)
    contract_value: Mapped[float | None] = mapped_column(Double)
    state: Mapped[str] = mapped_column(String(16), default="live")
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class TradeRow(Base):
    """Raw public trades (kept for ``TRADE_RETENTION_DAYS``)."""

    __tablename__ = "trades"
    # Trades arrive in time order: a BRIN index on ts (tiny, next to free on insert) serves the
    # retention job's range delete; every B-tree costs insert speed on the hot write path, so the
    # primary key is the only one. (SQLite: a plain index.)
    __table_args__ = (Index("ix_trades_ts", "ts", postgresql_using="brin"),)

    # Unique on (exchange, symbol, trade_id). On TimescaleDB the migration widens the key with
    # ``ts`` (a hypertable's unique keys must hold its time column); a trade id has one ts.
    exchange: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    trade_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(UtcDateTime)
    price: Mapped[float] = mapped_column(Double)
    size: Mapped[float] = mapped_column(Double)
    side: Mapped[str] = mapped_column(String(4))


class CandleRow(Base):
    __tablename__ = "candles"
    # The primary key (exchange, symbol, timeframe, open_time) is the time-range index.

    exchange: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(8), primary_key=True)
    open_time: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    open: Mapped[float] = mapped_column(Double)
    high: Mapped[float] = mapped_column(Double)
    low: Mapped[float] = mapped_column(Double)
    close: Mapped[float] = mapped_column(Double)
    volume: Mapped[float] = mapped_column(Double)
    quote_volume: Mapped[float] = mapped_column(Double, default=0.0)
    buy_volume: Mapped[float] = mapped_column(Double, default=0.0)
    trade_count: Mapped[int] = mapped_column(Integer, default=0)


class BookSnapshotRow(Base):
    """The best levels of one market's order book at one moment, stored every ``BOOK_SNAPSHOT_S`` seconds by
    :class:`data.bookkeeper.BookKeeper`: ``bids`` high to low and ``asks`` low to high, ``[[price, size], ...]``."""

    __tablename__ = "book_snapshots"
    # The primary key (exchange, symbol, ts) is the time-range index (on TimescaleDB: a hypertable on ts).

    exchange: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    bids: Mapped[list[list[float]]] = mapped_column(JSON)
    asks: Mapped[list[list[float]]] = mapped_column(JSON)
    update_id: Mapped[int | None] = mapped_column(BigInteger)  # the venue's sequence id, when it has one


class FundingRateRow(Base):
    """A perpetual's funding rate as the venue reported it at ``ts``: ``rate`` settles at ``funding_time``."""

    __tablename__ = "funding_rates"

    exchange: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    rate: Mapped[float | None] = mapped_column(Double)
    funding_time: Mapped[datetime] = mapped_column(UtcDateTime)
    next_rate: Mapped[float | None] = mapped_column(Double)
    mark_price: Mapped[float | None] = mapped_column(Double)
    venue_symbol: Mapped[str] = mapped_column(String(64))


class OpenInterestRow(Base):
    __tablename__ = "open_interest"

    exchange: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    contracts: Mapped[float] = mapped_column(Double)
    base: Mapped[float | None] = mapped_column(Double)
    venue_symbol: Mapped[str] = mapped_column(String(64))


class LiquidationRow(Base):
    """A forced order: ``side`` is the liquidation order's (a liquidated long sells)."""

    __tablename__ = "liquidations"
    __table_args__ = (Index("ix_liquidations_market_ts", "exchange", "symbol", "ts"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime] = mapped_column(UtcDateTime)
    side: Mapped[str] = mapped_column(String(4))
    price: Mapped[float] = mapped_column(Double)
    size: Mapped[float] = mapped_column(Double)
    venue_symbol: Mapped[str] = mapped_column(String(64))


# ---------------------------------------------------------------------------- live (paper) trading


class Bot(Base):
    __tablename__ = "bots"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="created")
    status_reason: Mapped[str | None] = mapped_column(Text)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    timeframe: Mapped[str] = mapped_column(String(8))
    strategy: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_path: Mapped[str | None] = mapped_column(Text)
    starting_balance: Mapped[Decimal] = mapped_column(Money)
    balance: Mapped[Decimal] = mapped_column(Money)
    equity: Mapped[Decimal] = mapped_column(Money)
    fees_paid: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    realised_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    peak_equity: Mapped[Decimal] = mapped_column(Money)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_candle_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)


class SignalRow(Base):
    __tablename__ = "signals"
    __table_args__ = (
        UniqueConstraint("source", "exchange", "symbol", "timeframe", "candle_time"),
        Index("ix_signals_symbol_time", "exchange", "symbol", "timeframe", "candle_time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bot_id: Mapped[int | None] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(128))
    strategy: Mapped[str] = mapped_column(String(64))
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    timeframe: Mapped[str] = mapped_column(String(8))
    candle_time: Mapped[datetime] = mapped_column(UtcDateTime)
    signal_type: Mapped[str] = mapped_column(String(4))
    strength: Mapped[float] = mapped_column(Double, default=0.0)
    reason: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[float | None] = mapped_column(Double)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_bot_status", "bot_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    client_order_id: Mapped[str] = mapped_column(String(96), unique=True)
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))
    order_type: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[Decimal] = mapped_column(Money)
    limit_price: Mapped[float | None] = mapped_column(Double)
    stop_price: Mapped[float | None] = mapped_column(Double)
    status: Mapped[str] = mapped_column(String(16), default="open")
    reason: Mapped[str] = mapped_column(Text, default="")
    candle_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)


class Fill(Base):
    """A virtual (paper) trade."""

    __tablename__ = "fills"
    __table_args__ = (Index("ix_fills_bot_ts", "bot_id", "ts"), Index("ix_fills_order_id", "order_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))  # an order may fill in parts
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))
    quantity: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money)
    slippage_bps: Mapped[float] = mapped_column(Double, default=0.0)
    realised_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    position_after: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    balance_after: Mapped[Decimal] = mapped_column(Money)
    liquidity: Mapped[str] = mapped_column(String(8), default="taker")
    reason: Mapped[str] = mapped_column(Text, default="")
    ts: Mapped[datetime] = mapped_column(UtcDateTime)


class Position(Base):
    __tablename__ = "positions"
    __table_args__ = (Index("ix_positions_bot_status", "bot_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(Money)
    entry_price: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(8), default="open")
    stop_loss: Mapped[float | None] = mapped_column(Double)
    take_profit: Mapped[float | None] = mapped_column(Double)
    trailing_peak: Mapped[float | None] = mapped_column(Double)
    fees: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    realised_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    exit_price: Mapped[Decimal | None] = mapped_column(Money)
    exit_reason: Mapped[str | None] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class EquitySnapshot(Base):
    __tablename__ = "equity_snapshots"
    __table_args__ = (UniqueConstraint("bot_id", "ts"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(UtcDateTime)
    equity: Mapped[Decimal] = mapped_column(Money)
    balance: Mapped[Decimal] = mapped_column(Money)
    position_value: Mapped[Decimal] = mapped_column(Money)
    unrealised_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    drawdown: Mapped[float] = mapped_column(Double, default=0.0)


class BotEvent(Base):
    __tablename__ = "bot_events"
    __table_args__ = (Index("ix_bot_events_bot_ts", "bot_id", "ts"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(default=utc_now)
    candle_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    level: Mapped[str] = mapped_column(String(8), default="INFO")
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# ---------------------------------------------------------------------------- backtests


class StrategyRun(Base):
    __tablename__ = "strategy_runs"
    __table_args__ = (Index("ix_strategy_runs_status", "status"), Index("ix_strategy_runs_parent", "parent_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("strategy_runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="backtest")
    name: Mapped[str | None] = mapped_column(String(128))
    strategy: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    exchange: Mapped[str | None] = mapped_column(String(32))
    symbol: Mapped[str | None] = mapped_column(String(64))
    timeframe: Mapped[str | None] = mapped_column(String(8))
    start_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    data_source: Mapped[str | None] = mapped_column(Text)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Double, default=0.0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(128))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    score: Mapped[float | None] = mapped_column(Double)  # an optimisation trial's objective value
    equity_curve: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # a running job's last sign of life
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class StrategySignal(Base):
    __tablename__ = "strategy_signals"
    __table_args__ = (Index("ix_strategy_signals_run_time", "run_id", "candle_time"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("strategy_runs.id", ondelete="CASCADE"))
    candle_time: Mapped[datetime] = mapped_column(UtcDateTime)
    signal_type: Mapped[str] = mapped_column(String(4))
    strength: Mapped[float] = mapped_column(Double, default=0.0)
    reason: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[float | None] = mapped_column(Double)


class BacktestTrade(Base):
    __tablename__ = "backtest_trades"
    __table_args__ = (Index("ix_backtest_trades_run", "run_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("strategy_runs.id", ondelete="CASCADE"))
    side: Mapped[str] = mapped_column(String(8))
    entry_time: Mapped[datetime] = mapped_column(UtcDateTime)
    exit_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    entry_price: Mapped[float] = mapped_column(Double)
    exit_price: Mapped[float | None] = mapped_column(Double)
    quantity: Mapped[float] = mapped_column(Double)
    fees: Mapped[float] = mapped_column(Double, default=0.0)
    pnl: Mapped[float] = mapped_column(Double, default=0.0)
    return_pct: Mapped[float] = mapped_column(Double, default=0.0)
    exit_reason: Mapped[str] = mapped_column(String(32), default="")
    entry_bar: Mapped[int] = mapped_column(Integer, default=0)  # index into the run's candles
    exit_bar: Mapped[int | None] = mapped_column(Integer)


# ---------------------------------------------------------------------------- operations


class SystemEvent(Base):
    __tablename__ = "system_events"
    __table_args__ = (Index("ix_system_events_ts", "ts"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(default=utc_now)
    level: Mapped[str] = mapped_column(String(8), default="INFO")
    component: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32), default="log")
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ComponentHealth(Base):
    """Latest health report per component (collector per symbol, writer, bot manager…)."""

    __tablename__ = "component_health"

    component: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class ApiCredential(Base):
    """Exchange API credentials for live mode, encrypted with ``TCP_SECRET_KEY`` (database/crypto.py).

    ``ciphertext`` is a Fernet token of a JSON object; nothing secret is stored in clear.
    """

    __tablename__ = "api_credentials"
    __table_args__ = (UniqueConstraint("exchange", "label"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)
