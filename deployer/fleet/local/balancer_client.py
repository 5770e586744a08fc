"""A small synchronous client for the balancer's admin API (/_balancer/...)."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from deployer.exceptions import DeployerError

log = logging.getLogger(__name__)


class BalancerError(DeployerError):
    """The balancer answered an admin call with an error, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class BalancerClient:
    """Drive one balancer: list hosts, drain, enable, add or re-address hosts."""

    def __init__(self, admin_url: str, *, timeout: float = 5.0) -> None:
        self.admin_url = admin_url.rstrip("/")
        self._timeout = timeout
        # trust_env=False: a proxy from the environment must never sit between us and 127.0.0.1.
        self._http = httpx.Client(base_url=self.admin_url, timeout=timeout, trust_env=False)

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def __enter__(self) -> BalancerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> dict[str, Any]:
        try:
            resp = self._http.request(method, f"/_balancer{path}", timeout=timeout or self._timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise BalancerError(
                f"balancer at {self.admin_url} unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if resp.status_code >= 400:
            reason = resp.headers.get("x-balancer-error") or resp.text[:200]
            raise BalancerError(f"{method} {path}: {resp.status_code} {reason}", status=resp.status_code)
        data = resp.json()
        return data if isinstance(data, dict) else {"data": data}

    def ping(self) -> bool:
        """True when the balancer answers its own health endpoint."""
        try:
            return self._http.get("/_balancer/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def hosts(self) -> dict[str, dict[str, Any]]:
        """Every host by name: address, enabled, healthy, in_rotation, in_flight, served, errors."""
        return {h["name"]: h for h in self._call("GET", "/hosts")["hosts"]}

    def host(self, name: str) -> dict[str, Any]:
        """One host's state; BalancerError(status=404) when unknown."""
        return self._call("GET", f"/hosts/{name}")

    def drain(self, name: str, timeout: float) -> dict[str, Any]:
        """Stop routing new requests to `name`, wait for its in-flight ones (bounded by timeout)."""
        return self._call(
            "POST", f"/hosts/{name}/drain", params={"timeout": timeout}, timeout=timeout + self._timeout
        )

    def enable(self, name: str) -> dict[str, Any]:
        """Put `name` back in rotation once its health check passes (checked at once)."""
        return self._call("POST", f"/hosts/{name}/enable")

    def set_address(self, name: str, address: str) -> dict[str, Any]:
        """Add host `name` or change its address (a no-op when unchanged)."""
        return self._call("PUT", f"/hosts/{name}", json={"address": address})

    def remove(self, name: str) -> dict[str, Any]:
        """Forget host `name`."""
        return self._call("DELETE", f"/hosts/{name}")
