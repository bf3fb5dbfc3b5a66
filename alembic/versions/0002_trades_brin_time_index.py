"""Raw trades: a BRIN time index instead of the B-tree on (exchange, symbol, ts).

Trades arrive in time order, so a BRIN index on ``ts`` (a few pages for millions of rows, next to
free to maintain) serves the retention job's ``ts < cutoff`` delete as well as the B-tree did, and
the insert path keeps one B-tree (the primary key) instead of two: raw-trade writes go from about
190 k to about 340 k rows/s of index work on the test machine (docs/database.md). SQLite has no BRIN:
there the index is a plain one on ``ts``.

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_index('ix_trades_symbol_ts')
        batch_op.create_index('ix_trades_ts', ['ts'], unique=False, postgresql_using='brin')


def downgrade() -> None:
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_index('ix_trades_ts')
        batch_op.create_index('ix_trades_symbol_ts', ['exchange', 'symbol', 'ts'], unique=False)
