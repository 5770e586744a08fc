"""Required checks before merge: which exist for a commit, asking for them, and their views.

A check row is keyed by (sha, name) and carries the commit's tree, so a merge commit
whose tree was already checked reuses that result. The checks themselves run as queue
jobs (deployer.check_jobs), in the API process's pool by default or on rq workers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from deployer import store
from deployer.check_jobs import CheckContext, run_check_job
from deployer.model import CheckState, CommitCheck
from deployer.queue import InProcessQueue, RqQueue, TaskQueue
from deployer.settings import Settings

log = logging.getLogger(__name__)
CHECK_NAMES = ("tests", "bench")


class CheckView(BaseModel):
    """One check of one commit, as the API, the dashboard and the hooks see it."""

    id: int
    sha: str
    name: str
    tree: str | None
    ref: str
    target_branch: str
    target_sha: str | None
    state: CheckState
    detail: str
    report: dict[str, Any]
    reused_from: str | None
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def check_view(row: CommitCheck) -> CheckView:
    """The API's view of a check row."""
    assert row.id is not None
    return CheckView(id=row.id, sha=row.sha, name=row.name, tree=row.tree, ref=row.ref,
                     target_branch=row.target_branch, target_sha=row.target_sha, state=row.state, detail=row.detail,
                     report=row.report or {}, reused_from=row.reused_from, requested_by=row.requested_by,
                     created_at=row.created_at, started_at=row.started_at, finished_at=row.finished_at)


# --- data access ---------------------------------------------------------------------------------

def checks_of(session: Session, *, sha: str) -> list[CommitCheck]:
    """Every check of a commit."""
    return list(session.exec(select(CommitCheck).where(CommitCheck.sha == sha).order_by(col(CommitCheck.name))))


def finished_by_tree(session: Session, *, tree: str, name: str) -> CommitCheck | None:
    """The newest finished success or failure of check `name` on any commit with this tree."""
    return session.exec(select(CommitCheck).where(CommitCheck.tree == tree, CommitCheck.name == name,
                                                  col(CommitCheck.state).in_([CheckState.SUCCESS,
                                                                              CheckState.FAILURE]))
                        .order_by(col(CommitCheck.finished_at).desc())).first()


def recent_checks(session: Session, *, limit: int = 100) -> list[CommitCheck]:
    """The newest checks first."""
    return list(session.exec(select(CommitCheck).order_by(col(CommitCheck.id).desc()).limit(limit)))


def check_states(session: Session, *, sha: str, tree: str | None, names: Sequence[str]) -> dict[str, tuple[str, str]]:
    """name -> (state, detail) for the gate: the commit's own rows, else a finished result for its tree."""
    own = {c.name: c for c in checks_of(session, sha=sha)}
    states: dict[str, tuple[str, str]] = {}
    for name in names:
        row = own.get(name)
        if (row is None or row.state is CheckState.ERROR) and tree:
            row = finished_by_tree(session, tree=tree, name=name) or row
        if row is not None:
            states[name] = (row.state.value, row.detail)
    return states


# --- the service -----------------------------------------------------------------------------------

@dataclass
class CheckService:
    """Asks for a commit's required checks and reads them back."""

    engine: Engine
    settings: Settings
    _queue: TaskQueue | None = field(default=None, init=False, repr=False)

    @property
    def required(self) -> list[str]:
        return list(self.settings.gate.required_checks)

    def context(self) -> CheckContext:
        """What a check job needs, picklable for rq."""
        s = self.settings
        return CheckContext(
            database_url=s.database_url, repository=s.repository, branch=s.source.branch,
            workdir=str(s.workdir_path), test_command=s.pipeline.test_command, test_timeout_s=s.pipeline.test_timeout,
            bench_command=s.gate.bench_command, bench_rounds=s.gate.bench_rounds,
            bench_requests=s.gate.bench_requests, bench_allowance=s.gate.bench_allowance / 100.0,
            bench_confidence=s.gate.bench_confidence, check_timeout_s=s.gate.check_timeout,
            dashboard_url=s.dashboard_url, status_url=s.statuses.url, status_repo=s.statuses.repo,
            status_token=s.statuses.token, status_retries=s.statuses.retries, status_backoff_s=s.statuses.backoff,
            status_timeout_s=s.statuses.timeout)

    def queue(self) -> TaskQueue:
        """The queue checks run on, built on first use (the API process pools nothing it does not need)."""
        if self._queue is None:
            q = self.settings.queue
            # One check at a time in-process: two benchmarks side by side would measure each other.
            self._queue = (RqQueue(redis_url=q.redis_url, name=q.name, job_timeout_s=self.settings.gate.check_timeout)
                           if q.backend == "rq" else InProcessQueue(workers=1))
        return self._queue

    def request(self, sha: str, *, ref: str, actor: str, target_branch: str | None = None,
                tree: str | None = None, rerun: bool = False, names: list[str] | None = None) -> list[CheckView]:
        """Queue the required checks of `sha` (seen at `ref`) that have no result yet; returns them all.

        `names` asks for some checks only (the controller runs `tests` ahead of each release).
        """
        sha = sha.lower()
        target = target_branch or self.settings.source.branch
        to_run: list[int] = []
        with store.session_scope(self.engine) as session:
            existing = {c.name: c for c in checks_of(session, sha=sha)}
            wanted = self.required if names is None else names
            for name in wanted:
                row = existing.get(name)
                if row is None:
                    row = CommitCheck(sha=sha, name=name, tree=tree, ref=ref, target_branch=target,
                                      requested_by=actor)
                elif row.state is CheckState.ERROR or (rerun and row.state.finished):
                    row.state, row.detail, row.log, row.report = CheckState.QUEUED, "", "", {}
                    row.ref, row.target_branch, row.requested_by = ref or row.ref, target, actor
                    row.started_at = row.finished_at = None
                elif row.state is not CheckState.QUEUED:
                    continue  # running or finished: nothing to ask for
                session.add(row)
                session.flush()
                assert row.id is not None
                to_run.append(row.id)
            if to_run:
                store.audit(session, kind="checks_requested", actor=actor,
                            message=f"checks of {sha[:12]} ({ref or 'unknown ref'}) against {target}: "
                                    f"{', '.join(wanted)}", data={"sha": sha, "ref": ref, "checks": to_run})
        context = self.context()
        for check_id in to_run:
            self.queue().submit(f"check-{check_id}", run_check_job, context, check_id)
        return self.of(sha)

    def of(self, sha: str) -> list[CheckView]:
        """Every check of a commit (a prefix of at least 7 characters is enough)."""
        with store.session_scope(self.engine) as session:
            rows = session.exec(select(CommitCheck).where(col(CommitCheck.sha).startswith(sha.lower()))
                                .order_by(col(CommitCheck.name))).all()
            return [check_view(r) for r in rows]

    def recent(self, *, limit: int = 100) -> list[CheckView]:
        """The newest checks first."""
        with store.session_scope(self.engine) as session:
            return [check_view(r) for r in recent_checks(session, limit=limit)]

    def close(self) -> None:
        """Stop the in-process pool (queued checks are picked up again when asked for)."""
        if self._queue is not None:
            self._queue.close()
            self._queue = None
