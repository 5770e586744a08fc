"""Feature flags: each flag's definition, and the one revision counter of the whole set.

Revision ID: 0009
Revises: 0008
Created: 2026-12-04 21:16:41.047789
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table('feature_flag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('percentage', sa.Float(), nullable=False),
    sa.Column('allow', sa.JSON(), nullable=True),
    sa.Column('deny', sa.JSON(), nullable=True),
    sa.Column('salt', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('archived_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('archived_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('feature_flag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feature_flag_archived_at'), ['archived_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_feature_flag_key'), ['key'], unique=True)

    counter = op.create_table('flag_revision',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    # The counter's one row exists from the start, so concurrent first changes only ever UPDATE it.
    op.bulk_insert(counter, [{'name': 'flags', 'revision': 0, 'updated_at': datetime.now(timezone.utc)}])


def downgrade() -> None:
    """Undo this revision."""
    op.drop_table('flag_revision')
    with op.batch_alter_table('feature_flag', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feature_flag_key'))
        batch_op.drop_index(batch_op.f('ix_feature_flag_archived_at'))

    op.drop_table('feature_flag')
