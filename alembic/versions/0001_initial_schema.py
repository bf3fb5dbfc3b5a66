"""Initial schema: market data, live paper trading, backtests, operations.

On PostgreSQL with the ``timescaledb`` extension available, ``candles`` and ``trades`` become
hypertables and ``trades`` gets a retention policy (see docs/database.md); elsewhere they stay
plain tables with time indexes and the application's retention job prunes raw trades.

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 00:51:59.048700
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from database.timescale import enable_timescale

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('exchange', sa.String(length=32), nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('timeframe', sa.String(length=8), nullable=False),
    sa.Column('strategy', sa.String(length=64), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('config_path', sa.Text(), nullable=True),
    sa.Column('starting_balance', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('balance', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('equity', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('fees_paid', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('realised_pnl', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('peak_equity', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('last_candle_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bots')),
    sa.UniqueConstraint('name', name=op.f('uq_bots_name'))
    )
    op.create_table('candles',
    sa.Column('exchange', sa.String(length=32), nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('timeframe', sa.String(length=8), nullable=False),
    sa.Column('open_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('open', sa.Double(), nullable=False),
    sa.Column('high', sa.Double(), nullable=False),
    sa.Column('low', sa.Double(), nullable=False),
    sa.Column('close', sa.Double(), nullable=False),
    sa.Column('volume', sa.Double(), nullable=False),
    sa.Column('quote_volume', sa.Double(), nullable=False),
    sa.Column('buy_volume', sa.Double(), nullable=False),
    sa.Column('trade_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('exchange', 'symbol', 'timeframe', 'open_time', name=op.f('pk_candles'))
    )
    op.create_table('api_credentials',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('exchange', sa.String(length=32), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('ciphertext', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_credentials')),
    sa.UniqueConstraint('exchange', 'label', name=op.f('uq_api_credentials_exchange_label'))
    )
    op.create_table('component_health',
    sa.Column('component', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('component', name=op.f('pk_component_health'))
    )
    op.create_table('instruments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('exchange', sa.String(length=32), nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('inst_type', sa.String(length=16), nullable=False),
    sa.Column('base_currency', sa.String(length=16), nullable=True),
    sa.Column('quote_currency', sa.String(length=16), nullable=True),
    sa.Column('tick_size', sa.Double(), nullable=True),
    sa.Column('lot_size', sa.Double(), nullable=True),
    sa.Column('contract_value', sa.Double(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instruments')),
    sa.UniqueConstraint('exchange', 'symbol', name=op.f('uq_instruments_exchange_symbol'))
    )
    op.create_table('strategy_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('parent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=True),
    sa.Column('strategy', sa.String(length=64), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('exchange', sa.String(length=32), nullable=True),
    sa.Column('symbol', sa.String(length=64), nullable=True),
    sa.Column('timeframe', sa.String(length=8), nullable=True),
    sa.Column('start_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('data_source', sa.Text(), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('progress', sa.Double(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('worker', sa.String(length=128), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('score', sa.Double(), nullable=True),
    sa.Column('equity_curve', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['strategy_runs.id'], name=op.f('fk_strategy_runs_parent_id_strategy_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_strategy_runs'))
    )
    with op.batch_alter_table('strategy_runs', schema=None) as batch_op:
        batch_op.create_index('ix_strategy_runs_parent', ['parent_id'], unique=False)
        batch_op.create_index('ix_strategy_runs_status', ['status'], unique=False)

    op.create_table('system_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('component', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_system_events'))
    )
    with op.batch_alter_table('system_events', schema=None) as batch_op:
        batch_op.create_index('ix_system_events_ts', ['ts'], unique=False)

    op.create_table('trades',
    sa.Column('exchange', sa.String(length=32), nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('trade_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('price', sa.Double(), nullable=False),
    sa.Column('size', sa.Double(), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.PrimaryKeyConstraint('exchange', 'symbol', 'trade_id', name=op.f('pk_trades'))
    )
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.create_index('ix_trades_symbol_ts', ['exchange', 'symbol', 'ts'], unique=False)

    op.create_table('backtest_trades',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('entry_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('exit_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('entry_price', sa.Double(), nullable=False),
    sa.Column('exit_price', sa.Double(), nullable=True),
    sa.Column('quantity', sa.Double(), nullable=False),
    sa.Column('fees', sa.Double(), nullable=False),
    sa.Column('pnl', sa.Double(), nullable=False),
    sa.Column('return_pct', sa.Double(), nullable=False),
    sa.Column('exit_reason', sa.String(length=32), nullable=False),
    sa.Column('entry_bar', sa.Integer(), nullable=False),
    sa.Column('exit_bar', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['strategy_runs.id'], name=op.f('fk_backtest_trades_run_id_strategy_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backtest_trades'))
    )
    with op.batch_alter_table('backtest_trades', schema=None) as batch_op:
        batch_op.create_index('ix_backtest_trades_run', ['run_id'], unique=False)

    op.create_table('bot_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('bot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('candle_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['bot_id'], ['bots.id'], name=op.f('fk_bot_events_bot_id_bots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bot_events'))
    )
    with op.batch_alter_table('bot_events', schema=None) as batch_op:
        batch_op.create_index('ix_bot_events_bot_ts', ['bot_id', 'ts'], unique=False)

    op.create_table('equity_snapshots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('bot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('equity', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('balance', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('position_value', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('unrealised_pnl', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('drawdown', sa.Double(), nullable=False),
    sa.ForeignKeyConstraint(['bot_id'], ['bots.id'], name=op.f('fk_equity_snapshots_bot_id_bots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_equity_snapshots')),
    sa.UniqueConstraint('bot_id', 'ts', name=op.f('uq_equity_snapshots_bot_id_ts'))
    )
    op.create_table('orders',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('bot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('client_order_id', sa.String(length=96), nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('order_type', sa.String(length=16), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('limit_price', sa.Double(), nullable=True),
    sa.Column('stop_price', sa.Double(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('candle_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['bot_id'], ['bots.id'], name=op.f('fk_orders_bot_id_bots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('client_order_id', name=op.f('uq_orders_client_order_id'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_bot_status', ['bot_id', 'status'], unique=False)

    op.create_table('positions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('bot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('entry_price', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('stop_loss', sa.Double(), nullable=True),
    sa.Column('take_profit', sa.Double(), nullable=True),
    sa.Column('trailing_peak', sa.Double(), nullable=True),
    sa.Column('fees', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('realised_pnl', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('exit_price', sa.Numeric(precision=28, scale=10), nullable=True),
    sa.Column('exit_reason', sa.Text(), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['bot_id'], ['bots.id'], name=op.f('fk_positions_bot_id_bots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_positions'))
    )
    with op.batch_alter_table('positions', schema=None) as batch_op:
        batch_op.create_index('ix_positions_bot_status', ['bot_id', 'status'], unique=False)

    op.create_table('signals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('bot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('strategy', sa.String(length=64), nullable=False),
    sa.Column('exchange', sa.String(length=32), nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('timeframe', sa.String(length=8), nullable=False),
    sa.Column('candle_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('signal_type', sa.String(length=4), nullable=False),
    sa.Column('strength', sa.Double(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('price', sa.Double(), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['bot_id'], ['bots.id'], name=op.f('fk_signals_bot_id_bots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signals')),
    sa.UniqueConstraint('source', 'exchange', 'symbol', 'timeframe', 'candle_time', name=op.f('uq_signals_source_exchange_symbol_timeframe_candle_time'))
    )
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.create_index('ix_signals_symbol_time', ['exchange', 'symbol', 'timeframe', 'candle_time'], unique=False)

    op.create_table('strategy_signals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('candle_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('signal_type', sa.String(length=4), nullable=False),
    sa.Column('strength', sa.Double(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('price', sa.Double(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['strategy_runs.id'], name=op.f('fk_strategy_signals_run_id_strategy_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_strategy_signals'))
    )
    with op.batch_alter_table('strategy_signals', schema=None) as batch_op:
        batch_op.create_index('ix_strategy_signals_run_time', ['run_id', 'candle_time'], unique=False)

    op.create_table('fills',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('bot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('price', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('fee', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('slippage_bps', sa.Double(), nullable=False),
    sa.Column('realised_pnl', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('position_after', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('balance_after', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('liquidity', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['bot_id'], ['bots.id'], name=op.f('fk_fills_bot_id_bots'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_fills_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fills')),
    sa.UniqueConstraint('order_id', name=op.f('uq_fills_order_id'))
    )
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.create_index('ix_fills_bot_ts', ['bot_id', 'ts'], unique=False)

    enable_timescale(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.drop_index('ix_fills_bot_ts')

    op.drop_table('fills')
    with op.batch_alter_table('strategy_signals', schema=None) as batch_op:
        batch_op.drop_index('ix_strategy_signals_run_time')

    op.drop_table('strategy_signals')
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.drop_index('ix_signals_symbol_time')

    op.drop_table('signals')
    with op.batch_alter_table('positions', schema=None) as batch_op:
        batch_op.drop_index('ix_positions_bot_status')

    op.drop_table('positions')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_bot_status')

    op.drop_table('orders')
    op.drop_table('equity_snapshots')
    with op.batch_alter_table('bot_events', schema=None) as batch_op:
        batch_op.drop_index('ix_bot_events_bot_ts')

    op.drop_table('bot_events')
    with op.batch_alter_table('backtest_trades', schema=None) as batch_op:
        batch_op.drop_index('ix_backtest_trades_run')

    op.drop_table('backtest_trades')
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_index('ix_trades_symbol_ts')

    op.drop_table('trades')
    with op.batch_alter_table('system_events', schema=None) as batch_op:
        batch_op.drop_index('ix_system_events_ts')

    op.drop_table('system_events')
    with op.batch_alter_table('strategy_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_strategy_runs_status')
        batch_op.drop_index('ix_strategy_runs_parent')

    op.drop_table('strategy_runs')
    op.drop_table('instruments')
    op.drop_table('component_health')
    op.drop_table('api_credentials')
    op.drop_table('candles')
    op.drop_table('bots')
