"""Ask an instance over HTTP whether it is healthy and which version it runs.

Every backend's app answers `/healthz` and `/version` on its own address, so this is
shared: probes, and the consecutive checks a replacement waits for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from deployer.exceptions import HostFailed
from deployer.fleet.base import Instance

# Before the first answer poll fast: startup time is what a restart costs.
START_POLL_S = 0.02


@dataclass(frozen=True)
class HealthPolicy:
    """How a started instance proves itself: `checks` good answers in a row, `interval` apart."""

    path: str = "/healthz"
    checks: int = 3
    interval_s: float = 0.2
    start_timeout_s: float = 30.0


class HttpHealth:
    """Health and version questions to instances, over one pooled HTTP client."""

    def __init__(self, policy: HealthPolicy) -> None:
        self.policy = policy
        # trust_env=False: a proxy from the environment must never sit between us and a host.
        self._http = httpx.Client(timeout=httpx.Timeout(2.0, connect=0.5), trust_env=False)

    def ask(self, address: str) -> tuple[bool, str | None, str]:
        """(healthy, version, detail) as the instance at `address` reports them."""
        path = self.policy.path
        try:
            health = self._http.get(address + path)
        except httpx.HTTPError as exc:
            return False, None, f"unreachable: {type(exc).__name__}"
        healthy = health.status_code == 200
        detail = "" if healthy else f"{path} returned {health.status_code}"
        try:
            resp = self._http.get(address + "/version")
            version = resp.json().get("version") if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            return healthy, None, f"{detail} /version failed: {type(exc).__name__}".strip()
        return healthy, version if isinstance(version, str) else None, detail

    def wait_healthy(self, instance: Instance, exited: Callable[[Instance], str | None]) -> float:
        """Return when the first healthy answer came, once `checks` in a row passed on the right version.

        Raises HostFailed when the instance dies, reports another version, or is not healthy
        within the start timeout.
        """
        policy = self.policy
        deadline = time.monotonic() + policy.start_timeout_s
        first_ok: float | None = None
        in_a_row = wrong_version = 0
        last = "no answer yet"
        name, version = instance.host.name, instance.version
        while True:
            healthy, seen, detail = self.ask(instance.address)
            if healthy and seen == version:
                first_ok = first_ok or time.monotonic()
                in_a_row += 1
                if in_a_row >= policy.checks:
                    return first_ok
            else:
                in_a_row = 0
                last = detail or f"/version says {seen!r}"
                if healthy and seen is not None:
                    wrong_version += 1
                    if wrong_version >= policy.checks:
                        raise HostFailed(name, version, f"host reports version {seen!r}")
            gone = exited(instance)
            if gone is not None:
                raise HostFailed(name, version, gone)
            pause = policy.interval_s if first_ok is not None else START_POLL_S
            if time.monotonic() + pause > deadline:
                raise HostFailed(name, version, f"not healthy after {policy.start_timeout_s:g}s: {last}")
            time.sleep(pause)

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()
