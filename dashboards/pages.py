"""The release manager's pages: server-rendered HTML, live parts refreshed by fragment polling.

Every page needs a signed-in user (any role reads); every form carries the session's CSRF
token; every action carries the user and a reason, goes through deployer.service (which
audits it) and comes back to the page with what happened, or why it could not.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path as FilePath
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from dashboards import charts
from dashboards.security import csrf_ok, csrf_token, principal_from, refuse_unless
from deployer.model import CommandKind, ReleaseKind, Role, utcnow
from deployer.service import BadInput, Conflict, DeployService, NotFound, Principal, parse_until

HERE = FilePath(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)


def _short(sha: str | None) -> str:
    return sha[:10] if sha else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours < 48 else f"{hours // 24}d {hours % 24}h"


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return _duration((datetime.now(timezone.utc) - aware).total_seconds()) + " ago"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


templates.env.filters.update(short=_short, duration=_duration, ago=_ago, when=_when)
RELEASE_STATUSES = ["queued", "testing", "building", "canary", "rolling_out", "paused", "rolling_back", "succeeded",
                    "tests_failed", "build_failed", "rolled_back", "aborted", "superseded"]


class SignInRequired(Exception):
    """A page was asked for without a valid session."""


def mount_static(app: FastAPI) -> None:
    """Serve the vendored CSS and JavaScript (no CDN: the dashboard works offline)."""
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")


def redirect_to_sign_in(request: Request) -> RedirectResponse:
    """303 to the sign-in page, coming back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/signin?next={quote(target)}", status_code=303)


def service_of(request: Request) -> DeployService:
    return request.app.state.service


def page_user(request: Request) -> Principal:
    """The signed-in user, or a redirect to the sign-in page."""
    principal = principal_from(service_of(request), bearer=None, session=request.session)
    if principal is None:
        raise SignInRequired()
    return principal


User = Annotated[Principal, Depends(page_user)]


def render(request: Request, name: str, user: Principal | None, status_code: int = 200, **context: Any) -> Response:
    """A template with the user, the CSRF token and the one-time flash message."""
    flash = request.session.pop("flash", None)
    return templates.TemplateResponse(request, name, {
        "user": user, "csrf": csrf_token(request.session), "flash": flash, "chart": charts.series_chart,
        "can_act": bool(user and user.role.allows(Role.RELEASE_MANAGER)), **context}, status_code=status_code)


