"""create_app(settings): the only place the web app is wired."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.middleware.sessions import SessionMiddleware

from dashboards import api, flags_api, flags_pages, gate_api, metrics, pages
from dashboards.security import ApiAuthMiddleware
from deployer.service import BadInput, Conflict, DeployerError, DeployService, NotFound, session_secret
from deployer.settings import Settings


def create_app(settings: Settings, *, service: DeployService | None = None) -> FastAPI:
    """The dashboard and API over the controller's database."""
    app = FastAPI(title="deployer", version="0.1.0",
                  description="Watch and steer every release. Every /api/v1 endpoint needs a signed-in session "
                              "(and its X-CSRF-Token for changes) or 'Authorization: Bearer <API token>'.")
    app.state.settings = settings
    app.state.service = service or DeployService.from_settings(settings)
    app.state.registry = metrics.build_registry(app.state.service)
    app.include_router(api.router)
    app.include_router(flags_api.router)
    gate_api.attach(app)
    app.include_router(pages.router)
    app.include_router(flags_pages.router)
    pages.mount_static(app)
    # Added first = runs inside the session middleware, which has already read (and verified) the cookie.
    app.add_middleware(ApiAuthMiddleware, service=lambda: app.state.service)
    app.add_middleware(SessionMiddleware, secret_key=session_secret(settings), session_cookie="deployer_session",
                       max_age=int(settings.auth.session_max_age), same_site="strict",
                       https_only=settings.auth.cookie_secure)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(BadInput)
    async def _bad_input(_: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(DeployerError)
    async def _refused(_: Request, exc: DeployerError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(pages.SignInRequired)
    async def _sign_in(request: Request, exc: pages.SignInRequired) -> object:
        return pages.redirect_to_sign_in(request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(problems), "errors": jsonable(exc.errors())}, status_code=422)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> PlainTextResponse:
        body, content_type = metrics.render(app.state.registry)
        return PlainTextResponse(body, media_type=content_type)

    return app


def jsonable(errors: object) -> object:
    """Validation errors with any non-JSON value (a bytes body, an exception) turned into text."""
    try:
        return jsonable_encoder(errors)
    except (TypeError, ValueError):
        return str(errors)
