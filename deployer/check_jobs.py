"""The check jobs: module-level, take ids, safe to run twice (a finished check is left alone).

`tests` runs the pipeline's test command at the commit. `bench` runs the app's benchmark
at the commit and at the target branch's tip, rounds interleaved, and judges every route
with deployer.benchcheck. Either result is reused for another commit with the same tree.
"""

from __future__ import annotations

import logging
import shutil
import threading
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from deployer import store
from deployer.bench_runner import BenchError, Series, run_interleaved
from deployer.benchcheck import compare
from deployer.exceptions import SourceError
from deployer.model import CheckState, CommitCheck, utcnow
from deployer.source import GitSource
from deployer.statuses import StatusPoster, check_status, post_if_changed
from deployer.tests_runner import run_tests

log = logging.getLogger(__name__)
_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
# One mirror per process and repository: git operations on it are serialised by GitSource's lock.
_sources: dict[tuple[str, str], GitSource] = {}


@dataclass(frozen=True)
class CheckContext:
    """Everything a check job needs, picklable so rq can carry it to a worker."""

    database_url: str
    repository: str
    branch: str
    workdir: str
    test_command: str
    test_timeout_s: float
    bench_command: str
    bench_rounds: int
    bench_requests: int
    bench_allowance: float
    bench_confidence: float
    check_timeout_s: float
    dashboard_url: str = ""
    status_url: str | None = None
    status_repo: str = ""
    status_token: str | None = None
    status_retries: int = 4
    status_backoff_s: float = 0.5
    status_timeout_s: float = 5.0

    def source(self) -> GitSource:
        key = (self.repository, self.workdir)
        with _engines_lock:
            if key not in _sources:
                _sources[key] = GitSource(repository=self.repository, branch=self.branch,
                                          mirror_dir=Path(self.workdir) / "checks-mirror.git")
            return _sources[key]

    def poster(self) -> StatusPoster | None:
        if not self.status_url:
            return None
        return StatusPoster(url=self.status_url, repo=self.status_repo, token=self.status_token,
                            retries=self.status_retries, backoff_s=self.status_backoff_s,
                            timeout_s=self.status_timeout_s)


def _engine(url: str) -> Engine:
    with _engines_lock:
        if url not in _engines:
            _engines[url] = store.make_engine(url)
        return _engines[url]


def run_check_job(ctx: CheckContext, check_id: int) -> str:
    """Run one check and record its outcome; returns the final state's value."""
    engine = _engine(ctx.database_url)
    with store.session_scope(engine) as session:
        row = session.get(CommitCheck, check_id)
        if row is None or row.state.finished:
            return row.state.value if row else "gone"
        row.state, row.started_at = CheckState.RUNNING, utcnow()
        session.add(row)
        sha, name, ref, target_branch = row.sha, row.name, row.ref, row.target_branch
    _publish(ctx, engine, sha, name, CheckState.RUNNING, "")
    report: dict[str, object] = {}
    target_sha: str | None = None
    tree: str | None = None
    reused: str | None = None
    try:
        source = ctx.source()
        _make_available(source, sha, ref)
        tree = source.tree_of(sha)
        previous = _finished_with_tree(engine, tree=tree, name=name, not_sha=sha)
        if previous is not None:
            state, detail, output, report, target_sha = (previous.state, previous.detail, previous.log,
                                                         dict(previous.report or {}), previous.target_sha)
            reused = previous.sha
            detail = f"{detail} (same tree as {previous.sha[:12]}, not run again)"
        elif name == "tests":
            state, detail, output = _tests(ctx, source, sha)
        elif name == "bench":
            state, detail, output, report, target_sha = _bench(ctx, source, sha, target_branch)
        else:
            state, detail, output = CheckState.ERROR, f"unknown check {name!r}", ""
    except Exception as exc:  # a check that cannot run is an error of the platform, not a failure of the commit
        log.exception("check %s of %s could not run", name, sha[:12])
        state, detail, output = CheckState.ERROR, f"could not run: {exc}", traceback.format_exc()
    with store.session_scope(engine) as session:
        row = session.get(CommitCheck, check_id)
        if row is None:
            return "gone"
        row.state, row.detail, row.log, row.report = state, detail[:2000], output[-64 * 1024:], report
        row.tree, row.target_sha, row.reused_from, row.finished_at = tree or row.tree, target_sha, reused, utcnow()
        session.add(row)
        store.audit(session, kind="check_finished", actor="checks",
                    message=f"{name} of {sha[:12]}: {state.value}: {detail[:300]}",
                    data={"sha": sha, "check": name, "state": state.value})
    _publish(ctx, engine, sha, name, state, detail)
    return state.value


