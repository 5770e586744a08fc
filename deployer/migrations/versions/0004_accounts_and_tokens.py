"""Dashboard accounts, API tokens and sign-in failures; who started a release; fast-path rollbacks.

Revision ID: 0004
Revises: 0003
Created: 2026-11-30 04:29:48.109881
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table('account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('role', sa.Enum('VIEWER', 'RELEASE_MANAGER', 'ADMIN', name='role'), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('session_epoch', sa.Integer(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_name'), ['name'], unique=True)

    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('role', sa.Enum('VIEWER', 'RELEASE_MANAGER', 'ADMIN', name='role'), nullable=False),
    sa.Column('prefix', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('secret_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_token_secret_hash'), ['secret_hash'], unique=True)

    op.create_table('signin_failure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('client', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('signin_failure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signin_failure_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_signin_failure_name'), ['name'], unique=False)

    with op.batch_alter_table('commit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commit_author'), ['author'], unique=False)

    with op.batch_alter_table('deployment', schema=None) as batch_op:
        # Existing rows get a value: a column added NOT NULL needs a server default.
        batch_op.add_column(sa.Column('skip_analysis', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('release', schema=None) as batch_op:
        batch_op.add_column(sa.Column('started_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=''))
        batch_op.create_index(batch_op.f('ix_release_finished_at'), ['finished_at'], unique=False)



def downgrade() -> None:
    """Undo this revision."""
    with op.batch_alter_table('release', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_release_finished_at'))
        batch_op.drop_column('started_by')

    with op.batch_alter_table('deployment', schema=None) as batch_op:
        batch_op.drop_column('skip_analysis')

    with op.batch_alter_table('commit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commit_author'))

    with op.batch_alter_table('signin_failure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signin_failure_name'))
        batch_op.drop_index(batch_op.f('ix_signin_failure_at'))

    op.drop_table('signin_failure')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_token_secret_hash'))

    op.drop_table('api_token')
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_name'))

    op.drop_table('account')
    # PostgreSQL keeps enum types apart from tables.
    sa.Enum(name='role').drop(op.get_bind(), checkfirst=True)
