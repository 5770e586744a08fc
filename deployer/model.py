"""Enums and SQLModel tables: what the controller remembers between restarts.

The database is the source of truth. A host's `desired_version` is committed before
the controller acts on it and `observed_version` records what the host itself said
afterwards, so after a crash every host runs a version the database knows.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from deployer.pipeline import Event, Phase, Status


def utcnow() -> datetime:
    """Timezone-aware now in UTC (stored naive-UTC by SQLite, aware by PostgreSQL)."""
    return datetime.now(timezone.utc)


class CommitStatus(str, Enum):
    PENDING = "pending"        # merged, not yet in a release
    SHIPPED = "shipped"        # reached the whole fleet
    BAD = "bad"                # the release that carried it alone failed: the culprit
    SUSPECT = "suspect"        # in a failed batch; the culprit search will tell
    BLOCKED = "blocked"        # behind a culprit: waits for a newer commit (a fix or revert)


class ReleaseKind(str, Enum):
    BOOTSTRAP = "bootstrap"    # the version the fleet was first started on
    DEPLOY = "deploy"          # new commits
    BISECT = "bisect"          # part of a failed batch, to find the culprit
    ROLLBACK = "rollback"      # an operator asked to go back to a known-good release


class HostRole(str, Enum):
    IDLE = "idle"
    CANARY = "canary"
    BASELINE = "baseline"
    WAVE = "wave"


class StageStatus(str, Enum):
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"


class CommandKind(str, Enum):
    ABORT = "abort"
    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"
    POLL = "poll"              # a push hook or webhook says there may be new commits


# The state-machine event each operator command asks for (POLL is not one: it only wakes discovery).
COMMAND_EVENTS: dict[CommandKind, Event] = {
    CommandKind.ABORT: Event.ABORT, CommandKind.PAUSE: Event.PAUSE,
    CommandKind.RESUME: Event.RESUME, CommandKind.PROMOTE: Event.PROMOTE,
}


class Commit(SQLModel, table=True):
    sha: str = Field(primary_key=True, max_length=64)
    position: int = Field(index=True, description="order along the branch, oldest first")
    author: str = Field(default="", index=True)
    message: str = Field(default="", sa_column=Column(Text))
    committed_at: datetime | None = None
    discovered_at: datetime = Field(default_factory=utcnow)
    status: CommitStatus = Field(default=CommitStatus.PENDING, index=True)
    release_id: int | None = Field(default=None, foreign_key="release.id", index=True)


class Release(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    sha: str = Field(index=True, max_length=64)
    kind: ReleaseKind = ReleaseKind.DEPLOY
    previous_sha: str | None = None
    commit_shas: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    status: Status = Field(default=Status.QUEUED, index=True)
    artifact: str | None = None
    started_by: str = "controller"
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = Field(default=None, index=True)


class Deployment(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="release.id", index=True)
    status: Status = Field(default=Status.QUEUED, index=True)
    phase: Phase | None = None
    wave: int = 0
    waves: int = 3
    extensions: int = 0
    max_extensions: int = 2
    paused_from: Status | None = None
    paused_phase: Phase | None = None
    rollback_failures: int = 0
    max_rollback_failures: int = 5
    # Cumulative host counts per wave and the host order they are cut from.
    wave_plan: list[int] = Field(default_factory=list, sa_column=Column(JSON))
    host_order: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    canary_hosts: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    baseline_hosts: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    version: str = Field(max_length=64)
    previous_version: str | None = None
    artifact: str | None = None
    previous_artifact: str | None = None
    reason: str = Field(default="", sa_column=Column(Text))
    # An operator abort blames no commit: they wait for a newer one instead of being marked bad.
    aborted: bool = False
    # A rollback's explicit fast path: no bake and no analysis on any wave.
    skip_analysis: bool = False
    bake_started_at: datetime | None = None
    bake_until: datetime | None = None
    last_verdict: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class Stage(SQLModel, table=True):
    """One step of a deployment (tests, build, each wave) with its outcome and log."""

    id: int | None = Field(default=None, primary_key=True)
    deployment_id: int = Field(foreign_key="deployment.id", index=True)
    name: str
    status: StageStatus = StageStatus.RUNNING
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    detail: str = Field(default="", sa_column=Column(Text))
    log: str = Field(default="", sa_column=Column(Text))


class HostState(SQLModel, table=True):
    name: str = Field(primary_key=True)
    address: str = ""
    desired_version: str | None = None
    desired_artifact: str | None = None
    # Bumped to ask for a restart even when the version is unchanged (fresh baseline).
    restart_generation: int = 0
    restarted_generation: int = 0
    observed_version: str | None = None
    healthy: bool = False
    role: HostRole = HostRole.IDLE
    deployment_id: int | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    detail: str = ""


class Verdict(SQLModel, table=True):
    """A decisive analysis result, with its explanation, stored with the deployment."""

    id: int | None = Field(default=None, primary_key=True)
    deployment_id: int = Field(foreign_key="deployment.id", index=True)
    wave: int
    result: str
    score: float | None = None
    reason: str = Field(default="", sa_column=Column(Text))
    report: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    intervals: int = 0
    at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """Who did what, when and why; written in the same transaction as the change."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(default="controller", index=True)
    kind: str = Field(index=True)
    deployment_id: int | None = Field(default=None, index=True)
    release_id: int | None = None
    from_status: str | None = None
    to_status: str | None = None
    event: str | None = None
    message: str = Field(default="", sa_column=Column(Text))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class Command(SQLModel, table=True):
    """An operator (or hook) request the controller handles first thing in its loop."""

    id: int | None = Field(default=None, primary_key=True)
    kind: CommandKind
    deployment_id: int | None = None
    actor: str = "operator"
    reason: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    handled_at: datetime | None = None
    outcome: str = ""


