"""Ad-hoc deploy freezes: reason, who, since, until, and who lifted them when.

Revision ID: 0007
Revises: 0006
Created: 2026-11-30 07:31:46.604686
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table('deploy_freeze',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('lifted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('lifted_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deploy_freeze', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deploy_freeze_lifted_at'), ['lifted_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_deploy_freeze_until'), ['until'], unique=False)



def downgrade() -> None:
    """Undo this revision."""
    with op.batch_alter_table('deploy_freeze', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deploy_freeze_until'))
        batch_op.drop_index(batch_op.f('ix_deploy_freeze_lifted_at'))

    op.drop_table('deploy_freeze')
