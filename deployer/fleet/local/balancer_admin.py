"""The balancer's admin API under /_balancer/: list, drain, enable, add/replace, remove hosts.

Every answer the admin API makes is the balancer's own, so errors carry X-Balancer-Error
like the proxy's. Hosts are addressed by name; an unknown name is a 404 that says so.
"""

from __future__ import annotations

from typing import Any, Protocol

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from deployer.fleet.local.balancer_pool import Pool, Upstream

PREFIX = "/_balancer"
MAX_DRAIN_S = 3600.0


class BalancerOps(Protocol):
    """What the admin API needs from the balancer."""

    pool: Pool

    def put(self, name: str, address: str) -> tuple[Upstream, bool]:
        """Add a host or change its address."""

    def remove(self, name: str) -> Upstream | None:
        """Forget a host."""

    async def enable(self, up: Upstream) -> None:
        """Put a host back in rotation once a health check passes."""

    async def drain(self, up: Upstream, timeout: float) -> tuple[bool, float]:
        """Take a host out of rotation and wait for its in-flight requests."""

    async def check(self, up: Upstream) -> bool:
        """Run one health check of a host."""


def balancer_error(status: int, reason: str) -> Response:
    """A response made by the balancer itself: JSON body plus X-Balancer-Error."""
    # Header values must be latin-1 and one line; the JSON body keeps the full reason.
    header = " ".join(reason.split())[:500].encode("latin-1", "replace").decode("latin-1")
    return JSONResponse({"error": reason}, status_code=status, headers={"X-Balancer-Error": header})


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (405 for an odd method...) also come from the balancer."""
    if isinstance(exc, HTTPException):
        return balancer_error(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}")
    return balancer_error(500, f"balancer failure: {type(exc).__name__}")


def admin_routes(balancer: BalancerOps) -> list[BaseRoute]:
    """Routes of the admin API bound to one balancer."""

    def unknown(name: str) -> Response:
        """404 naming the unknown host and the known ones."""
        return balancer_error(
            404, f"unknown host {name!r}; known: {', '.join(u.name for u in balancer.pool.all()) or 'none'}"
        )

    def lookup(request: Request) -> Upstream | Response:
        """The host named in the path, or the 404 to return."""
        name = request.path_params["name"]
        up = balancer.pool.get(name)
        return up if up is not None else unknown(name)

    async def healthz(request: Request) -> Response:
        """GET /_balancer/healthz: the balancer itself is up."""
        return JSONResponse({"ok": True, "in_rotation": [u.name for u in balancer.pool.in_rotation()]})

    async def list_hosts(request: Request) -> Response:
        """GET /_balancer/hosts: every host and its counters."""
        return JSONResponse({"hosts": [u.to_json() for u in balancer.pool.all()]})

    async def get_host(request: Request) -> Response:
        """GET /_balancer/hosts/{name}."""
        up = lookup(request)
        return up if isinstance(up, Response) else JSONResponse(up.to_json())

    async def drain(request: Request) -> Response:
        """POST /_balancer/hosts/{name}/drain?timeout=S: out of rotation, wait for in-flight."""
        up = lookup(request)
        if isinstance(up, Response):
            return up
        raw = request.query_params.get("timeout", "10")
        try:
            timeout = float(raw)
        except ValueError:
            timeout = -1.0
        if not 0 <= timeout <= MAX_DRAIN_S:  # NaN fails this too
            return balancer_error(400, f"timeout={raw!r} is not a number of seconds in [0, {MAX_DRAIN_S:g}]")
        drained, waited = await balancer.drain(up, timeout)
        body: dict[str, Any] = {"drained": drained, "waited_s": round(waited, 4), **up.to_json()}
        return JSONResponse(body)

    async def enable(request: Request) -> Response:
        """POST /_balancer/hosts/{name}/enable: back in rotation once healthy."""
        up = lookup(request)
        if isinstance(up, Response):
            return up
        await balancer.enable(up)
        return JSONResponse(up.to_json())

    async def put_host(request: Request) -> Response:
        """PUT /_balancer/hosts/{name} {"address": URL}: add a host or re-address it."""
        name = request.path_params["name"]
        try:
            data = await request.json()
        except ValueError:
            data = None
        address = data.get("address") if isinstance(data, dict) else None
        if not isinstance(address, str) or not address.startswith(("http://", "https://")):
            return balancer_error(400, 'body must be JSON {"address": "http://HOST:PORT"}')
        up, changed = balancer.put(name, address)
        if changed:
            await balancer.check(up)
        return JSONResponse({"changed": changed, **up.to_json()})

    async def delete_host(request: Request) -> Response:
        """DELETE /_balancer/hosts/{name}: forget a host."""
        name = request.path_params["name"]
        up = balancer.remove(name)
        return unknown(name) if up is None else JSONResponse({"removed": True, **up.to_json()})

    async def not_found(request: Request) -> Response:
        """Anything else under /_balancer/ is an error, never proxied."""
        return balancer_error(404, f"no admin endpoint {request.method} {request.url.path}")

    return [
        Route(f"{PREFIX}/healthz", healthz, methods=["GET"]),
        Route(f"{PREFIX}/hosts", list_hosts, methods=["GET"]),
        Route(f"{PREFIX}/hosts/{{name}}", get_host, methods=["GET"]),
        Route(f"{PREFIX}/hosts/{{name}}", put_host, methods=["PUT"]),
        Route(f"{PREFIX}/hosts/{{name}}", delete_host, methods=["DELETE"]),
        Route(f"{PREFIX}/hosts/{{name}}/drain", drain, methods=["POST"]),
        Route(f"{PREFIX}/hosts/{{name}}/enable", enable, methods=["POST"]),
        # Anything else under the prefix is a mistake, never something to proxy to an app.
        Route(
            f"{PREFIX}/{{rest:path}}", not_found, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        ),
        Route(PREFIX, not_found, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
    ]
