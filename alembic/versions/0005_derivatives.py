"""Perpetual-swap state (issue 14.3): ``funding_rates``, ``open_interest`` and ``liquidations``.

Funding rates and open interest are keyed by market and report time; liquidations have an id (a venue may
report two forced orders of one market in the same millisecond) and an index on market and time.

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'funding_rates',
        sa.Column('exchange', sa.String(length=32), nullable=False),
        sa.Column('symbol', sa.String(length=64), nullable=False),
        sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
        sa.Column('rate', sa.Double(), nullable=True),
        sa.Column('funding_time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('next_rate', sa.Double(), nullable=True),
        sa.Column('mark_price', sa.Double(), nullable=True),
        sa.Column('venue_symbol', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('exchange', 'symbol', 'ts', name=op.f('pk_funding_rates')),
    )
    op.create_table(
        'open_interest',
        sa.Column('exchange', sa.String(length=32), nullable=False),
        sa.Column('symbol', sa.String(length=64), nullable=False),
        sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
        sa.Column('contracts', sa.Double(), nullable=False),
        sa.Column('base', sa.Double(), nullable=True),
        sa.Column('venue_symbol', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('exchange', 'symbol', 'ts', name=op.f('pk_open_interest')),
    )
    op.create_table(
        'liquidations',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('exchange', sa.String(length=32), nullable=False),
        sa.Column('symbol', sa.String(length=64), nullable=False),
        sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
        sa.Column('side', sa.String(length=4), nullable=False),
        sa.Column('price', sa.Double(), nullable=False),
        sa.Column('size', sa.Double(), nullable=False),
        sa.Column('venue_symbol', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_liquidations')),
    )
    op.create_index('ix_liquidations_market_ts', 'liquidations', ['exchange', 'symbol', 'ts'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_liquidations_market_ts', table_name='liquidations')
    op.drop_table('liquidations')
    op.drop_table('open_interest')
    op.drop_table('funding_rates')
