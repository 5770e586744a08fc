"""Commit statuses out, in GitHub's format, with retries.

`POST {url}/repos/{owner}/{repo}/statuses/{sha}` with `state` (pending, success, failure,
error), `context`, `description` (at most 140 characters) and `target_url` (the
dashboard). A pull request then shows whether its checks passed and whether its merge is
live. Server errors, 429 and network failures are retried with backoff; other 4xx are
not (retrying a bad request or a bad token cannot help).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session

from deployer import store
from deployer.model import CheckState, CommitStatus, PostedStatus, utcnow
from deployer.pipeline import Status

log = logging.getLogger(__name__)
GITHUB_STATES = ("pending", "success", "failure", "error")
DESCRIPTION_LIMIT = 140


@dataclass(frozen=True)
class CommitStatusOut:
    sha: str
    state: str
    context: str
    description: str
    target_url: str

    def body(self) -> dict[str, str]:
        """The JSON GitHub expects."""
        return {"state": self.state, "context": self.context, "description": self.description[:DESCRIPTION_LIMIT],
                "target_url": self.target_url}


def check_status(*, sha: str, name: str, state: CheckState, detail: str, dashboard_url: str) -> CommitStatusOut:
    """A check's status: queued and running are pending; error stays error."""
    github = {CheckState.QUEUED: "pending", CheckState.RUNNING: "pending", CheckState.SUCCESS: "success",
              CheckState.FAILURE: "failure", CheckState.ERROR: "error"}[state]
    words = {CheckState.QUEUED: "queued", CheckState.RUNNING: "running"}.get(state, detail or state.value)
    return CommitStatusOut(sha, github, f"deployer/{name}", words, f"{dashboard_url}/checks/{sha}")


def deploy_status(*, sha: str, commit: CommitStatus, release: Status | None, release_id: int | None,
                  dashboard_url: str) -> CommitStatusOut:
    """Where a merged commit stands: queued, on canary, in production, rolled back or culprit."""
    link = f"{dashboard_url}/releases/{release_id}" if release_id else dashboard_url
    if commit is CommitStatus.SHIPPED:
        state, text = "success", "in production"
    elif commit is CommitStatus.BAD:
        state, text = "failure", "culprit: its release failed and was rolled back"
    elif release is not None and release in (Status.ROLLING_BACK, Status.ROLLED_BACK):
        state, text = "failure", "rolled back"
    elif release is not None and release in (Status.CANARY, Status.ROLLING_OUT):
        state, text = "pending", f"on canary (release {release_id})" if release is Status.CANARY \
            else f"rolling out (release {release_id})"
    elif commit is CommitStatus.BLOCKED:
        state, text = "pending", "waiting behind a culprit for a fix or revert"
    else:
        state, text = "pending", "queued for release"
    return CommitStatusOut(sha, state, "deployer/deploy", text, link)


@dataclass
class StatusPoster:
    """Sends statuses to one repository, retrying what may succeed later."""

    url: str
    repo: str
    token: str | None = None
    retries: int = 4
    backoff_s: float = 0.5
    timeout_s: float = 5.0
    sleep: Callable[[float], None] = time.sleep

    def post(self, status: CommitStatusOut) -> bool:
        """True once the server accepted it; False after the last retry (logged, never raised)."""
        headers = {"Accept": "application/vnd.github+json", "User-Agent": "deployer"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        endpoint = f"{self.url.rstrip('/')}/repos/{self.repo}/statuses/{status.sha}"
        for attempt in range(self.retries + 1):
            try:
                response = httpx.post(endpoint, json=status.body(), headers=headers, timeout=self.timeout_s)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return True
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code < 500 and response.status_code != 429:
                    log.warning("status %s for %s refused: %s", status.context, status.sha[:12], problem)
                    return False
            if attempt < self.retries:
                self.sleep(self.backoff_s * (2 ** attempt))
        log.warning("status %s for %s not delivered after %d attempts: %s", status.context, status.sha[:12],
                    self.retries + 1, problem)
        return False


def post_if_changed(engine: Engine, poster: StatusPoster, status: CommitStatusOut) -> bool:
    """Send `status` unless the same state and description were already sent for this sha and context."""
    with store.session_scope(engine) as session:
        if _same_as_posted(session, status):
            return False
    if not poster.post(status):
        return False
    with store.session_scope(engine) as session:
        row = session.get(PostedStatus, (status.sha, status.context)) or PostedStatus(
            sha=status.sha, context=status.context, state=status.state)
        row.state, row.description, row.at = status.state, status.description[:DESCRIPTION_LIMIT], utcnow()
        session.add(row)
    return True


def _same_as_posted(session: Session, status: CommitStatusOut) -> bool:
    row = session.get(PostedStatus, (status.sha, status.context))
    return row is not None and row.state == status.state and row.description == status.description[:DESCRIPTION_LIMIT]


def sync_deploy_statuses(engine: Engine, poster: StatusPoster, *, dashboard_url: str, limit: int = 200) -> int:
    """Send the deploy state of the newest commits whose state changed; returns how many were sent."""
    with store.session_scope(engine) as session:
        commits = store.branch_commits(session)[-limit:]
        releases = {r.id: r for r in store.recent_releases(session, limit=limit)}
        wanted = [deploy_status(sha=c.sha, commit=c.status,
                                release=releases[c.release_id].status if c.release_id in releases else None,
                                release_id=c.release_id, dashboard_url=dashboard_url) for c in commits]
    return sum(post_if_changed(engine, poster, s) for s in wanted)


class StatusLoop:
    """Sends changed deploy states every `interval_s` on a daemon thread, until stopped."""

    def __init__(self, engine: Engine, poster: StatusPoster, *, dashboard_url: str, interval_s: float) -> None:
        self._engine, self._poster, self._url, self._interval = engine, poster, dashboard_url, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-statuses", daemon=True)

    def start(self) -> StatusLoop:
        """Begin sending; returns self."""
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                sync_deploy_statuses(self._engine, self._poster, dashboard_url=self._url)
            except Exception:  # the next round tries again; statuses never take the API down
                log.exception("sending deploy statuses failed")

    def stop(self) -> None:
        """Stop after the round in progress."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
