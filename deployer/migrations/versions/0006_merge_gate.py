"""The merge gate: required checks per commit, webhook deliveries seen, commit statuses sent.

Revision ID: 0006
Revises: 0005
Created: 2026-11-30 05:30:42.886662
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table('commit_check',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('tree', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('ref', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('target_branch', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('target_sha', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('state', sa.Enum('QUEUED', 'RUNNING', 'SUCCESS', 'FAILURE', 'ERROR', name='checkstate'), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('log', sa.Text(), nullable=True),
    sa.Column('report', sa.JSON(), nullable=True),
    sa.Column('reused_from', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sha', 'name', name='uq_commit_check_sha_name')
    )
    with op.batch_alter_table('commit_check', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commit_check_sha'), ['sha'], unique=False)
        batch_op.create_index(batch_op.f('ix_commit_check_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_commit_check_tree'), ['tree'], unique=False)

    op.create_table('posted_status',
    sa.Column('sha', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('context', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=140), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('sha', 'context')
    )
    op.create_table('webhook_delivery',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    """Undo this revision."""
    op.drop_table('webhook_delivery')
    op.drop_table('posted_status')
    with op.batch_alter_table('commit_check', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commit_check_tree'))
        batch_op.drop_index(batch_op.f('ix_commit_check_state'))
        batch_op.drop_index(batch_op.f('ix_commit_check_sha'))

    op.drop_table('commit_check')
    # PostgreSQL keeps enum types apart from tables.
    sa.Enum(name='checkstate').drop(op.get_bind(), checkfirst=True)