class Lock(SQLModel, table=True):
    """A named lock; `pipeline` stops new releases from starting."""

    name: str = Field(primary_key=True)
    holder: str
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)


class DeployFreeze(SQLModel, table=True):
    """An ad-hoc freeze: no new release starts from `since` until `until` (None: until lifted).

    Rows are kept after they end or are lifted, so the history of freezes stays readable.
    """

    __tablename__ = "deploy_freeze"

    id: int | None = Field(default=None, primary_key=True)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    by: str = Field(max_length=100)
    since: datetime = Field(default_factory=utcnow)
    until: datetime | None = Field(default=None, index=True)
    lifted_at: datetime | None = Field(default=None, index=True)
    lifted_by: str | None = Field(default=None, max_length=100)


class FeatureFlag(SQLModel, table=True):
    """One feature flag's definition, served to the app's hosts, which evaluate it themselves.

    A deleted flag keeps its row (`archived_at` set) so its history stays readable; creating
    the key again reuses the row and carries on counting its revisions.
    """

    __tablename__ = "feature_flag"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(index=True, unique=True, max_length=64)
    description: str = Field(default="", sa_column=Column(Text))
    enabled: bool = False
    percentage: float = 0.0
    allow: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    deny: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    salt: str = Field(default="", max_length=64)
    revision: int = Field(default=1, description="this flag's own changes: 1 when created, one more per change")
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str = Field(default="", max_length=200)
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(default="", max_length=200)
    archived_at: datetime | None = Field(default=None, index=True)
    archived_by: str | None = Field(default=None, max_length=200)


class FlagRevision(SQLModel, table=True):
    """One row: the revision of the whole set of flags, bumped in the transaction of every change.

    Hosts compare it (as the ETag of `GET /api/v1/flags`) to know they serve the newest definitions.
    """

    __tablename__ = "flag_revision"

    name: str = Field(primary_key=True, max_length=20)  # "flags": one counter per database
    revision: int = 0
    updated_at: datetime = Field(default_factory=utcnow)


class Leader(SQLModel, table=True):
    """The controller that drives the fleet: who, since when, and its last sign of life."""

    name: str = Field(primary_key=True)  # "controller": one leader per database
    holder: str  # host:pid
    host: str
    pid: int
    since: datetime = Field(default_factory=utcnow)
    heartbeat_at: datetime = Field(default_factory=utcnow)


# --- people, machines and what they may do ---------------------------------------------------

class Role(str, Enum):
    """What a signed-in user or an API token may do; each role includes the ones before it."""

    VIEWER = "viewer"                    # reads every page and endpoint
    RELEASE_MANAGER = "release_manager"  # also every action on the pipeline
    ADMIN = "admin"                      # also users and tokens

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """True when this role may do what `needed` may."""
        return self.rank >= needed.rank


