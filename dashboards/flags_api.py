"""Feature flags over HTTP: what the app's hosts fetch (any role), and changes (release managers).

`GET /api/v1/flags` answers the sample app's client (sample_app/flags.py) with an ETag made
of the set's revision, and 304 when the host already has that revision: a host polling every
second costs a one-row read. The actor of a change is always the caller.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response
from pydantic import Field

from dashboards.api import ACTION_ERRORS, ERRORS, MAX_ID, ServiceDep, StrictBody
from dashboards.security import ReleaseManager, Viewer
from deployer.service import FlagSet, FlagView

router = APIRouter(prefix="/api/v1", tags=["flags"])
FlagKey = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9_.-]+$",
                              description="1-64 characters of a-z, 0-9, \"_\", \".\", \"-\"")]
NOT_FOUND = {404: {"description": "no such flag (or it was deleted)"}}
WRITE_ERRORS: dict[int | str, dict[str, str]] = {**ACTION_ERRORS, **NOT_FOUND,
                                                 422: {"description": "a bad field: which, the value and the fix"}}
# Bounds against abuse only; the service checks the rules and says what would do.
UserId = Annotated[str, Field(max_length=200)]
Users = Annotated[list[UserId], Field(max_length=1000)]
Reason = Annotated[str, Field(max_length=1000, description="why: shown in the audit log")]


class FlagCreateBody(StrictBody):
    key: str = Field(..., max_length=200, description="1-64 characters of a-z, 0-9, \"_\", \".\", \"-\"")
    description: str = Field("", max_length=1000)
    enabled: bool = False
    percentage: float = Field(0.0, description="share of users who get it while on, 0-100")
    allow: Users = Field(default_factory=list)
    deny: Users = Field(default_factory=list)
    salt: str | None = Field(None, max_length=200, description="default: a random one, so flags split users "
                                                               "independently")
    reason: Reason


class FlagChangeBody(StrictBody):
    """Only the fields given change; `allow`/`deny` replace the whole list."""

    enabled: bool | None = None
    percentage: float | None = None
    allow: Users | None = None
    deny: Users | None = None
    description: str | None = Field(None, max_length=1000)
    revision: int | None = Field(None, ge=1, le=MAX_ID, description="refuse (409) unless the flag is still at this "
                                                                    "revision")
    reason: Reason


def etag_of(revision: int) -> str:
    """The ETag of a revision of the whole set."""
    return f'"flags-{revision}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """True when the client's If-None-Match names `etag` (weak or strong) or is `*`."""
    if not if_none_match:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


@router.get("/flags", response_model=FlagSet,
            responses={**ERRORS, 304: {"description": "the caller has this revision already"}})
def flags(caller: Viewer, service: ServiceDep, response: Response,
          if_none_match: Annotated[str | None, Header(max_length=1000)] = None) -> FlagSet | Response:
    """Every live flag and the set's revision, with an ETag; 304 when If-None-Match names the current one."""
    etag = etag_of(service.flags_revision())
    if matches(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
    current = service.flags()
    response.headers["ETag"] = etag_of(current.revision)
    response.headers["Cache-Control"] = "no-cache"
    return current


@router.get("/flags/{key}", responses={**ERRORS, **NOT_FOUND})
def flag(key: FlagKey, caller: Viewer, service: ServiceDep) -> FlagView:
    """One live flag."""
    return service.flag(key)


@router.post("/flags", status_code=201, responses=WRITE_ERRORS)
def create_flag(body: FlagCreateBody, caller: ReleaseManager, service: ServiceDep) -> FlagView:
    """Create a flag (off unless `enabled`); 409 when the key exists."""
    return service.create_flag(body.key, actor=caller.name, reason=body.reason, description=body.description,
                               enabled=body.enabled, percentage=body.percentage, allow=body.allow, deny=body.deny,
                               salt=body.salt)


@router.patch("/flags/{key}", responses=WRITE_ERRORS)
def change_flag(key: FlagKey, body: FlagChangeBody, caller: ReleaseManager, service: ServiceDep) -> FlagView:
    """Turn a flag on or off, set its percentage, allow/deny lists or description."""
    return service.change_flag(key, actor=caller.name, reason=body.reason, enabled=body.enabled,
                               percentage=body.percentage, allow=body.allow, deny=body.deny,
                               description=body.description, expect_revision=body.revision)


@router.delete("/flags/{key}", responses=WRITE_ERRORS)
def delete_flag(key: FlagKey, caller: ReleaseManager, service: ServiceDep,
                reason: Annotated[str, Query(max_length=1000)] = "") -> FlagView:
    """Delete (archive) a flag: hosts stop receiving it, so it is off for everyone. Answers its last definition."""
    return service.delete_flag(key, actor=caller.name, reason=reason)
