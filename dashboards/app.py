"""create_app(settings): the only place the web app is wired."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from dashboards import api, metrics
from deployer.service import Conflict, DeployerError, DeployService, NotFound
from deployer.settings import Settings


def create_app(settings: Settings, *, service: DeployService | None = None) -> FastAPI:
    """The dashboard and API over the controller's database."""
    app = FastAPI(title="deployer", version="0.1.0")
    app.state.settings = settings
    app.state.service = service or DeployService.from_settings(settings)
    app.state.registry = metrics.build_registry(app.state.service)
    app.include_router(api.router)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(DeployerError)
    async def _refused(_: Request, exc: DeployerError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> PlainTextResponse:
        body, content_type = metrics.render(app.state.registry)
        return PlainTextResponse(body, media_type=content_type)

    return app
