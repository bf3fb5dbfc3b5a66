"""Fills: an order may fill in parts (issue 14.4's order-book mode), so ``fills.order_id`` is no longer unique.

The unique constraint goes; an index on ``order_id`` keeps the order -> fills look-up. Downgrading puts the
constraint back, which fails if some order has already been filled in parts.

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.drop_constraint('uq_fills_order_id', type_='unique')
        batch_op.create_index('ix_fills_order_id', ['order_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.drop_index('ix_fills_order_id')
        batch_op.create_unique_constraint('uq_fills_order_id', ['order_id'])
