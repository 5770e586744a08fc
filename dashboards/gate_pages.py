"""Dashboard pages of the merge gate: the newest checks, and one commit's checks with the benchmark's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from dashboards.pages import User, render, service_of

router = APIRouter(include_in_schema=False)


@router.get("/checks")
def checks_page(request: Request, user: User) -> Response:
    """The newest required checks of every commit."""
    gate = service_of(request).gate
    checks = gate.checks.recent(limit=200) if gate else []
    return render(request, "checks.html", user, checks=checks, sha=None)


@router.get("/checks/{sha}")
def commit_checks_page(request: Request, user: User,
                       sha: Annotated[str, Path(min_length=7, max_length=64, pattern=r"^[0-9a-fA-F]+$")]) -> Response:
    """One commit's checks: state, detail, and each benchmarked route's change with its interval."""
    gate = service_of(request).gate
    checks = gate.checks.of(sha) if gate else []
    return render(request, "checks.html", user, checks=checks, sha=sha.lower())
