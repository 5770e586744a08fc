"""The JSON API under /api/v1: read the pipeline's state and steer it through deployer.service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, Field

from deployer.model import CommandKind
from deployer.service import DeployService

router = APIRouter(prefix="/api/v1", tags=["api"])


def get_service(request: Request) -> DeployService:
    """The service the app was created with."""
    return request.app.state.service


ServiceDep = Annotated[DeployService, Depends(get_service)]


class CommandBody(BaseModel):
    actor: str = Field("api", min_length=1, max_length=100)
    reason: str = Field("", max_length=1000)
    deployment_id: int | None = None


class LockBody(BaseModel):
    holder: str = Field(..., min_length=1, max_length=100)
    reason: str = Field(..., min_length=1, max_length=1000)


class PushBody(BaseModel):
    ref: str = Field("", max_length=500)
    before: str = Field("", max_length=64)
    after: str = Field("", max_length=64)


@router.get("/status")
def status(service: ServiceDep, releases: Annotated[int, Query(ge=1, le=200)] = 10) -> dict[str, Any]:
    """Hosts, the deployment in flight, recent releases and the lock."""
    return service.status(releases=releases)


@router.get("/commits")
def commits(service: ServiceDep) -> list[dict[str, Any]]:
    """Every known commit of the branch with its status."""
    return service.commits()


@router.get("/deployments/{deployment_id}")
def deployment(deployment_id: int, service: ServiceDep) -> dict[str, Any]:
    """One deployment with its stages, verdicts and audit trail."""
    return service.deployment(deployment_id)


@router.get("/events")
def events(service: ServiceDep, after: Annotated[int, Query(ge=0)] = 0,
           limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    """The audit trail after event id `after`."""
    return service.events(after_id=after, limit=limit)


@router.post("/deployments/current/{action}", status_code=202)
def command(action: CommandKind, service: ServiceDep,
            body: Annotated[CommandBody, Body()] = CommandBody()) -> dict[str, Any]:
    """Abort, pause, resume or promote the deployment in flight (409 when it cannot apply)."""
    return service.command(action, actor=body.actor, reason=body.reason, deployment_id=body.deployment_id)


@router.post("/lock")
def lock(body: LockBody, service: ServiceDep) -> dict[str, Any]:
    """Lock the pipeline: no new release starts until unlocked."""
    return service.lock(holder=body.holder, reason=body.reason)


@router.delete("/lock")
def unlock(service: ServiceDep, actor: Annotated[str, Query(min_length=1, max_length=100)] = "api") -> dict[str, Any]:
    """Unlock the pipeline."""
    return service.unlock(actor=actor)


@router.post("/hooks/push", status_code=202)
def push_hook(body: PushBody, service: ServiceDep) -> dict[str, Any]:
    """A git push hook or webhook: fetch now instead of at the next poll."""
    return service.notify_push(actor="push-hook", ref=body.ref, after=body.after)
