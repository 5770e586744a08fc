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
    releases = list(session.exec(select(Release).where(col(Release.finished_at) >= since,
                                                       or_(col(Release.status) == Status.SUCCEEDED,
                                                           col(Release.status) == Status.ROLLED_BACK))))
    if not releases:
        return []
    ids = [r.id for r in releases]
    serving: dict[int, datetime | None] = {}
    for d in session.exec(select(Deployment).where(col(Deployment.release_id).in_(ids))):
        serving[d.release_id] = d.bake_started_at or d.created_at
    merged: dict[int, list[datetime]] = {}
    for c in session.exec(select(Commit).where(col(Commit.release_id).in_(ids))):
        if c.release_id is not None and c.committed_at is not None:
            merged.setdefault(c.release_id, []).append(c.committed_at)
    out = []
    for r in releases:
        assert r.id is not None and r.finished_at is not None
        finished = aware(r.finished_at)
        assert finished is not None
        out.append(Finished(status=r.status, kind=r.kind, serving_at=aware(serving.get(r.id)), finished_at=finished,
                            merged_at=[m for m in (aware(x) for x in merged.get(r.id, [])) if m is not None]))
    return out
