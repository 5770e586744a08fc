"""The initial schema: the tables as the controller created them before migrations existed.

Revision ID: 0001
Revises: 
Created: 2026-11-30 03:41:30.664554
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table('auditevent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('deployment_id', sa.Integer(), nullable=True),
    sa.Column('release_id', sa.Integer(), nullable=True),
    sa.Column('from_status', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('to_status', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('auditevent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auditevent_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_auditevent_deployment_id'), ['deployment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_auditevent_kind'), ['kind'], unique=False)

    op.create_table('command',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('ABORT', 'PAUSE', 'RESUME', 'PROMOTE', 'POLL', name='commandkind'), nullable=False),
    sa.Column('deployment_id', sa.Integer(), nullable=True),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('handled_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('hoststate',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('desired_version', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('desired_artifact', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('restart_generation', sa.Integer(), nullable=False),
    sa.Column('restarted_generation', sa.Integer(), nullable=False),
    sa.Column('observed_version', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('healthy', sa.Boolean(), nullable=False),
    sa.Column('role', sa.Enum('IDLE', 'CANARY', 'BASELINE', 'WAVE', name='hostrole'), nullable=False),
    sa.Column('deployment_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('lock',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('release',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sa.Enum('BOOTSTRAP', 'DEPLOY', 'BISECT', 'ROLLBACK', name='releasekind'), nullable=False),
    sa.Column('previous_sha', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('commit_shas', sa.JSON(), nullable=True),
    sa.Column('status', sa.Enum('QUEUED', 'TESTING', 'BUILDING', 'CANARY', 'ROLLING_OUT', 'PAUSED', 'ROLLING_BACK', 'SUCCEEDED', 'TESTS_FAILED', 'BUILD_FAILED', 'ROLLED_BACK', 'ABORTED', 'SUPERSEDED', name='status'), nullable=False),
    sa.Column('artifact', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('release', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_release_sha'), ['sha'], unique=False)
        batch_op.create_index(batch_op.f('ix_release_status'), ['status'], unique=False)

    op.create_table('commit',
    sa.Column('sha', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('committed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('discovered_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('status', sa.Enum('PENDING', 'SHIPPED', 'BAD', 'SUSPECT', 'BLOCKED', name='commitstatus'), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['release_id'], ['release.id'], ),
    sa.PrimaryKeyConstraint('sha')
    )
    with op.batch_alter_table('commit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commit_position'), ['position'], unique=False)
        batch_op.create_index(batch_op.f('ix_commit_status'), ['status'], unique=False)

    op.create_table('deployment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('QUEUED', 'TESTING', 'BUILDING', 'CANARY', 'ROLLING_OUT', 'PAUSED', 'ROLLING_BACK', 'SUCCEEDED', 'TESTS_FAILED', 'BUILD_FAILED', 'ROLLED_BACK', 'ABORTED', 'SUPERSEDED', name='status'), nullable=False),
    sa.Column('phase', sa.Enum('DEPLOYING', 'BAKING', name='phase'), nullable=True),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('waves', sa.Integer(), nullable=False),
    sa.Column('extensions', sa.Integer(), nullable=False),
    sa.Column('max_extensions', sa.Integer(), nullable=False),
    sa.Column('paused_from', sa.Enum('QUEUED', 'TESTING', 'BUILDING', 'CANARY', 'ROLLING_OUT', 'PAUSED', 'ROLLING_BACK', 'SUCCEEDED', 'TESTS_FAILED', 'BUILD_FAILED', 'ROLLED_BACK', 'ABORTED', 'SUPERSEDED', name='status'), nullable=True),
    sa.Column('paused_phase', sa.Enum('DEPLOYING', 'BAKING', name='phase'), nullable=True),
    sa.Column('wave_plan', sa.JSON(), nullable=True),
    sa.Column('host_order', sa.JSON(), nullable=True),
    sa.Column('canary_hosts', sa.JSON(), nullable=True),
    sa.Column('baseline_hosts', sa.JSON(), nullable=True),
    sa.Column('version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('previous_version', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('artifact', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('previous_artifact', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('aborted', sa.Boolean(), nullable=False),
    sa.Column('bake_started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('bake_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_verdict', sa.JSON(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['release_id'], ['release.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deployment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deployment_release_id'), ['release_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deployment_status'), ['status'], unique=False)

    op.create_table('stage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deployment_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status', sa.Enum('RUNNING', 'PASSED', 'FAILED', name='stagestatus'), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('log', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployment.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('stage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stage_deployment_id'), ['deployment_id'], unique=False)

    op.create_table('verdict',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deployment_id', sa.Integer(), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('result', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('report', sa.JSON(), nullable=True),
    sa.Column('intervals', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployment.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('verdict', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_verdict_deployment_id'), ['deployment_id'], unique=False)



def downgrade() -> None:
    """Undo this revision."""
    with op.batch_alter_table('verdict', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_verdict_deployment_id'))

    op.drop_table('verdict')
    with op.batch_alter_table('stage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stage_deployment_id'))

    op.drop_table('stage')
    with op.batch_alter_table('deployment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deployment_status'))
        batch_op.drop_index(batch_op.f('ix_deployment_release_id'))

    op.drop_table('deployment')
    with op.batch_alter_table('commit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commit_status'))
        batch_op.drop_index(batch_op.f('ix_commit_position'))

    op.drop_table('commit')
    with op.batch_alter_table('release', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_release_status'))
        batch_op.drop_index(batch_op.f('ix_release_sha'))

    op.drop_table('release')
    op.drop_table('lock')
    op.drop_table('hoststate')
    op.drop_table('command')
    with op.batch_alter_table('auditevent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auditevent_kind'))
        batch_op.drop_index(batch_op.f('ix_auditevent_deployment_id'))
        batch_op.drop_index(batch_op.f('ix_auditevent_at'))

    op.drop_table('auditevent')
    # PostgreSQL keeps enum types after their tables are gone.
    for name in ("status", "phase", "commandkind", "hostrole", "releasekind", "commitstatus", "stagestatus"):
        sa.Enum(name=name).drop(op.get_bind(), checkfirst=True)
