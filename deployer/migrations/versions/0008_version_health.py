"""Version health: each version's figures while it was live, and the post-deploy watch's evidence.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        'version_health',
        sa.Column('sha', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('figures', sa.JSON(), nullable=True),
        sa.Column('evidence', sa.JSON(), nullable=True),
        sa.Column('rolled_back_release_id', sa.Integer(), nullable=True),
        sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('sha'),
    )


def downgrade() -> None:
    """Undo this revision."""
    op.drop_table('version_health')
