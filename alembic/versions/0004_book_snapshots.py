"""Order-book snapshots (issue 14.2): the best levels of each market's book every few seconds.

On TimescaleDB (when the extension is installed in the database, as the first migration does where it is
available) ``book_snapshots`` becomes a hypertable too, in 1-day chunks.

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'book_snapshots',
        sa.Column('exchange', sa.String(length=32), nullable=False),
        sa.Column('symbol', sa.String(length=64), nullable=False),
        sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
        sa.Column('bids', sa.JSON(), nullable=False),
        sa.Column('asks', sa.JSON(), nullable=False),
        sa.Column('update_id', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('exchange', 'symbol', 'ts', name=op.f('pk_book_snapshots')),
    )
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql' and bind.execute(
            sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).first() is not None:
        op.execute("SELECT create_hypertable('book_snapshots', 'ts', chunk_time_interval => INTERVAL '1 day')")


def downgrade() -> None:
    op.drop_table('book_snapshots')
