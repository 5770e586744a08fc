"""The JSON API under /api/v1: every page's data and every action, through deployer.service.

Authentication happens before any route runs (dashboards.security.ApiAuthMiddleware);
each route names the role it needs. The actor of an action is always the caller, never
a field of the body.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from dashboards.security import Admin, ReleaseManager, Viewer
from deployer.model import CommandKind, ReleaseKind, Role, utcnow
from deployer.service import BadInput, DeployService, NewToken, TokenView, UserView, parse_until
from deployer.service import (
    ActionResult,
    CommandAccepted,
    CommitView,
    DeploymentDetail,
    EventView,
    HostView,
    LockState,
    Overview,
    ReleasePage,
    StatusView,
    WhoAmI,
    WindowView,
)

router = APIRouter(prefix="/api/v1", tags=["api"])
ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "no valid credentials"}, 403: {"description": "the caller's role may not do this"}}
ACTION_ERRORS: dict[int | str, dict[str, str]] = {**ERRORS, 409: {"description": "the action cannot apply now"}}


def get_service(request: Request) -> DeployService:
    """The service the app was created with."""
    return request.app.state.service


ServiceDep = Annotated[DeployService, Depends(get_service)]
MAX_ID = 2**62  # ids are 64-bit in every database; larger numbers are refused with a 422, not a crash
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Reason = Annotated[str, Field(max_length=1000)]
Sha = Annotated[str, Path(min_length=7, max_length=64, pattern=r"^[0-9a-fA-F]+$")]
RELEASE_STATUSES = Literal["queued", "testing", "building", "canary", "rolling_out", "paused", "rolling_back",
                           "succeeded", "tests_failed", "build_failed", "rolled_back", "aborted", "superseded"]


class StrictBody(BaseModel):
    """Unknown fields are refused, so a typo (or an `actor` field: the caller is the actor) is an error."""

    model_config = ConfigDict(extra="forbid")


class ReasonBody(StrictBody):
    reason: Reason = ""


class CommandBody(ReasonBody):
    deployment_id: int | None = Field(None, ge=1, le=MAX_ID, description="refuse unless this is the deployment in flight")


class LockBody(StrictBody):
    reason: str = Field(..., min_length=1, max_length=1000)


class FreezeBody(StrictBody):
    reason: str = Field(..., min_length=1, max_length=1000)
    until: str | None = Field(None, max_length=64, description="\"4h\", \"2d\" from now, or an ISO 8601 time "
                                                             "(without a zone: UTC); none: until unfrozen")


class RollbackBody(StrictBody):
    reason: str = Field(..., min_length=1, max_length=1000)
    skip_analysis: bool = Field(False, description="the fast path: no bake and no canary analysis")


class PushBody(BaseModel):
    """Lenient: webhooks from git servers send many more fields than these."""

    ref: str = Field("", max_length=500)
    before: str = Field("", max_length=64)
    after: str = Field("", max_length=64)


class UserBody(StrictBody):
    name: str = Field(..., min_length=1, max_length=100)
    role: Role
    password: str = Field(..., min_length=12, max_length=1000)


class TokenBody(StrictBody):
    name: str = Field(..., min_length=1, max_length=100)
    role: Role


# --- reads --------------------------------------------------------------------------------------

@router.get("/whoami", responses=ERRORS)
def whoami(caller: Viewer, service: ServiceDep) -> WhoAmI:
    """The caller's name and role."""
    return service.whoami(caller)


@router.get("/status", responses=ERRORS)
def status(caller: Viewer, service: ServiceDep, releases: Annotated[int, Query(ge=1, le=200)] = 10) -> StatusView:
    """Hosts, the deployment in flight, recent releases and the lock."""
    return service.status(releases=releases)


@router.get("/overview", responses=ERRORS)
def overview(caller: Viewer, service: ServiceDep) -> Overview:
    """Fleet version, release in flight, undeployed commits, lock and DORA figures."""
    return service.overview()


