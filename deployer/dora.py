"""The four DORA figures over a window, from release rows (pure: the caller passes `now`).

* deploys per day: releases that reached the whole fleet, per day of the window;
* lead time: merge (commit time) -> the release carrying it reached the whole fleet, median;
* change failure rate: of the releases that reached production hosts (the canary or more),
  the share that had to be rolled back;
* time to restore: a rolled-back release's new version started serving -> every host back, median.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, select

from deployer.model import Commit, Deployment, Release, ReleaseKind
from deployer.pipeline import Status
from deployer.readmodels import aware, seconds_between
from deployer.views import Dora

SERVED = (Status.SUCCEEDED, Status.ROLLED_BACK)


@dataclass(frozen=True)
class Finished:
    status: Status
    kind: ReleaseKind
    serving_at: datetime | None  # when the new version first took traffic (the canary's deploy)
    finished_at: datetime
    merged_at: list[datetime]


def compute(rows: list[Finished], *, days: int) -> Dora:
    """DORA figures of releases that finished within the window."""
    shipped = [r for r in rows if r.status is Status.SUCCEEDED and r.kind is not ReleaseKind.BOOTSTRAP]
    failed = [r for r in rows if r.status is Status.ROLLED_BACK]
    leads = [s for r in shipped for m in r.merged_at if (s := seconds_between(m, r.finished_at)) is not None
             and s >= 0]
    restores = [s for r in failed if (s := seconds_between(r.serving_at, r.finished_at)) is not None]
    served = len(shipped) + len(failed)
    return Dora(days=days, deploys=len(shipped), deploys_per_day=round(len(shipped) / days, 2),
                median_lead_time_s=round(statistics.median(leads), 1) if leads else None,
                change_failure_rate=round(len(failed) / served, 3) if served else None,
                median_time_to_restore_s=round(statistics.median(restores), 1) if restores else None)


def load(session: Session, *, now: datetime, days: int) -> list[Finished]:
    """Releases that finished within `days` before `now`, with their commits' merge times."""
    since = now - timedelta(days=days)
    # Columns, not rows: whole deployments carry large JSON documents the figures do not need.
    window = (col(Release.finished_at) >= since,
              or_(col(Release.status) == Status.SUCCEEDED, col(Release.status) == Status.ROLLED_BACK))
    releases = list(session.exec(
        select(Release.id, Release.status, Release.kind, Release.finished_at, Deployment.bake_started_at,
               Deployment.created_at).outerjoin(Deployment, col(Deployment.release_id) == Release.id).where(*window)))
    if not releases:
        return []
    merged: dict[int, list[datetime]] = {}
    for release_id, committed_at in session.exec(
            select(Commit.release_id, Commit.committed_at).join(Release, col(Commit.release_id) == Release.id)
            .where(*window)):
        if release_id is not None and committed_at is not None:
            merged.setdefault(release_id, []).append(committed_at)
    out = []
    for release_id, status, kind, finished_at, bake_started_at, created_at in releases:
        finished = aware(finished_at)
        assert finished is not None
        out.append(Finished(status=status, kind=kind, serving_at=aware(bake_started_at or created_at),
                            finished_at=finished,
                            merged_at=[m for m in (aware(x) for x in merged.get(release_id, [])) if m is not None]))
    return out
