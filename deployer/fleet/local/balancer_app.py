"""The balancer itself: upstream pool, active health checks, proxy with safe retries.

Round-robin over the hosts in rotation (enabled by the admin API AND passing the active
health check), so canary and baseline hosts get equal shares. A request whose connection
to a host failed was never sent, so it is retried on another host; once it may have reached
the app only GET/HEAD are retried. Every response made by the balancer itself, not by an
app, carries `X-Balancer-Error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deployer.fleet.local.balancer_admin import admin_routes, balancer_error, http_exception
from deployer.fleet.local.balancer_http import forward_headers, relay_response, upstream_path
from deployer.fleet.local.balancer_pool import Pool, Upstream

log = logging.getLogger(__name__)

# The request never left the balancer: safe to send it elsewhere whatever its method.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
IDEMPOTENT = frozenset({"GET", "HEAD"})
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass(frozen=True)
class BalancerConfig:
    """Tunables of one balancer process."""

    health_interval: float = 0.5
    health_path: str = "/healthz"
    health_timeout: float = 2.0
    connect_timeout: float = 1.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    # Consecutive failed checks (other than "connection refused") before a host leaves rotation.
    fall: int = 2
    # How long a request may wait for some host to enter rotation before getting a 503.
    wait_for_host_s: float = 0.0
    # Must stay below the apps' keep-alive timeout (uvicorn: 5 s) so we never reuse a
    # connection the app is closing, which would fail a request that cannot be retried.
    keepalive_expiry: float = 2.0


class Balancer:
    """Upstream pool, health checker and proxy; `app()` wires them into a Starlette app."""

    def __init__(
        self,
        upstreams: dict[str, str],
        config: BalancerConfig | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config or BalancerConfig()
        self.pool = Pool()
        self._transport = transport  # tests inject one; None means real sockets
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._health_task: asyncio.Task[None] | None = None
        self._initial = dict(upstreams)

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Register the initial upstreams, check them once, start the health loop."""
        self._health_client = self._new_client(health=True)
        for name, address in self._initial.items():
            self.put(name, address)
        await self.check_all()
        self._health_task = asyncio.create_task(self._health_loop())

    async def stop(self) -> None:
        """Stop the health loop and close every connection."""
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        for client in self._clients.values():
            await client.aclose()
        await self._health_client.aclose()

    def app(self) -> Starlette:
        """The ASGI app: admin routes first, everything else proxied."""

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            """Start checks before serving; close connections after the last request."""
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        routes = [*admin_routes(self), Route("/{path:path}", self.proxy, methods=METHODS)]
        handlers = {HTTPException: http_exception, Exception: http_exception}
        return Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)

    # -- upstream management (used by the admin API) ---------------------------------

    def _new_client(self, health: bool = False) -> httpx.AsyncClient:
        timeout = httpx.Timeout(
            self.config.health_timeout if health else self.config.read_timeout,
            connect=self.config.connect_timeout,
        )
        # Health checks reuse their connection too: a new one every interval per host would
        # churn through ephemeral ports, one of which may be a restarting host's own port.
        limits = httpx.Limits(
            max_connections=None,
            max_keepalive_connections=256 if health else 32,
            keepalive_expiry=self.config.keepalive_expiry,
        )
        return httpx.AsyncClient(timeout=timeout, limits=limits, transport=self._transport, trust_env=False)

    def put(self, name: str, address: str) -> tuple[Upstream, bool]:
        """Add a host or change its address; a new address is out of rotation until checked."""
        up, changed = self.pool.put(name, address)
        if changed:
            self._renew_client(up)
            log.info("upstream %s -> %s", name, up.address)
        return up, changed

    def remove(self, name: str) -> Upstream | None:
        """Forget a host; its pooled connections are closed once its requests are done."""
        up = self.pool.remove(name)
        if up is not None:
            old = self._clients.pop(name, None)
            if old is not None:
                asyncio.get_running_loop().create_task(self._close_when_idle(up, old))
        return up

    def _renew_client(self, up: Upstream) -> None:
        """Give a host a fresh connection pool; the old one closes when its requests are done."""
        old = self._clients.get(up.name)
        self._clients[up.name] = self._new_client()
        if old is not None:
            asyncio.get_running_loop().create_task(self._close_when_idle(up, old))

    async def _close_when_idle(self, up: Upstream, client: httpx.AsyncClient) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(up.idle.wait(), self.config.read_timeout)
        await client.aclose()

    async def enable(self, up: Upstream) -> None:
        """Put a host back in rotation, but only after a health check passes."""
        if not up.enabled:
            up.enabled = True
            up.healthy = False
            up.failed_checks = 0
            up.generation += 1
            log.info("upstream %s enabled", up.name)
        if not up.healthy:
            await self.check(up)

    async def drain(self, up: Upstream, timeout: float) -> tuple[bool, float]:
        """Take a host out of rotation and wait for its in-flight requests; (drained, seconds)."""
        up.enabled = False
        up.generation += 1
        began = time.monotonic()
        try:
            await asyncio.wait_for(up.idle.wait(), timeout)
            drained = True
        except TimeoutError:
            drained = False
        waited = time.monotonic() - began
        if drained:
            # Drop idle keep-alive connections: the host is about to be stopped.
            self._renew_client(up)
        log.info("upstream %s drained=%s in %.3fs, in_flight=%d", up.name, drained, waited, up.in_flight)
        return drained, waited

    # -- health ----------------------------------------------------------------------

    async def check(self, up: Upstream) -> bool:
        """One active health check of a host; updates rotation unless the host changed meanwhile."""
        generation, address = up.generation, up.address
        refused = False
        try:
            resp = await self._health_client.get(address + self.config.health_path)
            ok = resp.status_code == 200
            error = "" if ok else f"health check returned {resp.status_code}"
        except httpx.ConnectError as exc:
            ok, refused, error = False, True, f"health check: cannot connect: {exc}"
        except httpx.HTTPError as exc:
            ok, error = False, f"health check failed: {type(exc).__name__}: {exc}"
        if up.generation != generation or self.pool.get(up.name) is not up:
            return ok  # stale: an admin action changed this host while we were checking
        was = up.in_rotation
        if ok:
            up.failed_checks = 0
            up.last_error = ""
            self.pool.set_healthy(up, True)
        else:
            up.failed_checks += 1
            up.last_error = error
            if refused or up.failed_checks >= self.config.fall:
                self.pool.set_healthy(up, False)
        if was != up.in_rotation:
            log.info("upstream %s in_rotation=%s %s", up.name, up.in_rotation, error)
        return ok

    async def check_all(self) -> None:
        """Check every host once, concurrently."""
        await asyncio.gather(*(self.check(up) for up in self.pool.all()))

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_interval)
            try:
                await self.check_all()
            except Exception:  # the loop must outlive any single bad check
                log.exception("health check round failed")

    # -- proxy -----------------------------------------------------------------------

    async def _choose(self, tried: set[str]) -> Upstream | None:
        up = self.pool.choose(tried)
        if up is not None or tried or self.config.wait_for_host_s <= 0:
            return up
        deadline = time.monotonic() + self.config.wait_for_host_s
        while up is None and (remaining := deadline - time.monotonic()) > 0:
            self.pool.rotation_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.pool.rotation_changed.wait(), remaining)
            up = self.pool.choose(tried)
        return up

    async def proxy(self, request: Request) -> Response:
        """Forward one request to a host in rotation, retrying where that is safe."""
        body = await request.body()
        method = request.method
        headers = forward_headers(request)
        path = upstream_path(request)
        send_body = body if body or request.headers.get("content-length") else None
        tried: set[str] = set()
        reasons: list[str] = []
        for _ in range(self.config.max_attempts):
            up = await self._choose(tried)
            if up is None:
                break
            tried.add(up.name)
            generation, client = up.generation, self._clients[up.name]
            up.begin()
            try:
                upstream_req = httpx.Request(method, up.address + path, headers=headers, content=send_body)
                return await self._send(client, up, upstream_req)
            except NOT_SENT as exc:
                up.errors += 1
                up.last_error = f"{type(exc).__name__}: {exc}"
                reasons.append(f"{up.name}: {up.last_error}")
                if up.generation == generation:
                    # Do not wait for the next active check to stop sending requests here.
                    self.pool.set_healthy(up, False)
                    log.warning("upstream %s out of rotation: %s", up.name, up.last_error)
            except httpx.HTTPError as exc:
                up.errors += 1
                up.last_error = f"{type(exc).__name__}: {exc}"
                reasons.append(f"{up.name}: {up.last_error}")
                if method not in IDEMPOTENT:
                    # The app may have acted on it: sending it again could do it twice.
                    return balancer_error(
                        502, f"upstream {up.name} failed after the request was sent: {up.last_error}"
                    )
            except Exception as exc:  # a bug here must still answer as the balancer, not as the app
                log.exception("proxying to %s failed", up.name)
                return balancer_error(502, f"balancer failure: {type(exc).__name__}: {exc}")
            finally:
                up.end()
        reason = "; ".join(reasons) if reasons else "no host in rotation"
        return balancer_error(503, reason)

    async def _send(self, client: httpx.AsyncClient, up: Upstream, req: httpx.Request) -> Response:
        resp = await client.send(req, stream=True)
        try:
            # Raw bytes: the body goes back exactly as the app encoded it (gzip stays gzip).
            content = b"".join([chunk async for chunk in resp.aiter_raw()])
        finally:
            await resp.aclose()
        up.served += 1
        return relay_response(resp, content, req.method, up.name)