@router.get("/commits", responses=ERRORS)
def commits(caller: Viewer, service: ServiceDep) -> list[CommitView]:
    """Every known commit of the branch with its status."""
    return service.commits()


@router.get("/releases", responses=ERRORS)
def releases(caller: Viewer, service: ServiceDep, status: RELEASE_STATUSES | None = None,
             author: Annotated[str | None, Query(max_length=200)] = None, kind: ReleaseKind | None = None,
             before: QueryId = None,
             limit: Annotated[int, Query(ge=1, le=200)] = 50) -> ReleasePage:
    """Releases newest first; pass `next_before` as `before` for the next page."""
    return service.releases(status=status, author=author, kind=kind.value if kind else None, before=before,
                            limit=limit)


@router.get("/releases/{release_id}", responses={**ERRORS, 404: {"description": "no such release"}})
def release(caller: Viewer, service: ServiceDep, release_id: PathId) -> DeploymentDetail:
    """A release's latest deployment in detail."""
    return service.release(release_id)


@router.get("/deployments/{deployment_id}", responses={**ERRORS, 404: {"description": "no such deployment"}})
def deployment(caller: Viewer, service: ServiceDep, deployment_id: PathId) -> DeploymentDetail:
    """One deployment with its stages, verdicts, hosts and audit trail."""
    return service.deployment(deployment_id)


@router.get("/hosts", responses=ERRORS)
def hosts(caller: Viewer, service: ServiceDep) -> list[HostView]:
    """Every host: desired and observed version, health, role."""
    return service.hosts()


