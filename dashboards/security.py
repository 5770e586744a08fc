"""Who is asking, and may they: bearer tokens, session cookies, CSRF, roles.

* `/api/v1/*` is closed: `ApiAuthMiddleware` answers 401 before the route runs, so an
  anonymous request never gets its body parsed or the pipeline's state read.
* A browser's session cookie is signed (starlette's SessionMiddleware, itsdangerous),
  HttpOnly and SameSite=strict; what it changes also needs the session's CSRF token
  (a form field, or the X-CSRF-Token header for the API).
* Roles are checked per route with `require(Role...)`: 403 with the reason.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from deployer.service import DeployService, Principal, Role

API_PREFIX = "/api/v1"
# Authenticated by the provider's signature or token in the route itself, never by a session or API token.
SIGNED_PREFIXES = ("/api/v1/webhooks/",)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "x-csrf-token"


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
    return None


def principal_from(service: DeployService, *, bearer: str | None, session: dict[str, Any]) -> Principal | None:
    """A token wins over a cookie; a cookie counts only while its user exists, is enabled and current."""
    if bearer is not None:
        return service.accounts.token_principal(bearer)
    uid, epoch = session.get("uid"), session.get("epoch")
    if isinstance(uid, int) and isinstance(epoch, int):
        return service.accounts.session_user(user_id=uid, epoch=epoch)
    return None


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, created on first use."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 20:
        token = secrets.token_urlsafe(24)
        session["csrf"] = token
    return token


def csrf_ok(session: dict[str, Any], sent: str | None) -> bool:
    """True when `sent` is this session's CSRF token (compared in constant time)."""
    expected = session.get("csrf")
    return isinstance(expected, str) and bool(sent) and hmac.compare_digest(expected, sent or "")


class ApiAuthMiddleware:
    """401 for any /api/v1 request without valid credentials, 403 for a cookie write without CSRF."""

    def __init__(self, app: ASGIApp, *, service: Callable[[], DeployService]) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(API_PREFIX) or path.startswith(SIGNED_PREFIXES):
            await self.app(scope, receive, send)
            return
        bearer = _bearer(scope["headers"])
        session = scope.get("session") or {}
        principal = await run_in_threadpool(principal_from, self.service(), bearer=bearer, session=session)
        if principal is None:
            reason = ("the API token is unknown or revoked" if bearer is not None
                      else "sign in, or send an API token as 'Authorization: Bearer <token>'")
            await _json(send, 401, {"detail": f"not authenticated: {reason}"},
                        extra=[(b"www-authenticate", b'Bearer realm="deployer"')])
            return
        if bearer is None and scope["method"] in UNSAFE:
            sent = next((v.decode("latin-1") for k, v in scope["headers"] if k == CSRF_HEADER.encode()), None)
            if not csrf_ok(session, sent):
                await _json(send, 403, {"detail": "missing or wrong CSRF token: send the X-CSRF-Token header "
                                                  "shown on the dashboard's pages (or use an API token)"})
                return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


async def _json(send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *(extra or [])]})
    await send({"type": "http.response.body", "body": payload})


def api_principal(request: Request) -> Principal:
    """The caller the middleware let in."""
    principal = getattr(request.state, "principal", None)
    if principal is None:  # only when a route is mounted outside /api/v1 by mistake
        raise HTTPException(401, "not authenticated")
    return principal


ROLE_WORDS = {Role.VIEWER: "read", Role.RELEASE_MANAGER: "steer releases", Role.ADMIN: "manage users and tokens"}


def refuse_unless(principal: Principal, needed: Role) -> None:
    """403 naming what the caller's role may and may not do."""
    if not principal.role.allows(needed):
        raise HTTPException(403, f"{principal.name} is a {principal.role.value}, who may not "
                                 f"{ROLE_WORDS[needed]}; this needs the {needed.value} role")


def require(needed: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the API caller, if their role allows `needed`."""
    async def dependency(request: Request) -> Principal:
        principal = api_principal(request)
        refuse_unless(principal, needed)
        return principal
    return dependency


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
ReleaseManager = Annotated[Principal, Depends(require(Role.RELEASE_MANAGER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
