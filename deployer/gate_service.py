"""The merge gate as a use case: gather the facts, let deployer.gate decide, audit overrides.

Also what the git hooks and webhooks report: a push (checks for any branch, discovery for
the shipping branch) and a pull request (its checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from deployer import freezes, store
from deployer.checks import CheckService, CheckView, check_states
from deployer.exceptions import DeployerError
from deployer.gate import GateDecision, GateFacts, KnownBad, LockFact, addresses, decide
from deployer.model import CommandKind, Commit, CommitStatus, DeployFreeze, Release, ReleaseKind, Role, utcnow
from deployer.pipeline import FAILED
from deployer.settings import Settings
from deployer.statuses import StatusLoop, StatusPoster

UNDEPLOYED = [CommitStatus.PENDING, CommitStatus.BLOCKED, CommitStatus.SUSPECT]
ZERO_SHA = "0" * 40


class OverrideRefused(DeployerError):
    """The caller's role may not override the gate."""


class GateView(BaseModel):
    """The gate's answer for one commit and branch."""

    allowed: bool
    reason: str
    refusal: str | None = None
    branch: str
    sha: str
    protected: bool
    checks: dict[str, str] = {}
    link: str
    override_by: str | None = None


class RefUpdate(BaseModel):
    """One ref a push moved, as git's hooks see it (before/after all zeros: created/deleted)."""

    ref: str = Field(..., min_length=6, max_length=500, pattern=r"^refs/\S+$")
    before: str = Field("", max_length=64, pattern=r"^[0-9a-fA-F]*$")
    after: str = Field(..., min_length=40, max_length=64, pattern=r"^[0-9a-fA-F]+$")
    tree: str | None = Field(None, min_length=40, max_length=64, pattern=r"^[0-9a-fA-F]+$")


class PushOutcome(BaseModel):
    """What a reported push set in motion."""

    checks: list[CheckView]
    discovery: bool