@router.get("/events", responses=ERRORS)
def events(caller: Viewer, service: ServiceDep, after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
           limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[EventView]:
    """The audit trail after event id `after`, oldest first."""
    return service.events(after_id=after, limit=limit)


@router.get("/audit", responses=ERRORS)
def audit(caller: Viewer, service: ServiceDep, kind: Annotated[str | None, Query(max_length=100)] = None,
          actor: Annotated[str | None, Query(max_length=200)] = None,
          deployment_id: QueryId = None, before: QueryId = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[EventView]:
    """Audit events newest first, filtered; page with `before` = the last id seen."""
    return service.audit(kind=kind, actor=actor, deployment_id=deployment_id, before=before, limit=limit)


@router.get("/audit.jsonl", responses={**ERRORS, 200: {"content": {"application/x-ndjson": {}}}})
def audit_export(caller: Viewer, service: ServiceDep, kind: Annotated[str | None, Query(max_length=100)] = None,
                 actor: Annotated[str | None, Query(max_length=200)] = None,
                 deployment_id: QueryId = None) -> StreamingResponse:
    """Every matching audit event as JSON Lines, oldest first."""
    def lines() -> Iterator[str]:
        for event in service.audit_export(kind=kind, actor=actor, deployment_id=deployment_id):
            yield event.model_dump_json(by_alias=True) + "\n"
    return StreamingResponse(lines(), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'})


# --- actions ------------------------------------------------------------------------------------

@router.post("/deployments/current/{action}", status_code=202, responses=ACTION_ERRORS)
def command(action: Literal["abort", "pause", "resume", "promote"], caller: ReleaseManager, service: ServiceDep,
            body: Annotated[CommandBody, Body()] = CommandBody()) -> CommandAccepted:
    """Abort, pause, resume or promote the deployment in flight (409 when it cannot apply)."""
    return service.command(CommandKind(action), actor=caller.name, reason=body.reason,
                           deployment_id=body.deployment_id)


@router.post("/lock", responses=ACTION_ERRORS)
def lock(body: LockBody, caller: ReleaseManager, service: ServiceDep) -> LockState:
    """Lock the pipeline: no new release starts until unlocked."""
    return service.lock(holder=caller.name, reason=body.reason)


@router.delete("/lock", responses=ACTION_ERRORS)
def unlock(caller: ReleaseManager, service: ServiceDep,
           reason: Annotated[str, Query(max_length=1000)] = "") -> LockState:
    """Unlock the pipeline."""
    return service.unlock(actor=caller.name, reason=reason)


@router.get("/window", responses=ERRORS)
def window(caller: Viewer, service: ServiceDep) -> WindowView:
    """May a new release start now? If not, why (freezes, blackouts) and until when."""
    return service.deploy_window()


@router.post("/freeze", responses={**ACTION_ERRORS, 422: {"description": "a bad reason or end"}})
def freeze(body: FreezeBody, caller: ReleaseManager, service: ServiceDep) -> WindowView:
    """Freeze deploys: no new release starts, merges to protected branches are refused; commits queue."""
    try:
        until = parse_until(body.until, now=utcnow()) if body.until else None
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    return service.freeze(actor=caller.name, reason=body.reason, until=until)


@router.delete("/freeze", responses=ACTION_ERRORS)
def unfreeze(caller: ReleaseManager, service: ServiceDep,
             reason: Annotated[str, Query(max_length=1000)] = "") -> WindowView:
    """Lift the freeze (configured blackouts still apply)."""
    return service.unfreeze(actor=caller.name, reason=reason)


@router.post("/releases/{release_id}/rollback", status_code=202, responses=ACTION_ERRORS)
def rollback(release_id: PathId, body: RollbackBody, caller: ReleaseManager,
             service: ServiceDep) -> ActionResult:
    """Deploy this earlier good release again as a new rollback release (and lock the pipeline)."""
    return service.rollback(release_id, actor=caller.name, reason=body.reason, skip_analysis=body.skip_analysis)


@router.post("/releases/{release_id}/retry", status_code=202, responses=ACTION_ERRORS)
def retry(release_id: PathId, caller: ReleaseManager, service: ServiceDep,
          body: Annotated[ReasonBody, Body()] = ReasonBody()) -> ActionResult:
    """Make a failed release's commits pending again, so the next release takes them."""
    return service.retry(release_id, actor=caller.name, reason=body.reason)


@router.post("/commits/{sha}/{mark}", responses=ACTION_ERRORS)
def mark_commit(sha: Sha, mark: Literal["bad", "good"], caller: ReleaseManager, service: ServiceDep,
                body: Annotated[ReasonBody, Body()] = ReasonBody()) -> ActionResult:
    """Mark a commit bad (never deployed until marked good) or good again."""
    return service.mark_commit(sha, bad=mark == "bad", actor=caller.name, reason=body.reason)


@router.post("/hooks/push", status_code=202, responses=ERRORS)
def push_hook(body: PushBody, caller: ReleaseManager, service: ServiceDep) -> CommandAccepted:
    """A git push hook or webhook: fetch now instead of at the next poll."""
    return service.notify_push(actor=caller.name, ref=body.ref, after=body.after)


# --- users and tokens (admin) -----------------------------------------------------------------

@router.get("/users", responses=ERRORS)
def users(caller: Admin, service: ServiceDep) -> list[UserView]:
    """Every user."""
    return service.accounts.users()


@router.post("/users", status_code=201, responses=ACTION_ERRORS)
def add_user(body: UserBody, caller: Admin, service: ServiceDep) -> UserView:
    """Create a user (the password is hashed; it is never stored or shown)."""
    return service.accounts.add_user(name=body.name, role=body.role, password=body.password, actor=caller.name)


@router.get("/tokens", responses=ERRORS)
def tokens(caller: Admin, service: ServiceDep) -> list[TokenView]:
    """Every API token (never their secrets)."""
    return service.accounts.tokens()


@router.post("/tokens", status_code=201, responses=ACTION_ERRORS)
def create_token(body: TokenBody, caller: Admin, service: ServiceDep) -> NewToken:
    """A new API token; its secret is in this response only."""
    return service.accounts.create_token(name=body.name, role=body.role, actor=caller.name)


@router.delete("/tokens/{token_id}", responses=ACTION_ERRORS)
def revoke_token(token_id: PathId, caller: Admin, service: ServiceDep) -> TokenView:
    """Revoke a token at once."""
    return service.accounts.revoke_token(token_id=token_id, actor=caller.name)

