"""Release bookkeeping: which commits a new release takes, and what its outcome means for them.

Keyword-only functions over a session; the caller owns the transaction, so a release's
outcome and its commits' new statuses are written together. Which commits go next is the
lead-time planner's decision (deployer.planner, pure): this module gathers its facts
(each commit's status and ahead-of-time test result, recent release durations).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from deployer import batching, planner, store
from deployer.model import CheckState, Commit, CommitCheck, CommitStatus, Deployment, HostRole, Release, ReleaseKind
from deployer.pipeline import Status, plan_waves, rollout_order
from deployer.settings import Settings

TESTS = "tests"
# A check that could not run (the platform's error, not the commit's) is not a verdict on the
# commit: the release then runs the tests itself, as it does when tests do not run ahead.
_TEST_STATES = {CheckState.SUCCESS: planner.TestState.PASSED, CheckState.FAILURE: planner.TestState.FAILED,
                CheckState.QUEUED: planner.TestState.RUNNING, CheckState.RUNNING: planner.TestState.RUNNING,
                CheckState.ERROR: planner.TestState.PASSED}


def planner_config(settings: Settings) -> planner.PlannerConfig:
    """The planner's knobs from the settings."""
    p = settings.pipeline
    return planner.PlannerConfig(max_batch=p.max_batch, lead_time_goal_s=p.lead_time_goal,
                                 default_release_s=p.default_release_time)


def test_results(session: Session, *, shas: list[str]) -> dict[str, CommitCheck]:
    """sha -> the `tests` check of each commit that has one."""
    if not shas:
        return {}
    rows = session.exec(select(CommitCheck).where(col(CommitCheck.sha).in_(shas), CommitCheck.name == TESTS)).all()
    return {r.sha: r for r in rows}


def recent_release_durations(session: Session, *, limit: int) -> list[float]:
    """Seconds from creation to the whole fleet of the last `limit` successful deploys, oldest first."""
    rows = session.exec(select(Release).where(Release.status == Status.SUCCEEDED,
                                              col(Release.kind).in_([ReleaseKind.DEPLOY, ReleaseKind.BISECT]),
                                              col(Release.finished_at).is_not(None))
                        .order_by(col(Release.finished_at).desc()).limit(limit)).all()
    return [d for r in reversed(rows) if (d := _seconds(r.created_at, r.finished_at)) is not None]


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    if (start.tzinfo is None) != (end.tzinfo is None):
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    return (end - start).total_seconds()


def _epoch(moment: datetime | None) -> float:
    if moment is None:
        return 0.0
    return (moment.replace(tzinfo=None) - datetime(1970, 1, 1)).total_seconds() if moment.tzinfo is None \
        else moment.timestamp()


def candidates(session: Session, *, commits: list[Commit], settings: Settings) -> list[planner.CandidateCommit]:
    """The branch's commits as the planner sees them: status, tests run ahead, merge time."""
    tests = test_results(session, shas=[c.sha for c in commits if c.status is CommitStatus.PENDING]) \
        if settings.pipeline.tests_ahead else {}
    out = []
    for c in commits:
        if settings.pipeline.tests_ahead:
            row = tests.get(c.sha)
            state = _TEST_STATES[row.state] if row is not None else planner.TestState.NOT_STARTED
        else:
            state = planner.TestState.PASSED  # every release runs its own tests
        # Lead time counts from the merge (the commit's time, as DORA's figure does), else from discovery.
        out.append(planner.CandidateCommit(c.sha, c.status, state, _epoch(c.committed_at or c.discovered_at)))
    return out


def decide(session: Session, *, settings: Settings, now: datetime) -> planner.Decision:
    """The planner's choice of the next release, from the database's facts at `now`."""
    config = planner_config(settings)
    commits = store.branch_commits(session)
    return planner.plan_release(candidates(session, commits=commits, settings=settings), now=_epoch(now),
                                recent_release_s=recent_release_durations(session, limit=config.history),
                                config=config, rate_window_s=max(config.lead_time_goal_s, 60.0))


def superseded_by(session: Session, *, release: Release, settings: Settings, now: datetime) -> planner.Decision | None:
    """The plan that should replace `release` (queued, not started), or None when it still stands."""
    if release.kind is not ReleaseKind.DEPLOY:
        return None
    decision = decide(session, settings=settings, now=now)
    if decision.plan is None:
        return None
    order = {c.sha: i for i, c in enumerate(store.branch_commits(session))}
    queued = batching.ReleasePlan(release.kind, release.sha, tuple(release.commit_shas))
    return decision if planner.supersedes(queued, decision.plan, order) else None


def passed_ahead(session: Session, *, release: Release) -> CommitCheck | None:
    """The release head's passed `tests` check, when every commit it brings passed its tests ahead."""
    if release.kind is ReleaseKind.ROLLBACK:
        return None
    rows = test_results(session, shas=list(release.commit_shas))
    head = rows.get(release.sha)
    if head is None or head.state is not CheckState.SUCCESS:
        return None
    fresh = [c.sha for c in store.commits_of(session, shas=release.commit_shas) if c.status is CommitStatus.PENDING]
    return head if all((r := rows.get(s)) is not None and r.state is CheckState.SUCCESS for s in fresh) else None


def start_next(session: Session, *, settings: Settings, host_names: list[str],
               now: datetime) -> Deployment | None:
    """Create the next release and its queued deployment, or None when nothing can ship now."""
    decision = decide(session, settings=settings, now=now)
    plan = decision.plan
    if plan is None:
        return None
    commits = store.branch_commits(session)
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
                        f"at {plan.sha[:12]}: " + "; ".join(titles[s] for s in plan.commit_shas)
                        + f" — {decision.reason}",
                data={"sha": plan.sha, "commits": list(plan.commit_shas), "plan": decision.reason,
                      "expected_release_s": decision.expected_release_s,
                      "predicted_max_lead_s": decision.predicted_max_lead_s, "goal_met": decision.goal_met})
    return deployment


def settle(session: Session, *, deployment: Deployment, status: Status) -> dict[str, CommitStatus]:
    """Judge the release's commits inside the transaction that made its deployment terminal.

    Doing both in one transaction means a crash can never leave a finished release
    whose commits still look pending (and would be released again).
    """
    release = store.get_release(session, release_id=deployment.release_id)
    if status is Status.SUPERSEDED:
        return _release_commits_again(session, release=release, deployment=deployment)
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


def _release_commits_again(session: Session, *, release: Release, deployment: Deployment) -> dict[str, CommitStatus]:
    """A superseded release judged nothing: its commits wait for the release that replaces it."""
    for commit in store.commits_of(session, shas=release.commit_shas):
        if commit.release_id == release.id:
            commit.release_id = None
            session.add(commit)
    store.audit(session, kind="release_finished", deployment_id=deployment.id, release_id=release.id,
                message=f"release {release.id} superseded before it started; its commits go with a newer one",
                data={"status": Status.SUPERSEDED.value, "commits": {}})
    return {}
