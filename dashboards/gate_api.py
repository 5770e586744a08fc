"""The merge gate's HTTP API: the gate, overrides, push reports, checks, and webhook intake.

The hooks call these with an API token; the webhook endpoints are authenticated by the
provider's signature or token instead (the auth middleware lets them through).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from dashboards import gate_pages
from dashboards.security import ReleaseManager, Viewer
from deployer.service import (
    CheckView,
    DeployService,
    GateService,
    GateView,
    OverrideRefused,
    PushOutcome,
    RefUpdate,
    WebhookRefused,
    WebhookResult,
)

router = APIRouter(prefix="/api/v1", tags=["gate"])
ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "no valid credentials"}, 403: {"description": "the caller's role may not do this"}}
ShaQuery = Annotated[str, Query(min_length=7, max_length=64, pattern=r"^[0-9a-fA-F]+$")]
OptionalSha = Annotated[str | None, Query(min_length=40, max_length=64, pattern=r"^[0-9a-fA-F]+$")]
BranchName = Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[^\s~^:?*\[\\]+$")]


def attach(app: FastAPI) -> None:
    """Include the routes, and send deploy states as commit statuses while the app runs (when configured)."""
    app.include_router(router)
    app.include_router(gate_pages.router)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(running: FastAPI) -> AsyncIterator[Any]:
        gate = running.state.service.gate
        loop = gate.status_loop() if gate is not None else None
        try:
            async with inner(running) as state:
                yield state
        finally:
            if loop is not None:
                loop.stop()
            if gate is not None:
                gate.checks.close()

    app.router.lifespan_context = lifespan


def gate_service(request: Request) -> GateService:
    """The gate of the app's service (present whenever the app was built from settings)."""
    service: DeployService = request.app.state.service
    if service.gate is None:
        raise HTTPException(503, "the merge gate needs the service built from settings")
    return service.gate


GateDep = Annotated[GateService, Depends(gate_service)]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OverrideBody(StrictBody):
    branch: str = Field(..., min_length=1, max_length=200)
    sha: str = Field(..., min_length=7, max_length=64, pattern=r"^[0-9a-fA-F]+$")
    reason: str = Field(..., min_length=3, max_length=1000)
    tree: str | None = Field(None, min_length=40, max_length=64, pattern=r"^[0-9a-fA-F]+$")
    message: str = Field("", max_length=8000)


class PushedBody(StrictBody):
    updates: list[RefUpdate] = Field(..., min_length=1, max_length=100)


class CheckRequestBody(StrictBody):
    ref: str = Field("", max_length=500)
    target_branch: str | None = Field(None, max_length=200)
    rerun: bool = False


@router.get("/gate", responses=ERRORS)
def gate(caller: Viewer, service: GateDep, branch: BranchName, sha: ShaQuery, tree: OptionalSha = None,
         message: Annotated[str, Query(max_length=8000)] = "") -> GateView:
    """May `sha` be pushed or merged to `branch` now? If not, one line saying why and what to do."""
    return service.gate(branch=branch, sha=sha, tree=tree, message=message)


@router.post("/gate/override", responses={**ERRORS, 422: {"description": "bad request"}})
def override(body: OverrideBody, caller: Viewer, service: GateDep) -> GateView:
    """Let a refused push through in an emergency (release managers and admins only; audited either way)."""
    try:
        return service.override(name=caller.name, role=caller.role, branch=body.branch, sha=body.sha,
                                reason=body.reason, tree=body.tree, message=body.message)
    except OverrideRefused as exc:
        raise HTTPException(403, str(exc)) from None


@router.post("/gate/pushed", status_code=202, responses=ERRORS)
def pushed(body: PushedBody, caller: ReleaseManager, service: GateDep) -> PushOutcome:
    """A push reached the central repository: checks for each updated branch, discovery for the shipping one."""
    return service.pushed(body.updates, actor=caller.name)


@router.get("/checks", responses=ERRORS)
def checks(caller: Viewer, service: GateDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[CheckView]:
    """The newest checks first."""
    return service.checks.recent(limit=limit)


@router.get("/checks/{sha}", responses=ERRORS)
def checks_of(caller: Viewer, service: GateDep,
              sha: Annotated[str, Path(min_length=7, max_length=64, pattern=r"^[0-9a-fA-F]+$")]) -> list[CheckView]:
    """Every check of one commit, with its detail and report."""
    return service.checks.of(sha)


@router.post("/checks/{sha}", status_code=202, responses=ERRORS)
def request_checks(caller: ReleaseManager, service: GateDep,
                   sha: Annotated[str, Path(min_length=40, max_length=64, pattern=r"^[0-9a-fA-F]+$")],
                   body: CheckRequestBody | None = None) -> list[CheckView]:
    """Run a commit's required checks (again, with rerun)."""
    body = body or CheckRequestBody()
    return service.checks.request(sha, ref=body.ref, actor=caller.name, target_branch=body.target_branch,
                                  rerun=body.rerun)


# --- webhooks: authenticated by the provider's signature, not by a token ---------------------------

async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, f"Content-Length {declared[:40]!r} is not a number")
        if int(declared) > limit:
            raise HTTPException(413, f"the body is {declared} bytes; at most {limit} are accepted "
                                     f"(webhooks.max_body)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body is over {limit} bytes (webhooks.max_body)")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/webhooks/{provider}", responses={400: {"description": "malformed delivery"},
                                                401: {"description": "bad signature or token"},
                                                409: {"description": "replayed delivery"},
                                                413: {"description": "body too large"}})
async def webhook(provider: Annotated[str, Path(pattern=r"^(github|gitlab)$")], request: Request) -> WebhookResult:
    """A GitHub or GitLab push, pull request or merge request event."""
    service: DeployService = request.app.state.service
    if service.webhooks is None or service.settings is None:
        raise HTTPException(503, "webhooks need the service built from settings")
    body = await _body(request, service.settings.webhooks.max_body)
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        return await run_in_threadpool(service.webhooks.receive, provider, headers, body)
    except WebhookRefused as exc:
        raise HTTPException(exc.status, exc.detail) from None
