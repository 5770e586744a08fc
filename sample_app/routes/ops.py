"""Endpoints for the platform: build version, health and metrics."""

from __future__ import annotations

import asyncio
import logging
import os

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ..db import ping

logger = logging.getLogger(__name__)

router = APIRouter(tags=["ops"])

HEALTH_TIMEOUT_SECONDS = 2.0


# These handlers are async on purpose: they run on the event loop, not in the worker
# thread pool, so the platform can still probe and scrape a host whose request
# handlers are all busy or stuck.


@router.get("/version")
async def version(request: Request) -> dict[str, object]:
    """Return the commit sha this host runs, when it started, and its pid."""
    return {"version": request.app.state.version, "started_at": request.app.state.started_at, "pid": os.getpid()}


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """Return 200 when this host can serve requests (the database answers), else 503."""
    if not request.app.state.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    try:
        # A separate connection in a separate thread: a pool drained by slow handlers
        # must not make the probe hang, and a slow database must not block the loop.
        await asyncio.wait_for(asyncio.to_thread(ping, request.app.state.health_engine), HEALTH_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure to reach the database means "cannot serve"
        logger.warning("health check failed: %r", exc)
        return JSONResponse({"status": "unavailable", "error": repr(exc)}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Return the Prometheus metrics of this host."""
    body, content_type = request.app.state.metrics.render()
    return Response(content=body, media_type=content_type)
