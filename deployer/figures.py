"""Aggregates over the whole history for the platform's /metrics, in a few grouped queries."""

from __future__ import annotations

import re

from sqlalchemy import func
from sqlmodel import Session, col, select

from deployer.model import AuditEvent, Commit, CommitStatus, Deployment, Release, Stage, Verdict
from deployer.pipeline import Status
from deployer.readmodels import seconds_between
from deployer.views import PlatformFigures

WAITING = (CommitStatus.PENDING, CommitStatus.BLOCKED, CommitStatus.SUSPECT)
_NUMBERED = re.compile(r"-\d+$")


def platform_figures(session: Session) -> PlatformFigures:
    """Release outcomes, rollbacks, verdicts, the queue, stage durations, lead and restore times."""
    releases = {(kind.value, status.value): int(n) for kind, status, n in session.exec(
        select(Release.kind, Release.status, func.count()).where(col(Release.finished_at).is_not(None))
        .group_by(Release.kind, Release.status))}
    rollbacks = {str(event): int(n) for event, n in session.exec(
        select(AuditEvent.event, func.count()).where(AuditEvent.kind == "transition",
                                                     AuditEvent.to_status == Status.ROLLING_BACK.value)
        .group_by(AuditEvent.event))}
    verdicts = {str(result): int(n) for result, n in session.exec(
        select(Verdict.result, func.count()).group_by(Verdict.result))}
    queue = {s.value: 0 for s in WAITING}
    for status, n in session.exec(select(Commit.status, func.count()).where(col(Commit.status).in_(WAITING))
                                  .group_by(Commit.status)):
        queue[status.value] = int(n)
    stages: dict[str, list[float]] = {}
    for name, started, finished in session.exec(select(Stage.name, Stage.started_at, Stage.finished_at)
                                                .where(col(Stage.finished_at).is_not(None))):
        seconds = seconds_between(started, finished)
        if seconds is not None:
            stages.setdefault(_NUMBERED.sub("", name), []).append(seconds)
    leads = [s for merged, done in session.exec(
        select(Commit.committed_at, Release.finished_at).join(Release, col(Commit.release_id) == Release.id)
        .where(Commit.status == CommitStatus.SHIPPED, Release.status == Status.SUCCEEDED))
        if (s := seconds_between(merged, done)) is not None and s >= 0]
    restores = [s for serving, done in session.exec(
        select(Deployment.bake_started_at, Deployment.finished_at).where(Deployment.status == Status.ROLLED_BACK))
        if (s := seconds_between(serving, done)) is not None]
    return PlatformFigures(releases=releases, rollbacks=rollbacks, verdicts=verdicts, queue=queue,
                           stage_seconds=stages, lead_times=leads, restore_times=restores)
