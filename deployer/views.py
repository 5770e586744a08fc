"""Typed read models the service returns; the API, the pages and the CLI all render these.

The OpenAPI schema of the JSON API comes from these classes, so a field added here is
documented everywhere at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from deployer.model import CommitStatus, HostRole, ReleaseKind, Role, StageStatus


class HostView(BaseModel):
    name: str
    address: str
    desired_version: str | None
    observed_version: str | None
    healthy: bool
    role: HostRole
    detail: str
    updated_at: datetime | None


class DeploymentView(BaseModel):
    id: int | None = Field(description="None for a release that never had a deployment (the fleet's first version)")
    release_id: int
    status: str
    phase: str | None
    wave: int
    waves: int
    wave_plan: list[int]
    version: str
    previous_version: str | None
    canary_hosts: list[str]
    baseline_hosts: list[str]
    reason: str
    last_verdict: dict[str, Any] | None
    skip_analysis: bool = False
    created_at: datetime | None
    updated_at: datetime | None
    finished_at: datetime | None
    hosts_done: int = Field(0, description="hosts already on this deployment's version")
    hosts_total: int = Field(0, description="hosts in the fleet")


class ReleaseView(BaseModel):
    id: int
    sha: str
    kind: ReleaseKind
    status: str
    commits: list[str]
    previous_sha: str | None
    created_at: datetime | None
    finished_at: datetime | None
    reason: str
    deployment_id: int | None
    started_by: str = "controller"


class FreezeView(BaseModel):
    """An ad-hoc freeze: who, why, since and until when (None: until lifted)."""

    id: int
    reason: str
    by: str
    since: datetime | None
    until: datetime | None
    lifted_at: datetime | None = None
    lifted_by: str | None = None


class BlackoutView(BaseModel):
    """A configured recurring period without new releases."""

    name: str
    days: list[str]
    hours: str
    tz: str


class WindowView(BaseModel):
    """May a new release start now? If not, why and until when (None: until a freeze is lifted)."""

    open: bool
    reason: str = Field("", description="every rule that holds releases back now, in one line")
    until: datetime | None = Field(None, description="when releases may start again; None while closed means "
                                                     "until a freeze is lifted")
    freezes: list[FreezeView] = Field(default_factory=list, description="active ad-hoc freezes")
    blackouts: list[BlackoutView] = Field(default_factory=list, description="configured blackouts")
    waiting: int = Field(0, description="merged commits waiting to ship")
    now: datetime


class LockView(BaseModel):
    holder: str
    reason: str
    at: datetime | None


class LeaderView(BaseModel):
    """The controller that drives the fleet, and its last sign of life."""

    holder: str
    host: str
    pid: int
    since: datetime | None
    heartbeat_at: datetime | None
    heartbeat_age_s: float


class StatusView(BaseModel):
    hosts: list[HostView]
    active: DeploymentView | None
    releases: list[ReleaseView]
    lock: LockView | None
    leader: LeaderView | None = None
    window: WindowView | None = None


class CommitView(BaseModel):
    sha: str
    position: int
    author: str
    title: str
    status: CommitStatus
    release_id: int | None
    committed_at: datetime | None
    discovered_at: datetime | None = None


class StageView(BaseModel):
    name: str
    status: StageStatus
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    detail: str
    log: str


class VerdictView(BaseModel):
    wave: int
    result: str
    score: float | None
    reason: str
    intervals: int
    at: datetime | None
    report: dict[str, Any]


class EventView(BaseModel):
    id: int
    at: datetime | None
    actor: str
    kind: str
    deployment_id: int | None
    release_id: int | None
    from_: str | None = Field(None, alias="from")
    to: str | None
    event: str | None
    message: str
    data: dict[str, Any]

    model_config = {"populate_by_name": True}


class ReleaseCommit(BaseModel):
    sha: str
    author: str
    title: str
    committed_at: datetime | None


class ReleaseRow(BaseModel):
    """One line of the releases list: the release, its commits and how long it took."""

    release: ReleaseView
    commits: list[ReleaseCommit]
    authors: list[str]
    duration_s: float | None


class ReleasePage(BaseModel):
    """A page of releases, newest first; pass `next_before` back as `before` for the next page."""

    items: list[ReleaseRow]
    next_before: int | None


class BisectNode(BaseModel):
    release_id: int
    sha: str
    kind: ReleaseKind
    status: str
    commits: list[str]
    children: list[BisectNode] = []


class DeploymentDetail(DeploymentView):
    stages: list[StageView]
    verdicts: list[VerdictView]
    events: list[EventView]
    hosts: list[HostView] = []
    release: ReleaseView | None = None
    release_commits: list[ReleaseCommit] = []
    bisection: BisectNode | None = None


class Dora(BaseModel):
    """The four DORA figures over a window, from the database."""

    days: int
    deploys: int
    deploys_per_day: float
    median_lead_time_s: float | None = Field(description="merge to full fleet")
    change_failure_rate: float | None
    median_time_to_restore_s: float | None


class Overview(BaseModel):
    fleet_version: str | None
    fleet_since: datetime | None
    active: DeploymentView | None
    queue: list[CommitView]
    lock: LockView | None
    dora: list[Dora]
    now: datetime
    window: WindowView | None = None


class CommandAccepted(BaseModel):
    id: int | None
    kind: str
    deployment_id: int | None


class LockState(BaseModel):
    locked: bool
    holder: str | None = None
    reason: str | None = None


class ActionResult(BaseModel):
    """What an action did, in one sentence, and what it touched."""

    message: str
    release_id: int | None = None
    deployment_id: int | None = None
    commits: list[str] = []


class WhoAmI(BaseModel):
    name: str
    role: Role
    kind: str


class PlatformFigures(BaseModel):
    """Aggregates for the platform's own /metrics."""

    releases: dict[tuple[str, str], int]
    rollbacks: dict[str, int]
    verdicts: dict[str, int]
    queue: dict[str, int]
    stage_seconds: dict[str, list[float]]
    lead_times: list[float]
    restore_times: list[float]



class FlagView(BaseModel):
    """One feature flag as hosts evaluate it (key, enabled, percentage, allow, deny, salt) and its history."""

    key: str
    enabled: bool
    percentage: float = Field(description="share of users who get it, 0-100, two decimals")
    allow: list[str] = Field(description="users who get it whatever the percentage (while it is on)")
    deny: list[str] = Field(description="users who never get it, unless allowed")
    salt: str = Field(description="mixed into each user's bucket; a new salt reshuffles who is in the percentage")
    description: str = ""
    revision: int = Field(description="this flag's own changes: 1 when created, one more per change")
    created_at: datetime | None = None
    created_by: str = ""
    updated_at: datetime | None = None
    updated_by: str = ""


class FlagSet(BaseModel):
    """Every live flag and the revision of the whole set (it grows with every change, deletions included)."""

    flags: list[FlagView]
    revision: int