def safe_next(target: str | None) -> str:
    """Only paths on this site: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


# --- sign-in ------------------------------------------------------------------------------------

@router.get("/signin")
def signin_page(request: Request, next: str = "/") -> Response:
    return render(request, "signin.html", None, next=safe_next(next))


@router.post("/signin")
async def signin(request: Request, name: Annotated[str, Form(max_length=100)],
                 password: Annotated[str, Form(max_length=1000)], csrf_token: Annotated[str, Form()] = "",
                 next: Annotated[str, Form()] = "/") -> Response:
    if not csrf_ok(request.session, csrf_token):
        request.session["flash"] = {"error": True, "text": "the form had expired; please sign in again"}
        return RedirectResponse("/signin", status_code=303)
    accounts = service_of(request).accounts
    failures = await run_in_threadpool(accounts.recent_failures, name)
    # Slows guessing down without holding a worker thread: the wait is on the event loop.
    delay = accounts.signin_delay(failures)
    if delay:
        await asyncio.sleep(delay)
    client = request.client.host if request.client else ""
    result = await run_in_threadpool(lambda: accounts.sign_in(name=name, password=password, client=client))
    if result.principal is None:
        request.session["flash"] = {"error": True, "text": "wrong name or password"}
        return render(request, "signin.html", None, status_code=401, next=safe_next(next))
    request.session.clear()  # a fresh session (and CSRF token) on sign-in: no fixation
    request.session.update({"uid": result.principal.user_id, "epoch": result.principal.session_epoch})
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/signout")
def signout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    if csrf_ok(request.session, csrf_token):
        request.session.clear()
    return RedirectResponse("/signin", status_code=303)


# --- pages ----------------------------------------------------------------------------------------

@router.get("/", response_class=HTMLResponse)
def overview(request: Request, user: User) -> Response:
    return render(request, "overview.html", user, o=service_of(request).overview())


@router.get("/fragments/overview", response_class=HTMLResponse)
def overview_fragment(request: Request, user: User) -> Response:
    return render(request, "_overview_live.html", user, o=service_of(request).overview())


@router.get("/releases", response_class=HTMLResponse)
def releases(request: Request, user: User, status: Annotated[str, Query(max_length=40)] = "",
             author: Annotated[str, Query(max_length=200)] = "", kind: Annotated[str, Query(max_length=20)] = "",
             before: Annotated[int | None, Query(ge=1, le=2**62)] = None) -> Response:
    if status and status not in RELEASE_STATUSES:
        raise HTTPException(422, f"status: \"{status}\" is not a release status; use one of "
                                 f"{', '.join(RELEASE_STATUSES)}")
    if kind and kind not in {k.value for k in ReleaseKind}:
        raise HTTPException(422, f"kind: \"{kind}\" is not a release kind; use one of "
                                 f"{', '.join(k.value for k in ReleaseKind)}")
    page = service_of(request).releases(status=status or None, author=author or None, kind=kind or None,
                                        before=before, limit=50)
    filters = {k: v for k, v in (("status", status), ("author", author), ("kind", kind)) if v}
    next_url = f"/releases?{urlencode({**filters, 'before': page.next_before})}" if page.next_before else None
    return render(request, "releases.html", user, page=page, statuses=RELEASE_STATUSES,
                  kinds=[k.value for k in ReleaseKind], filters=filters, next_url=next_url)


@router.get("/releases/{release_id}", response_class=HTMLResponse)
def release(request: Request, user: User, release_id: Annotated[int, Path(ge=1, le=2**62)]) -> Response:
    return render(request, "release.html", user, d=_release(request, release_id))


@router.get("/fragments/releases/{release_id}", response_class=HTMLResponse)
def release_fragment(request: Request, user: User, release_id: Annotated[int, Path(ge=1, le=2**62)]) -> Response:
    return render(request, "_release_live.html", user, d=_release(request, release_id))


def _release(request: Request, release_id: int) -> Any:
    try:
        return service_of(request).release(release_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/fleet", response_class=HTMLResponse)
def fleet(request: Request, user: User) -> Response:
    return render(request, "fleet.html", user, status=service_of(request).status(releases=1))


@router.get("/fragments/fleet", response_class=HTMLResponse)
def fleet_fragment(request: Request, user: User) -> Response:
    return render(request, "_fleet_live.html", user, status=service_of(request).status(releases=1))


@router.get("/audit", response_class=HTMLResponse)
def audit(request: Request, user: User, kind: Annotated[str, Query(max_length=100)] = "",
          actor: Annotated[str, Query(max_length=200)] = "",
          deployment_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
          before: Annotated[int | None, Query(ge=1, le=2**62)] = None) -> Response:
    events = service_of(request).audit(kind=kind or None, actor=actor or None, deployment_id=deployment_id,
                                       before=before, limit=100)
    filters: dict[str, Any] = {k: v for k, v in (("kind", kind), ("actor", actor),
                                                 ("deployment_id", deployment_id)) if v}
    next_url = f"/audit?{urlencode({**filters, 'before': events[-1].id})}" if len(events) == 100 else None
    export = "/api/v1/audit.jsonl" + (f"?{urlencode(filters)}" if filters else "")
    return render(request, "audit.html", user, events=events, filters=filters, next_url=next_url, export=export)


# --- actions ------------------------------------------------------------------------------------

ACTIONS = {"lock", "unlock", "freeze", "unfreeze", "abort", "pause", "resume", "promote", "rollback", "retry", "mark-bad", "mark-good"}


@router.post("/actions/{action}")
def act(request: Request, user: User, action: str, csrf_token: Annotated[str, Form()] = "",
        reason: Annotated[str, Form(max_length=1000)] = "", next: Annotated[str, Form()] = "/",
        release_id: Annotated[int | None, Form(ge=1, le=2**62)] = None, sha: Annotated[str, Form(max_length=64)] = "",
        deployment_id: Annotated[int | None, Form(ge=1, le=2**62)] = None,
        fast: Annotated[bool, Form()] = False, until: Annotated[str, Form(max_length=64)] = "") -> Response:
    back = safe_next(next)
    if not csrf_ok(request.session, csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")
    if action not in ACTIONS:
        raise HTTPException(404, f"no action \"{action}\"; use one of {', '.join(sorted(ACTIONS))}")
    return run_action(request, user, back, action,
                      lambda: _do(service_of(request), action, user=user, reason=reason.strip(),
                                  release_id=release_id, sha=sha, deployment_id=deployment_id, fast=fast,
                                  until=until.strip()))


def run_action(request: Request, user: Principal, back: str, label: str, do: Callable[[], str]) -> Response:
    """Run a release manager's page action and go back to `back` with its outcome flashed.

    Success goes back with 303; a refusal also goes back (so the page shows it) and says why
    in the X-Action-Refused header.
    """
    try:
        refuse_unless(user, Role.RELEASE_MANAGER)
        request.session["flash"] = {"error": False, "text": do()}
        status = 303
    except HTTPException as exc:
        request.session["flash"] = {"error": True, "text": f"{label} refused: {exc.detail}"}
        status = exc.status_code
    except (Conflict, BadInput, NotFound) as exc:
        request.session["flash"] = {"error": True, "text": f"{label} refused: {exc}"}
        status = 409 if isinstance(exc, Conflict) else 422 if isinstance(exc, BadInput) else 404
    response = RedirectResponse(back, status_code=303)
    if status != 303:
        response.headers["X-Action-Refused"] = str(status)
    return response


def _do(service: DeployService, action: str, *, user: Principal, reason: str, release_id: int | None, sha: str,
        deployment_id: int | None, fast: bool, until: str = "") -> str:
    if not reason:
        raise BadInput("reason: is empty; say why, e.g. \"incident 42\"")
    if action == "lock":
        service.lock(holder=user.name, reason=reason)
        return "pipeline locked: no new release will start"
    if action == "unlock":
        service.unlock(actor=user.name, reason=reason)
        return "pipeline unlocked"
    if action == "freeze":
        try:
            end = parse_until(until, now=utcnow()) if until else None
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        window = service.freeze(actor=user.name, reason=reason, until=end)
        return f"deploys frozen: {window.reason}"
    if action == "unfreeze":
        window = service.unfreeze(actor=user.name, reason=reason)
        return "freeze lifted" + ("" if window.open else f"; still closed: {window.reason}")
    if action in ("abort", "pause", "resume", "promote"):
        done = service.command(CommandKind(action), actor=user.name, reason=reason, deployment_id=deployment_id)
        return f"{action} sent to deployment {done.deployment_id}"
    if action in ("mark-bad", "mark-good"):
        return service.mark_commit(sha, bad=action == "mark-bad", actor=user.name, reason=reason).message
    if release_id is None:
        raise BadInput("release_id: is missing; pick the release to act on")
    if action == "retry":
        return service.retry(release_id, actor=user.name, reason=reason).message
    return service.rollback(release_id, actor=user.name, reason=reason, skip_analysis=fast).message
