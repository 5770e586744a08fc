"""Database rows -> the typed views of deployer.views, with the queries the pages need.

Lists are keyset-paginated on the primary key (`before=<id>`), so the 200th page costs
what the first does, however many releases or audit events there are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlmodel import Session, col, select

from deployer import store
from deployer.model import AuditEvent, Commit, Deployment, HostState, Leader, Release
from deployer.views import (
    BisectNode,
    CommitView,
    DeploymentView,
    EventView,
    HostView,
    LeaderView,
    LockView,
    ReleaseCommit,
    ReleasePage,
    ReleaseRow,
    ReleaseView,
    StageView,
    VerdictView,
)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite gives naive UTC back; make every time aware so differences and ISO output are right."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """end - start in seconds, or None when either is missing."""
    a, b = aware(start), aware(end)
    return (b - a).total_seconds() if a and b else None


def title_of(message: str) -> str:
    """The first line of a commit message."""
    return (message.strip().splitlines() or [""])[0]


def host_view(h: HostState) -> HostView:
    return HostView(name=h.name, address=h.address, desired_version=h.desired_version,
                    observed_version=h.observed_version, healthy=h.healthy, role=h.role, detail=h.detail,
                    updated_at=aware(h.updated_at))


def deployment_view(d: Deployment, hosts: list[HostState] | None = None) -> DeploymentView:
    assert d.id is not None
    done = sum(1 for h in hosts or [] if h.observed_version == d.version)
    return DeploymentView(
        id=d.id, release_id=d.release_id, status=d.status.value, phase=d.phase.value if d.phase else None,
        wave=d.wave, waves=d.waves, wave_plan=d.wave_plan, version=d.version, previous_version=d.previous_version,
        canary_hosts=d.canary_hosts, baseline_hosts=d.baseline_hosts, reason=d.reason, last_verdict=d.last_verdict,
        skip_analysis=d.skip_analysis, created_at=aware(d.created_at), updated_at=aware(d.updated_at),
        finished_at=aware(d.finished_at), hosts_done=done, hosts_total=len(hosts or []))


def release_view(r: Release, deployment: Deployment | DeploymentRef | None) -> ReleaseView:
    assert r.id is not None
    return ReleaseView(id=r.id, sha=r.sha, kind=r.kind, status=r.status.value, commits=list(r.commit_shas),
                       previous_sha=r.previous_sha, created_at=aware(r.created_at), finished_at=aware(r.finished_at),
                       reason=deployment.reason if deployment else "",
                       deployment_id=deployment.id if deployment else None, started_by=r.started_by)


def lock_view(session: Session) -> LockView | None:
    lock = store.get_lock(session)
    return LockView(holder=lock.holder, reason=lock.reason, at=aware(lock.at)) if lock else None


def leader_view(session: Session) -> LeaderView | None:
    leader = session.get(Leader, "controller")
    if leader is None:
        return None
    beat = aware(leader.heartbeat_at)
    age = (datetime.now(timezone.utc) - beat).total_seconds() if beat else 0.0
    return LeaderView(holder=leader.holder, host=leader.host, pid=leader.pid, since=aware(leader.since),
                      heartbeat_at=beat, heartbeat_age_s=round(age, 1))


def commit_view(c: Commit) -> CommitView:
    return CommitView(sha=c.sha, position=c.position, author=c.author, title=title_of(c.message), status=c.status,
                      release_id=c.release_id, committed_at=aware(c.committed_at),
                      discovered_at=aware(c.discovered_at))


def event_view(e: AuditEvent) -> EventView:
    assert e.id is not None
    return EventView(id=e.id, at=aware(e.at), actor=e.actor, kind=e.kind, deployment_id=e.deployment_id,
                     release_id=e.release_id, **{"from": e.from_status}, to=e.to_status, event=e.event,
                     message=e.message, data=e.data or {})


def stage_views(session: Session, deployment_id: int) -> list[StageView]:
    return [StageView(name=s.name, status=s.status, started_at=aware(s.started_at), finished_at=aware(s.finished_at),
                      duration_s=seconds_between(s.started_at, s.finished_at), detail=s.detail, log=s.log)
            for s in store.stages_of(session, deployment_id=deployment_id)]


def verdict_views(session: Session, deployment_id: int) -> list[VerdictView]:
    return [VerdictView(wave=v.wave, result=v.result, score=v.score, reason=v.reason, intervals=v.intervals,
                        at=aware(v.at), report=v.report or {})
            for v in store.verdicts_of(session, deployment_id=deployment_id)]


@dataclass(frozen=True)
class DeploymentRef:
    """What a release list needs of a deployment (not its large JSON columns)."""

    id: int
    reason: str


def deployments_of(session: Session, release_ids: Iterable[int]) -> dict[int, DeploymentRef]:
    """The latest deployment of each release, in one query."""
    ids = list(release_ids)
    if not ids:
        return {}
    rows = session.exec(select(Deployment.release_id, Deployment.id, Deployment.reason)
                        .where(col(Deployment.release_id).in_(ids)).order_by(col(Deployment.id)))
    return {release_id: DeploymentRef(id=did, reason=reason or "") for release_id, did, reason in rows}


def release_commits(session: Session, shas: Iterable[str]) -> dict[str, Commit]:
    wanted = list(set(shas))
    if not wanted:
        return {}
    return {c.sha: c for c in session.exec(select(Commit).where(col(Commit.sha).in_(wanted)))}


def release_page(session: Session, *, status: str | None, author: str | None, kind: str | None,
                 before: int | None, limit: int) -> ReleasePage:
    """Releases newest first, filtered, one page after the keyset `before`."""
    query = select(Release)
    if before is not None:
        query = query.where(col(Release.id) < before)
    if status:
        query = query.where(col(Release.status) == status)
    if kind:
        query = query.where(col(Release.kind) == kind)
    if author:
        # A release's commits point back at the release that last carried them.
        # IN over one indexed lookup of the author's commits, not a correlated subquery per release row.
        query = query.where(col(Release.id).in_(select(Commit.release_id).where(col(Commit.author) == author)))
    rows = list(session.exec(query.order_by(col(Release.id).desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    deployments = deployments_of(session, [r.id for r in rows if r.id is not None])
    commits = release_commits(session, [sha for r in rows for sha in r.commit_shas])
    items = []
    for r in rows:
        assert r.id is not None
        carried = [commits[s] for s in r.commit_shas if s in commits]
        items.append(ReleaseRow(
            release=release_view(r, deployments.get(r.id)),
            commits=[ReleaseCommit(sha=c.sha, author=c.author, title=title_of(c.message),
                                   committed_at=aware(c.committed_at)) for c in carried],
            authors=sorted({c.author for c in carried}), duration_s=seconds_between(r.created_at, r.finished_at)))
    return ReleasePage(items=items, next_before=rows[-1].id if more and rows else None)


def audit_page(session: Session, *, kind: str | None, actor: str | None, deployment_id: int | None,
               before: int | None, after: int | None, limit: int) -> list[AuditEvent]:
    """Audit events newest first (or oldest first after `after`), filtered."""
    query = select(AuditEvent)
    if kind:
        query = query.where(col(AuditEvent.kind) == kind)
    if actor:
        query = query.where(col(AuditEvent.actor) == actor)
    if deployment_id is not None:
        query = query.where(col(AuditEvent.deployment_id) == deployment_id)
    if after is not None:
        return list(session.exec(query.where(col(AuditEvent.id) > after).order_by(col(AuditEvent.id)).limit(limit)))
    if before is not None:
        query = query.where(col(AuditEvent.id) < before)
    return list(session.exec(query.order_by(col(AuditEvent.id).desc()).limit(limit)))


def bisection_tree(session: Session, release: Release) -> BisectNode | None:
    """The failed batch a bisect release came from (or that this release started) and what it tried."""
    if release.id is None or release.kind.value not in ("deploy", "bisect"):
        return None
    # Walk back to the batch that failed: the newest deploy at or before this release holding its commits.
    root = release
    if release.kind.value == "bisect":
        candidates = session.exec(select(Release).where(col(Release.id) < release.id, Release.kind == "deploy")
                                  .order_by(col(Release.id).desc()).limit(50))
        for candidate in candidates:
            if set(release.commit_shas) <= set(candidate.commit_shas):
                root = candidate
                break
        else:
            return None
    assert root.id is not None
    later = list(session.exec(select(Release).where(col(Release.id) > root.id).order_by(col(Release.id)).limit(50)))
    tried: list[Release] = []
    for r in later:
        if r.kind.value != "bisect" or not set(r.commit_shas) <= set(root.commit_shas):
            break
        tried.append(r)
    if not tried:
        return None
    node = _node(root)
    parent = node
    for r in tried:
        child = _node(r)
        parent.children.append(child)
        parent = child
    return node


def _node(r: Release) -> BisectNode:
    assert r.id is not None
    return BisectNode(release_id=r.id, sha=r.sha, kind=r.kind, status=r.status.value, commits=list(r.commit_shas),
                      children=[])
