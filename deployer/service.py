"""Use cases for the dashboard, the CLI and the hooks: read the state, queue commands.

Nothing here acts on hosts: commands go into the database and the controller carries
them out first thing on its next tick, so a release manager's click and a controller
restart can never race each other. Every method returns a typed view (deployer.views).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy.engine import Engine
from sqlmodel import Session

from deployer import batching, dora, figures, flags, freezes, readmodels, store
from deployer.accounts import (
    AccountService,
    BadInput,
    NewToken,
    Principal,
    SignInResult,
    TokenView,
    UserView,
    generate_password,
    parse_role,
    session_secret,
)
from deployer.checks import CheckService, CheckView
from deployer.flag_rules import Definition, parse_percentage, parse_users
from deployer.exceptions import Conflict, DeployerError, NotFound
from deployer.memo import Memo
from deployer.gate_service import GateService, GateView, OverrideRefused, PushOutcome, RefUpdate
from deployer.webhooks import WebhookIntake, WebhookRefused, WebhookResult
from deployer.model import (
    COMMAND_EVENTS,
    CommandKind,
    Commit,
    CommitStatus,
    DeployFreeze,
    Deployment,
    Lock,
    Release,
    ReleaseKind,
    Role,
    utcnow,
)
from deployer.pipeline import FAILED, Status, allowed_events, plan_waves, rollout_order
from deployer.settings import AuthSettings, Settings
from deployer.views import (
    ActionResult,
    BisectNode,
    BlackoutView,
    CommandAccepted,
    CommitView,
    DeploymentDetail,
    DeploymentView,
    Dora,
    EventView,
    FlagSet,
    FlagView,
    FreezeView,
    HostView,
    LockState,
    LockView,
    Overview,
    PlatformFigures,
    ReleaseCommit,
    ReleasePage,
    ReleaseRow,
    ReleaseView,
    StageView,
    StatusView,
    VerdictView,
    WhoAmI,
    WindowView,
)
from deployer.windows import parse_until

SETTLED_COMMITS = frozenset({CommitStatus.SHIPPED, CommitStatus.BAD, CommitStatus.BLOCKED})
# Re-exported: the dashboard reaches the views and accounts through this module only.
__all__ = [
    "AccountService",
    "ActionResult",
    "BadInput",
    "BisectNode",
    "CheckView",
    "GateService",
    "GateView",
    "OverrideRefused",
    "PushOutcome",
    "RefUpdate",
    "CommandAccepted",
    "CommitView",
    "Conflict",
    "DeployService",
    "DeployerError",
    "DeploymentDetail",
    "DeploymentView",
    "Dora",
    "EventView",
    "FlagSet",
    "FlagView",
    "FreezeView",
    "HostView",
    "LockState",
    "LockView",
    "NewToken",
    "NotFound",
    "Overview",
    "PlatformFigures",
    "Principal",
    "ReleaseCommit",
    "ReleasePage",
    "ReleaseRow",
    "ReleaseView",
    "Role",
    "SignInResult",
    "StageView",
    "StatusView",
    "TokenView",
    "UserView",
    "VerdictView",
    "WebhookIntake",
    "WebhookRefused",
    "WebhookResult",
    "WhoAmI",
    "WindowView",
    "generate_password",
    "parse_percentage",
    "parse_until",
    "parse_role",
    "parse_users",
    "session_secret",
]


@dataclass
class DeployService:
    """The controller's state and steering wheel, backed by its database."""

    engine: Engine
    settings: Settings | None = None
    accounts: AccountService = field(init=False)
    # Figures over days of history: recomputed at most every few seconds, in the background.
    figures_ttl_s: float = 5.0
    _memo: Memo = field(init=False)
    gate: GateService | None = field(init=False, default=None)
    webhooks: WebhookIntake | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._memo = Memo(self.figures_ttl_s)
        self.accounts = AccountService(self.engine, self.settings.auth if self.settings else AuthSettings())
        if self.settings is not None:
            self.gate = GateService(self.engine, self.settings, CheckService(self.engine, self.settings))
            self.webhooks = WebhookIntake(self.engine, self.settings, self.gate)

    @classmethod
    def from_settings(cls, settings: Settings) -> DeployService:
        """A service over the database the settings name (schema migrated or checked per `database.migrate`)."""
        return cls(store.open_database(settings.database_url, migrate=settings.database.migrate), settings)

    # --- reads ---------------------------------------------------------------------------------

    def status(self, *, releases: int = 10) -> StatusView:
        """Hosts, the deployment in flight, the last releases and the lock."""
        with store.session_scope(self.engine) as session:
            hosts = store.host_states(session)
            active = store.active_deployment(session)
            recent = store.recent_releases(session, limit=releases)
            deployments = readmodels.deployments_of(session, [r.id for r in recent if r.id is not None])
            return StatusView(
                hosts=[readmodels.host_view(h) for h in hosts],
                active=readmodels.deployment_view(active, hosts) if active else None,
                releases=[readmodels.release_view(r, deployments.get(r.id or 0)) for r in recent],
                lock=readmodels.lock_view(session), leader=readmodels.leader_view(session),
                window=self._window(session, utcnow()))

    def hosts(self) -> list[HostView]:
        """Every host with its desired and observed version, health and role."""
        with store.session_scope(self.engine) as session:
            return [readmodels.host_view(h) for h in store.host_states(session)]

    def overview(self, *, now: datetime | None = None) -> Overview:
        """What is live and since when, what is in flight, what waits, the lock, DORA over 7 and 30 days."""
        now = now or utcnow()
        with store.session_scope(self.engine) as session:
            hosts = store.host_states(session)
            active = store.active_deployment(session)
            live = store.last_good_release(session)
            queue = store.branch_commits(session, statuses=[CommitStatus.PENDING, CommitStatus.BLOCKED,
                                                            CommitStatus.SUSPECT])
            return Overview(
                fleet_version=live.sha if live else None,
                fleet_since=readmodels.aware(live.finished_at) if live else None,
                active=readmodels.deployment_view(active, hosts) if active else None,
                queue=[readmodels.commit_view(c) for c in queue],
                lock=readmodels.lock_view(session),
                dora=self._memo.get("dora", self._dora), now=now, window=self._window(session, now))

    def _dora(self) -> list[Dora]:
        now = utcnow()
        with store.session_scope(self.engine) as session:
            month = dora.load(session, now=now, days=30)
        week = [r for r in month if (now - r.finished_at).total_seconds() <= 7 * 86400]
        return [dora.compute(week, days=7), dora.compute(month, days=30)]

    def platform_figures(self) -> PlatformFigures:
        """Aggregates over the whole history for the platform's /metrics."""
        def compute() -> PlatformFigures:
            with store.session_scope(self.engine) as session:
                return figures.platform_figures(session)
        return self._memo.get("figures", compute)

    def commits(self) -> list[CommitView]:
        """Every known commit in branch order with its status and release."""
        with store.session_scope(self.engine) as session:
            return [readmodels.commit_view(c) for c in store.branch_commits(session)]

    def settled(self, shas: list[str]) -> bool:
        """Nothing is deploying, every sha is known, and every known commit has its final status."""
        with store.session_scope(self.engine) as session:
            if store.active_deployment(session) is not None:
                return False
            statuses = {c.sha: c.status for c in store.branch_commits(session)}
        return set(shas) <= set(statuses) and all(s in SETTLED_COMMITS for s in statuses.values())

    def releases(self, *, status: str | None = None, author: str | None = None, kind: str | None = None,
                 before: int | None = None, limit: int = 50) -> ReleasePage:
        """Releases newest first, filtered by status, author and kind, one keyset page at a time."""
        with store.session_scope(self.engine) as session:
            return readmodels.release_page(session, status=status, author=author, kind=kind, before=before,
                                           limit=limit)

    def deployment(self, deployment_id: int) -> DeploymentDetail:
        """One deployment with its stages, verdicts, hosts, commits, bisection and audit trail."""
        with store.session_scope(self.engine) as session:
            d = store.get_deployment(session, deployment_id=deployment_id)
            hosts = store.host_states(session)
            release = session.get(Release, d.release_id)
            commits = readmodels.release_commits(session, release.commit_shas if release else [])
            base = readmodels.deployment_view(d, hosts)
            return DeploymentDetail(
                **base.model_dump(), stages=readmodels.stage_views(session, deployment_id),
                verdicts=readmodels.verdict_views(session, deployment_id),
                events=[readmodels.event_view(e) for e in store.recent_audit(session, deployment_id=deployment_id,
                                                                             limit=1000)],
                hosts=[readmodels.host_view(h) for h in hosts],
                release=readmodels.release_view(release, d) if release else None,
                release_commits=[ReleaseCommit(sha=c.sha, author=c.author, title=readmodels.title_of(c.message),
                                               committed_at=readmodels.aware(c.committed_at))
                                 for sha in (release.commit_shas if release else []) if (c := commits.get(sha))],
                bisection=readmodels.bisection_tree(session, release) if release else None)

    def release(self, release_id: int) -> DeploymentDetail:
        """The latest deployment of a release, in detail (NotFound when it has none)."""
        with store.session_scope(self.engine) as session:
            store.get_release(session, release_id=release_id)
            d = store.deployment_of(session, release_id=release_id)
            if d is None or d.id is None:
                # The fleet's first version was started, not deployed: show the release itself.
                release = store.get_release(session, release_id=release_id)
                hosts = store.host_states(session)
                return DeploymentDetail(
                    id=None, release_id=release_id, status=release.status.value, phase=None, wave=0, waves=1,
                    wave_plan=[], version=release.sha, previous_version=release.previous_sha, canary_hosts=[],
                    baseline_hosts=[], reason=f"the fleet's first version ({release.kind.value})", last_verdict=None,
                    created_at=readmodels.aware(release.created_at), updated_at=None,
                    finished_at=readmodels.aware(release.finished_at),
                    hosts_done=sum(1 for h in hosts if h.observed_version == release.sha), hosts_total=len(hosts),
                    stages=[], verdicts=[], events=[], hosts=[readmodels.host_view(h) for h in hosts],
                    release=readmodels.release_view(release, None), release_commits=[], bisection=None)
            deployment_id = d.id
        return self.deployment(deployment_id)

    def events(self, *, after_id: int = 0, limit: int = 200) -> list[EventView]:
        """The audit trail after `after_id`, oldest first."""
        with store.session_scope(self.engine) as session:
            return [readmodels.event_view(e) for e in store.recent_audit(session, after_id=after_id, limit=limit)]

    def audit(self, *, kind: str | None = None, actor: str | None = None, deployment_id: int | None = None,
              before: int | None = None, after: int | None = None, limit: int = 100) -> list[EventView]:
        """Audit events newest first (oldest first when `after` is given), filtered."""
        with store.session_scope(self.engine) as session:
            rows = readmodels.audit_page(session, kind=kind, actor=actor, deployment_id=deployment_id,
                                         before=before, after=after, limit=limit)
            return [readmodels.event_view(e) for e in rows]

    def audit_export(self, *, kind: str | None = None, actor: str | None = None,
                     deployment_id: int | None = None, batch: int = 1000) -> Iterator[EventView]:
        """Every matching audit event, oldest first, read in batches (for JSON Lines export)."""
        after = 0
        while True:
            page = self.audit(kind=kind, actor=actor, deployment_id=deployment_id, after=after, limit=batch)
            yield from page
            if len(page) < batch:
                return
            after = page[-1].id

    # --- actions -------------------------------------------------------------------------------

    def command(self, kind: CommandKind, *, actor: str, reason: str = "",
                deployment_id: int | None = None) -> CommandAccepted:
        """Queue abort/pause/resume/promote for the deployment in flight; Conflict when it cannot apply."""
        with store.session_scope(self.engine) as session:
            active = store.active_deployment(session)
            if kind in COMMAND_EVENTS:
                if active is None:
                    raise Conflict(f"cannot {kind.value}: no deployment is in progress")
                if deployment_id is not None and deployment_id != active.id:
                    raise Conflict(f"cannot {kind.value}: deployment {deployment_id} is not the one in progress "
                                   f"({active.id})")
                allowed = allowed_events(store.state_of(active))
                if COMMAND_EVENTS[kind] not in allowed:
                    where = active.status.value + (f"/{active.phase.value}" if active.phase else "")
                    raise Conflict(f"cannot {kind.value} deployment {active.id} while it is {where}; "
                                   f"allowed now: {', '.join(e.value for e in allowed) or 'nothing'}")
            command = store.add_command(session, kind=kind, actor=actor, reason=reason,
                                        deployment_id=active.id if active and kind in COMMAND_EVENTS else None)
            store.audit(session, kind="command", actor=actor, deployment_id=command.deployment_id,
                        message=f"{kind.value} requested" + (f": {reason}" if reason else ""),
                        data={"command": kind.value, "reason": reason})
            return CommandAccepted(id=command.id, kind=kind.value, deployment_id=command.deployment_id)

    def notify_push(self, *, actor: str, ref: str = "", after: str = "") -> CommandAccepted:
        """A push hook or webhook says the branch moved: fetch now instead of at the next poll."""
        return self.command(CommandKind.POLL, actor=actor, reason=f"{ref} -> {after[:12]}".strip(" ->"))

    def lock(self, *, holder: str, reason: str) -> LockState:
        """Stop new releases from starting (the one in flight goes on)."""
        with store.session_scope(self.engine) as session:
            existing = store.get_lock(session)
            if existing is not None:
                raise Conflict(f"the pipeline is already locked by {existing.holder}: {existing.reason}")
            session.add(Lock(name="pipeline", holder=holder, reason=reason))
            store.audit(session, kind="lock", actor=holder, message=f"pipeline locked: {reason}",
                        data={"reason": reason})
            return LockState(locked=True, holder=holder, reason=reason)

    def unlock(self, *, actor: str, reason: str = "") -> LockState:
        """Let new releases start again."""
        with store.session_scope(self.engine) as session:
            existing = store.get_lock(session)
            if existing is None:
                raise Conflict("the pipeline is not locked")
            session.delete(existing)
            store.audit(session, kind="unlock", actor=actor,
                        message="pipeline unlocked" + (f": {reason}" if reason else ""), data={"reason": reason})
            return LockState(locked=False)

    # --- deploy windows and freezes ---------------------------------------------------------------

    def _window(self, session: Session, now: datetime) -> WindowView:
        windows = self.settings.windows if self.settings else None
        blackouts = windows.parsed() if windows else []
        gate = freezes.window_gate(session, blackouts=blackouts, now=now)
        waiting = len(store.branch_commits(session, statuses=[CommitStatus.PENDING, CommitStatus.BLOCKED,
                                                              CommitStatus.SUSPECT]))
        return WindowView(
            open=gate.open, reason=gate.reason, now=now, waiting=waiting,
            until=gate.until.astimezone(timezone.utc) if gate.until else None,
            freezes=[_freeze_view(f) for f in freezes.active_freezes(session, now=now)],
            blackouts=[BlackoutView(name=b.name, days=list(b.days), hours=b.hours, tz=b.tz or windows.timezone)
                       for b in (windows.blackouts if windows else [])])

    def deploy_window(self, *, now: datetime | None = None) -> WindowView:
        """May a new release start now? If not: every rule holding it back, and until when."""
        with store.session_scope(self.engine) as session:
            return self._window(session, now or utcnow())

    def freeze(self, *, actor: str, reason: str, until: datetime | None = None,
               now: datetime | None = None) -> WindowView:
        """Stop new releases from starting until `until` (None: until lifted); commits queue meanwhile.

        The release in flight goes on (abort is for stopping it). Conflict when a freeze is on already.
        """
        now = now or utcnow()
        reason = reason.strip()
        if not reason:
            raise BadInput("reason: is empty; say why deploys are frozen, e.g. \"incident 42\"")
        if until is not None:
            if until.tzinfo is None:
                raise BadInput("until: has no time zone; give e.g. \"2026-12-24T09:00+01:00\"")
            if until <= now:
                raise BadInput(f"until: {until.isoformat()} is not in the future; give a later time")
        with store.session_scope(self.engine) as session:
            active = freezes.active_freezes(session, now=now)
            if active:
                current = active[0]
                ends = f"until {freezes.aware(current.until):%Y-%m-%d %H:%M %Z}" if current.until else "until lifted"
                raise Conflict(f"deploys are already frozen by {current.by} ({ends}): {current.reason}; "
                               f"unfreeze first to change it")
            row = DeployFreeze(reason=reason, by=actor, since=now, until=until)
            session.add(row)
            session.flush()
            ends = f"until {until.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC" if until else "until lifted"
            store.audit(session, kind="freeze", actor=actor, message=f"deploys frozen {ends}: {reason}",
                        data={"reason": reason, "until": until.isoformat() if until else None, "freeze": row.id})
            return self._window(session, now)

    def unfreeze(self, *, actor: str, reason: str = "", now: datetime | None = None) -> WindowView:
        """Lift every active freeze; configured blackouts still apply. Conflict when nothing is frozen."""
        now = now or utcnow()
        with store.session_scope(self.engine) as session:
            active = freezes.active_freezes(session, now=now)
            if not active:
                raise Conflict("deploys are not frozen")
            for row in active:
                row.lifted_at, row.lifted_by = now, actor
                session.add(row)
            store.audit(session, kind="unfreeze", actor=actor,
                        message=f"freeze lifted ({'; '.join(r.reason for r in active)})"
                                + (f": {reason}" if reason else ""),
                        data={"reason": reason, "freezes": [r.id for r in active]})
            return self._window(session, now)

    def mark_commit(self, sha: str, *, bad: bool, actor: str, reason: str = "") -> ActionResult:
        """Mark a commit bad (it and the unshipped commits after it wait for a fix) or good again."""
        with store.session_scope(self.engine) as session:
            commits = store.branch_commits(session)
            target = _find_commit(commits, sha)
            if bad and target.status is CommitStatus.SHIPPED:
                raise Conflict(f"commit {target.sha[:12]} is already on the fleet; roll back to an earlier release "
                               f"instead of marking it bad")
            if bad and target.status is CommitStatus.BAD:
                raise Conflict(f"commit {target.sha[:12]} is already marked bad")
            if not bad and target.status is not CommitStatus.BAD:
                raise Conflict(f"commit {target.sha[:12]} is {target.status.value}, not bad; nothing to undo")
            active = store.active_deployment(session)
            if active is not None:
                release = store.get_release(session, release_id=active.release_id)
                if target.sha in release.commit_shas:
                    raise Conflict(f"commit {target.sha[:12]} is in release {release.id}, in flight; abort it first")
            rows = [batching.CommitRow(c.sha, c.status) for c in commits]
            changes = (batching.mark_bad if bad else batching.mark_good)(rows, target.sha)
            by_sha = {c.sha: c for c in commits}
            for changed, new_status in changes.items():
                by_sha[changed].status = new_status
                session.add(by_sha[changed])
            verb = "bad" if bad else "good"
            store.audit(session, kind=f"commit_marked_{verb}", actor=actor,
                        message=f"commit {target.sha[:12]} marked {verb}" + (f": {reason}" if reason else ""),
                        data={"sha": target.sha, "reason": reason, "commits": {k: v.value for k, v in changes.items()}})
            return ActionResult(message=f"commit {target.sha[:12]} marked {verb}; {len(changes)} commit(s) changed",
                                commits=sorted(changes))

    def retry(self, release_id: int, *, actor: str, reason: str = "") -> ActionResult:
        """Give a failed release's commits another go: they are pending again and the next release takes them."""
        with store.session_scope(self.engine) as session:
            release = store.get_release(session, release_id=release_id)
            if release.status not in FAILED and release.status is not Status.ABORTED:
                raise Conflict(f"release {release_id} is {release.status.value}; only a failed or aborted release "
                               f"can be retried")
            if release.kind is ReleaseKind.ROLLBACK:
                raise Conflict(f"release {release_id} is a rollback; start a new rollback instead")
            commits = store.commits_of(session, shas=release.commit_shas)
            waiting = [c for c in commits if c.status in (CommitStatus.BAD, CommitStatus.BLOCKED,
                                                          CommitStatus.SUSPECT)]
            if not waiting:
                raise Conflict(f"release {release_id}'s commits have all been released again since; nothing to retry")
            for c in waiting:
                c.status = CommitStatus.PENDING
                session.add(c)
            store.audit(session, kind="retry", actor=actor, release_id=release_id,
                        message=f"release {release_id} retried" + (f": {reason}" if reason else ""),
                        data={"commits": [c.sha for c in waiting], "reason": reason})
            return ActionResult(message=f"{len(waiting)} commit(s) of release {release_id} are pending again",
                                release_id=release_id, commits=[c.sha for c in waiting])

    def rollback(self, release_id: int, *, actor: str, reason: str, skip_analysis: bool = False) -> ActionResult:
        """Deploy an earlier good release again as a new `rollback` release, and lock the pipeline.

        It goes through the canary machinery like any release; `skip_analysis` is the explicit
        fast path (no bake, no analysis). The lock keeps the commits after it from shipping
        until a human unlocks.
        """
        if self.settings is None:
            raise DeployerError("rollback needs the service built from settings (DeployService.from_settings)")
        settings = self.settings
        with store.session_scope(self.engine) as session:
            target = store.get_release(session, release_id=release_id)
            if target.status is not Status.SUCCEEDED or not target.artifact:
                raise Conflict(f"release {release_id} is {target.status.value}; only a release that reached the whole "
                               f"fleet (succeeded) can be rolled back to")
            active = store.active_deployment(session)
            if active is not None:
                raise Conflict(f"release {active.release_id} is in flight ({active.status.value}); abort it first, "
                               f"then roll back")
            current = store.last_good_release(session)
            assert current is not None
            if current.sha == target.sha:
                raise Conflict(f"the fleet already runs {target.sha[:12]} (release {current.id})")
            host_names = [h.name for h in store.host_states(session)]
            if not host_names:
                raise Conflict("no hosts are known yet; start the controller first")
            canary, baseline, order = rollout_order(host_names, settings.rollout.canary_hosts)
            wave_plan = plan_waves(len(host_names), settings.rollout.canary_hosts, settings.rollout.waves)
            release = Release(sha=target.sha, kind=ReleaseKind.ROLLBACK, previous_sha=current.sha, commit_shas=[],
                              artifact=target.artifact, started_by=actor)
            session.add(release)
            session.flush()
            deployment = Deployment(
                release_id=release.id, version=target.sha, previous_version=current.sha,
                previous_artifact=current.artifact, artifact=target.artifact, waves=len(wave_plan),
                wave_plan=wave_plan, host_order=order, canary_hosts=canary, baseline_hosts=baseline,
                max_extensions=settings.rollout.max_extensions, skip_analysis=skip_analysis,
                reason=f"rollback to release {release_id} by {actor}: {reason}")
            session.add(deployment)
            session.flush()
            how = "fast path, no bake" if skip_analysis else "through the canary"
            store.audit(session, kind="rollback_requested", actor=actor, deployment_id=deployment.id,
                        release_id=release.id,
                        message=f"rollback to release {release_id} ({target.sha[:12]}, {how}): {reason}",
                        data={"target_release": release_id, "sha": target.sha, "skip_analysis": skip_analysis,
                              "reason": reason})
            if store.get_lock(session) is None:
                session.add(Lock(name="pipeline", holder=actor, reason=f"rolled back to release {release_id}: {reason}"))
                store.audit(session, kind="lock", actor=actor,
                            message=f"pipeline locked by the rollback to release {release_id}")
            return ActionResult(message=f"release {release.id} rolls the fleet back to {target.sha[:12]} ({how}); "
                                        f"the pipeline is locked until someone unlocks it",
                                release_id=release.id, deployment_id=deployment.id)

    # --- feature flags ---------------------------------------------------------------------------

    def flags(self) -> FlagSet:
        """Every live flag and the revision of the whole set: what the app's hosts fetch."""
        with store.session_scope(self.engine) as session:
            return flags.flag_set(session)

    def flags_revision(self) -> int:
        """The revision of the whole set alone (one row): enough to answer "nothing changed"."""
        with store.session_scope(self.engine) as session:
            return flags.revision(session)

    def flag(self, key: str) -> FlagView:
        """One live flag (NotFound when there is none, or it was deleted)."""
        with store.session_scope(self.engine) as session:
            return flags.flag_view(flags.get_flag(session, key=key))

    def create_flag(self, key: str, *, actor: str, reason: str, description: str = "", enabled: bool = False,
                    percentage: float = 0.0, allow: Sequence[str] = (), deny: Sequence[str] = (),
                    salt: str | None = None) -> FlagView:
        """A new flag, audited with the reason; Conflict when the key exists, BadInput naming the bad field."""
        definition = Definition(description=description, enabled=enabled, percentage=percentage,
                                allow=tuple(allow), deny=tuple(deny))
        with store.session_scope(self.engine) as session:
            return flags.flag_view(flags.create(session, key=key, definition=definition, actor=actor,
                                                reason=reason, salt=salt))

    def change_flag(self, key: str, *, actor: str, reason: str, enabled: bool | None = None,
                    percentage: float | None = None, allow: Sequence[str] | None = None,
                    deny: Sequence[str] | None = None, description: str | None = None,
                    expect_revision: int | None = None) -> FlagView:
        """Turn a flag on or off, set its percentage, lists or description; audited when anything changed.

        Fields left None stay as they are; `expect_revision` refuses (Conflict) a change to a flag
        someone else changed since it was read.
        """
        given = {name: value for name, value in (("enabled", enabled), ("percentage", percentage),
                                                 ("allow", allow), ("deny", deny),
                                                 ("description", description)) if value is not None}
        if not given:
            raise BadInput("change: nothing to change; give at least one of enabled, percentage, allow, deny or "
                           "description")
        with store.session_scope(self.engine) as session:
            row, _ = flags.change(session, key=key, actor=actor, reason=reason, fields=given,
                                  expect_revision=expect_revision)
            return flags.flag_view(row)

    def delete_flag(self, key: str, *, actor: str, reason: str) -> FlagView:
        """Delete (archive) a flag: hosts stop receiving it, so it is off for everyone; the last definition."""
        with store.session_scope(self.engine) as session:
            return flags.flag_view(flags.delete(session, key=key, actor=actor, reason=reason))

    # --- accounts (delegated, so the dashboard talks to this service only) ---------------------

    def whoami(self, principal: Principal) -> WhoAmI:
        """The caller as the API shows it."""
        return WhoAmI(name=principal.name, role=principal.role, kind=principal.kind)


def _freeze_view(row: DeployFreeze) -> FreezeView:
    assert row.id is not None
    return FreezeView(id=row.id, reason=row.reason, by=row.by, since=freezes.aware(row.since),
                      until=freezes.aware(row.until), lifted_at=freezes.aware(row.lifted_at), lifted_by=row.lifted_by)


def _find_commit(commits: list[Commit], sha: str) -> Commit:
    sha = sha.strip().lower()
    if len(sha) < 7:
        raise BadInput(f"sha: \"{sha}\" is too short; give at least 7 characters of the commit's sha")
    found = [c for c in commits if c.sha.startswith(sha)]
    if not found:
        raise NotFound("commit", sha)
    if len(found) > 1:
        raise BadInput(f"sha: \"{sha}\" matches {len(found)} commits; give more characters")
    return found[0]