def _make_available(source: GitSource, sha: str, ref: str) -> None:
    if source.has(sha):
        return
    if ref:
        source.fetch_ref(ref)
    if not source.has(sha):
        source.fetch()
    if not source.has(sha):
        raise SourceError(f"commit {sha[:12]} is not in the repository (looked at {ref or 'no ref'})")


def _finished_with_tree(engine: Engine, *, tree: str, name: str, not_sha: str) -> CommitCheck | None:
    with store.session_scope(engine) as session:
        return session.exec(select(CommitCheck).where(
            CommitCheck.tree == tree, CommitCheck.name == name, CommitCheck.sha != not_sha,
            col(CommitCheck.state).in_([CheckState.SUCCESS, CheckState.FAILURE]))
            .order_by(col(CommitCheck.finished_at).desc())).first()


def _tests(ctx: CheckContext, source: GitSource, sha: str) -> tuple[CheckState, str, str]:
    result = run_tests(source=source, sha=sha, command=ctx.test_command, timeout_s=ctx.test_timeout_s,
                       runs_dir=Path(ctx.workdir) / "check-runs")
    state = CheckState.SUCCESS if result.passed else CheckState.FAILURE
    return state, f"{result.reason} in {result.duration_s:.1f}s", result.log


def _bench(ctx: CheckContext, source: GitSource, sha: str,
           target_branch: str) -> tuple[CheckState, str, str, dict[str, object], str]:
    target_sha = source.fetch_ref(f"refs/heads/{target_branch}")
    if source.tree_of(target_sha) == source.tree_of(sha):
        return CheckState.SUCCESS, f"same tree as {target_branch} ({target_sha[:12]}): nothing to compare", "", {}, \
            target_sha
    runs = Path(ctx.workdir) / "check-runs" / f"bench-{sha[:12]}-{uuid.uuid4().hex[:8]}"
    confirmation = None
    try:
        target_dir = source.archive(target_sha, runs / "target")
        candidate_dir = source.archive(sha, runs / "candidate")
        try:
            baseline, candidate = _bench_run(ctx, target_dir, candidate_dir)
            verdict = compare(baseline, candidate, allowance=ctx.bench_allowance, confidence=ctx.bench_confidence)
            if any(c.failed for c in verdict.changes):
                # A regression must hold on the pooled pairs of a second run on fresh processes
                # before it refuses a merge: one side's process slowed as a whole (a busy core, a cold
                # cache) passes every paired test of its own run, but is diluted by a run without it,
                # while a real regression only gains evidence.
                b2, c2 = _bench_run(ctx, target_dir, candidate_dir)
                confirmation = compare(join_runs(baseline, b2), join_runs(candidate, c2), allowance=ctx.bench_allowance,
                                       confidence=ctx.bench_confidence)
        except BenchError as exc:
            # The candidate's own benchmark crashing is the candidate's failure; the target's is ours.
            failing = "candidate" in str(exc)
            return (CheckState.FAILURE if failing else CheckState.ERROR), str(exc), "", {}, target_sha
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    report: dict[str, object] = {**verdict.as_report(), "target_sha": target_sha, "rounds": ctx.bench_rounds,
                                 "requests": ctx.bench_requests, "baseline": baseline, "candidate": candidate}
    passed, summary = verdict.passed, verdict.summary
    if confirmation is not None:
        report["confirmation"] = confirmation.as_report()
        if confirmation.passed:
            passed = True
            summary = f"not confirmed with a second run on fresh processes ({confirmation.summary}); the first run " \
                      f"said: {summary}"
        else:
            summary = f"{confirmation.summary} (both runs, the second on fresh processes)"
    state = CheckState.SUCCESS if passed else CheckState.FAILURE
    log_text = "\n".join(c.describe() + ("  FAIL" if c.failed else "") for c in verdict.changes)
    return state, summary, log_text, report, target_sha


def join_runs(first: Series, second: Series) -> Series:
    """The rounds of two runs as one series (pairs stay pairs: both runs alternate the versions)."""
    return {route: {metric: list(values) + list(second.get(route, {}).get(metric, []))
                    for metric, values in metrics.items()} for route, metrics in first.items()}


def _bench_run(ctx: CheckContext, target_dir: Path, candidate_dir: Path) -> tuple[Series, Series]:
    return run_interleaved(command=ctx.bench_command, target_dir=target_dir, candidate_dir=candidate_dir,
                           rounds=ctx.bench_rounds, requests=ctx.bench_requests, timeout_s=ctx.check_timeout_s)


def _publish(ctx: CheckContext, engine: Engine, sha: str, name: str, state: CheckState, detail: str) -> None:
    poster = ctx.poster()
    if poster is None:
        return
    try:
        post_if_changed(engine, poster, check_status(sha=sha, name=name, state=state, detail=detail,
                                                     dashboard_url=ctx.dashboard_url))
    except Exception:  # a status that cannot be sent never changes the check's outcome
        log.exception("status of %s %s not sent", name, sha[:12])
