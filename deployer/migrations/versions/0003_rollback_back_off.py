"""Rollback back-off: failed rollback attempts in a row, and how many before a human takes over.

Revision ID: 0003
Revises: 0002
Created: 2026-11-30 04:16:53.257108
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    # Existing deployments get the defaults the model uses, so NOT NULL holds for old rows.
    with op.batch_alter_table('deployment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rollback_failures', sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column('max_rollback_failures', sa.Integer(), nullable=False, server_default="5"))


def downgrade() -> None:
    """Undo this revision."""
    with op.batch_alter_table('deployment', schema=None) as batch_op:
        batch_op.drop_column('max_rollback_failures')
        batch_op.drop_column('rollback_failures')