class User(SQLModel, table=True):
    """A person who signs in to the dashboard; only the password's hash is stored."""

    # Not "user": the sample app's tables share SQLModel's metadata and it has one of that name.
    __tablename__ = "account"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=100)
    role: Role = Role.VIEWER
    password_hash: str
    # Bumped when the password changes or the user is disabled: older session cookies stop working.
    session_epoch: int = 0
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    """A machine credential: the secret is shown once, only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    role: Role = Role.VIEWER
    prefix: str = Field(max_length=16, description="first characters of the secret, to recognise it in lists")
    secret_hash: str = Field(index=True, unique=True, max_length=64)
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class SignInFailure(SQLModel, table=True):
    """A failed sign-in; recent ones slow the next attempts for that name down."""

    __tablename__ = "signin_failure"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, max_length=100)
    client: str = Field(default="", max_length=100)
    at: datetime = Field(default_factory=utcnow, index=True)


class NotificationDelivery(SQLModel, table=True):
    """One POST of one pipeline event to one configured URL, with every attempt's outcome."""

    __tablename__ = "notification_delivery"

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(index=True, description="the audit event it reports")
    kind: str = Field(max_length=40)
    url: str
    format: str = Field(max_length=10)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    status: str = Field(default="pending", index=True, max_length=20)  # pending, delivered, failed
    attempts: int = 0
    last_error: str = Field(default="", sa_column=Column(Text))
    next_attempt_at: datetime = Field(default_factory=utcnow)
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None


# --- merge gate: required checks per commit, webhook deliveries, statuses sent -----------------

class CheckState(str, Enum):
    """A required check's state, in GitHub's commit-status vocabulary plus the queue's."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"            # the check could not run (no checkout, crash): not the commit's fault

    @property
    def finished(self) -> bool:
        return self in (CheckState.SUCCESS, CheckState.FAILURE, CheckState.ERROR)


class CommitCheck(SQLModel, table=True):
    """One required check of one commit, against one target branch tip.

    Keyed by (sha, name); `tree` is indexed too, so a merge commit whose tree was already
    checked reuses that result instead of running again.
    """

    __tablename__ = "commit_check"
    __table_args__ = (UniqueConstraint("sha", "name", name="uq_commit_check_sha_name"),)

    id: int | None = Field(default=None, primary_key=True)
    sha: str = Field(index=True, max_length=64)
    name: str = Field(max_length=50)
    tree: str | None = Field(default=None, index=True, max_length=64)
    ref: str = Field(default="", max_length=500, description="where the commit was seen (fetched from there)")
    target_branch: str = Field(default="main", max_length=200)
    target_sha: str | None = Field(default=None, max_length=64)
    state: CheckState = Field(default=CheckState.QUEUED, index=True)
    detail: str = Field(default="", sa_column=Column(Text))
    log: str = Field(default="", sa_column=Column(Text))
    report: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    reused_from: str | None = Field(default=None, max_length=64)
    requested_by: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class WebhookDelivery(SQLModel, table=True):
    """A webhook delivery id already accepted: the same id again is a replay and is refused."""

    __tablename__ = "webhook_delivery"

    id: str = Field(primary_key=True, max_length=200, description="provider:delivery-id")
    event: str = Field(default="", max_length=100)
    at: datetime = Field(default_factory=utcnow)


class PostedStatus(SQLModel, table=True):
    """The last commit status sent per (sha, context), so only changes are sent again."""

    __tablename__ = "posted_status"

    sha: str = Field(primary_key=True, max_length=64)
    context: str = Field(primary_key=True, max_length=100)
    state: str = Field(max_length=20)
    description: str = Field(default="", max_length=140)
    at: datetime = Field(default_factory=utcnow)


class VersionHealth(SQLModel, table=True):
    """How a version behaved while it was live, as the post-deploy watch measured it.

    `figures` are its typical fleet-wide figures (medians over healthy windows), the yardstick
    the next release is held to; `evidence` is what made the watch roll it back, if it did.
    Keyed by version, so a release deployed again (a rollback) adds to the same record.
    """

    __tablename__ = "version_health"

    sha: str = Field(primary_key=True, max_length=64)
    figures: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    evidence: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    rolled_back_release_id: int | None = None
    updated_at: datetime = Field(default_factory=utcnow)
