"""Release bookkeeping: which commits a new release takes, and what its outcome means for them.

Keyword-only functions over a session; the caller owns the transaction, so a release's
outcome and its commits' new statuses are written together.
"""

from __future__ import annotations

from sqlmodel import Session

from deployer import batching, store
from deployer.model import CommitStatus, Deployment, HostRole, Release
from deployer.pipeline import Status, plan_waves, rollout_order
from deployer.settings import Settings


def start_next(session: Session, *, settings: Settings, host_names: list[str]) -> Deployment | None:
    """Create the next release and its queued deployment, or None when nothing waits."""
    commits = store.branch_commits(session)
    plan = batching.plan_next_release([batching.CommitRow(c.sha, c.status) for c in commits],
                                      settings.pipeline.max_batch)
    if plan is None:
        return None
    current = store.last_good_release(session)
    assert current is not None, "the controller bootstraps before it releases"
    canary, baseline, order = rollout_order(host_names, settings.rollout.canary_hosts)
    wave_plan = plan_waves(len(host_names), settings.rollout.canary_hosts, settings.rollout.waves)
    release = Release(sha=plan.sha, kind=plan.kind, previous_sha=current.sha, commit_shas=list(plan.commit_shas))
    session.add(release)
    session.flush()
    deployment = Deployment(
        release_id=release.id, version=plan.sha, previous_version=current.sha, previous_artifact=current.artifact,
        waves=len(wave_plan), wave_plan=wave_plan, host_order=order, canary_hosts=canary,
        baseline_hosts=baseline, max_extensions=settings.rollout.max_extensions,
        max_rollback_failures=settings.rollout.rollback_max_failures)
    session.add(deployment)
    for commit in store.commits_of(session, shas=plan.commit_shas):
        commit.release_id = release.id
        session.add(commit)
    session.flush()
    titles = {c.sha: (c.message.strip().splitlines() or [""])[0] for c in commits}
    store.audit(session, kind="release_created", deployment_id=deployment.id, release_id=release.id,
                message=f"release {release.id} ({plan.kind.value}) of {len(plan.commit_shas)} commit(s) "
                        f"at {plan.sha[:12]}: " + "; ".join(titles[s] for s in plan.commit_shas),
                data={"sha": plan.sha, "commits": list(plan.commit_shas)})
    return deployment


def settle(session: Session, *, deployment: Deployment, status: Status) -> dict[str, CommitStatus]:
    """Judge the release's commits inside the transaction that made its deployment terminal.

    Doing both in one transaction means a crash can never leave a finished release
    whose commits still look pending (and would be released again).
    """
    release = store.get_release(session, release_id=deployment.release_id)
    commits = store.branch_commits(session)
    plan = batching.ReleasePlan(release.kind, release.sha, tuple(release.commit_shas))
    rows = [batching.CommitRow(c.sha, c.status) for c in commits]
    changes = batching.settle(rows, plan, succeeded=status is Status.SUCCEEDED, blame=not deployment.aborted)
    by_sha = {c.sha: c for c in commits}
    for sha, new_status in changes.items():
        by_sha[sha].status = new_status
        session.add(by_sha[sha])
    for state in store.host_states(session):
        if state.deployment_id == deployment.id:
            state.role = HostRole.IDLE
            session.add(state)
    bad = [sha[:12] for sha, s in changes.items() if s is CommitStatus.BAD]
    store.audit(session, kind="release_finished", deployment_id=deployment.id, release_id=release.id,
                message=f"release {release.id} {status.value}" + (f"; culprit {', '.join(bad)}" if bad else ""),
                data={"status": status.value, "commits": {k: v.value for k, v in changes.items()}})
    return changes