def _since(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@dataclass
class GateService:
    """Answers "may this commit go to this branch now?" and takes push reports."""

    engine: Engine
    settings: Settings
    checks: CheckService

    def _protected(self, branch: str) -> bool:
        return branch in self.settings.gate.protected_branches

    def facts(self, session: Session, *, branch: str, sha: str, tree: str | None, message: str) -> GateFacts:
        """Everything the decision needs, read in one transaction."""
        protected = self._protected(branch)
        lock = store.get_lock(session)
        frozen = freezes.active_freezes(session, now=utcnow())
        undeployed = store.branch_commits(session, statuses=UNDEPLOYED)
        return GateFacts(
            branch=branch, sha=sha, protected=protected, message=message,
            lock=LockFact(lock.holder, lock.reason, _since(lock.at)) if lock else None,
            freeze=_freeze_fact(frozen[0]) if frozen else None,
            known_bad=_known_bad(session, undeployed) if protected else None,
            backlog=len(undeployed), max_backlog=self.settings.gate.max_backlog,
            required=self.checks.required,
            checks=check_states(session, sha=sha, tree=tree, names=self.checks.required))

    def gate(self, *, branch: str, sha: str, tree: str | None = None, message: str = "") -> GateView:
        """May `sha` be pushed or merged to `branch` now? With one line saying why not and what to do."""
        branch = branch.removeprefix("refs/heads/")
        sha = sha.lower()
        with store.session_scope(self.engine) as session:
            facts = self.facts(session, branch=branch, sha=sha, tree=tree, message=message)
        return self._view(decide(facts), facts)

    def _view(self, decision: GateDecision, facts: GateFacts, override_by: str | None = None) -> GateView:
        return GateView(allowed=decision.allowed, reason=decision.reason,
                        refusal=decision.refusal.value if decision.refusal else None, branch=facts.branch,
                        sha=facts.sha, protected=facts.protected,
                        checks={k: v[0] for k, v in facts.checks.items()},
                        link=f"{self.settings.dashboard_url}/checks/{facts.sha}", override_by=override_by)

    def override(self, *, name: str, role: Role, branch: str, sha: str, reason: str,
                 tree: str | None = None, message: str = "") -> GateView:
        """Let a refused push through for an emergency; only release managers and admins may. Audited either way."""
        branch = branch.removeprefix("refs/heads/")
        sha = sha.lower()
        with store.session_scope(self.engine) as session:
            facts = self.facts(session, branch=branch, sha=sha, tree=tree, message=message)
            decision = decide(facts)
            allowed = role.allows(Role.RELEASE_MANAGER)
            store.audit(session, kind="gate_override" if allowed else "gate_override_refused", actor=name,
                        message=(f"gate {'overridden' if allowed else 'override refused'} for {sha[:12]} on "
                                 f"{branch}: {reason}" + ("" if decision.allowed else f" (gate said: {decision.reason})")),
                        data={"branch": branch, "sha": sha, "reason": reason, "gate": decision.reason,
                              "refusal": decision.refusal.value if decision.refusal else None, "role": role.value})
        if not allowed:
            raise OverrideRefused(f"{name} is a {role.value}, who may not override the merge gate; this needs the "
                                  f"release_manager role (the attempt was audited)")
        view = self._view(decision, facts, override_by=name)
        return view.model_copy(update={"allowed": True, "reason": f"override by {name}: {reason}"})

    def pushed(self, updates: list[RefUpdate], *, actor: str) -> PushOutcome:
        """A push happened: run checks for every updated branch head, and discover new commits on the main branch."""
        checks: list[CheckView] = []
        discovery = False
        for update in updates:
            if not update.ref.startswith("refs/") or set(update.after) <= {"0"}:
                continue  # deletions and odd refs start nothing
            checks.extend(self.checks.request(update.after, ref=update.ref, actor=actor, tree=update.tree))
            if update.ref == f"refs/heads/{self.settings.source.branch}":
                discovery = True
        if discovery:
            with store.session_scope(self.engine) as session:
                heads = ", ".join(u.after[:12] for u in updates)
                store.add_command(session, kind=CommandKind.POLL, actor=actor, reason=f"push: {heads}")
        return PushOutcome(checks=checks, discovery=discovery)

    def pull_request(self, *, sha: str, ref: str, target_branch: str, actor: str) -> list[CheckView]:
        """A pull or merge request was opened or updated: run its checks against its target."""
        return self.checks.request(sha, ref=ref, actor=actor, target_branch=target_branch)

    def status_loop(self) -> StatusLoop | None:
        """A started loop sending deploy states as commit statuses, when statuses.url is configured."""
        s = self.settings.statuses
        if not s.url:
            return None
        poster = StatusPoster(url=s.url, repo=s.repo, token=s.token, retries=s.retries, backoff_s=s.backoff,
                              timeout_s=s.timeout)
        return StatusLoop(self.engine, poster, dashboard_url=self.settings.dashboard_url,
                          interval_s=s.interval).start()

    def merged(self, *, actor: str, reason: str) -> None:
        """A pull or merge request was merged: discover the new commits now."""
        with store.session_scope(self.engine) as session:
            store.add_command(session, kind=CommandKind.POLL, actor=actor, reason=reason)


def _freeze_fact(row: DeployFreeze) -> LockFact:
    since, until = freezes.aware(row.since), freezes.aware(row.until)
    assert since is not None
    utc = timezone.utc
    return LockFact(row.by, row.reason, _since(since.astimezone(utc)), _since(until.astimezone(utc)) if until else None)


def _known_bad(session: Session, undeployed: list[Commit]) -> KnownBad | None:
    """The last finished release failed, or a merged commit failed its tests ahead of release, and no
    commit waiting since reverts or fixes the culprit."""
    culprit = session.exec(select(Commit).where(Commit.status == CommitStatus.BAD, col(Commit.release_id).is_(None))
                           .order_by(col(Commit.position).desc())).first()
    if culprit is not None:
        # Marked bad without a release: its tests failed ahead of it. Main stays bad until a commit
        # after it ships or a waiting one reverts or fixes it.
        shipped = session.exec(select(Commit).where(Commit.status == CommitStatus.SHIPPED)
                               .order_by(col(Commit.position).desc())).first()
        if (shipped is None or shipped.position < culprit.position) and \
                not any(addresses(c.message, (culprit.sha,)) for c in undeployed):
            return KnownBad(release_id=0, culprits=(culprit.sha,), reason="marked bad before its release (its tests failed ahead, or by hand)")
    last = session.exec(select(Release).where(col(Release.finished_at).is_not(None),
                                              col(Release.kind).in_([ReleaseKind.DEPLOY, ReleaseKind.BISECT]))
                        .order_by(col(Release.finished_at).desc())).first()
    if last is None or last.status not in FAILED:
        return None
    commits = store.commits_of(session, shas=last.commit_shas)
    culprits = tuple(c.sha for c in commits if c.status is CommitStatus.BAD) or tuple(last.commit_shas)
    if any(addresses(c.message, culprits) for c in undeployed):
        return None  # the fix is merged already; it only waits for its release
    deployment = store.deployment_of(session, release_id=last.id) if last.id else None
    reason = (deployment.reason if deployment else "") or last.status.value
    return KnownBad(release_id=last.id or 0, culprits=culprits, reason=reason[:160])
