"""The Fleet protocol: what the controller needs from any kind of host.

Nothing third-party here. Each backend (local processes, Docker engines) lives in
its own module and is chosen by `deployer.fleet.build_fleet(settings)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Host:
    """One place the application runs; `address` is its base URL."""

    name: str
    address: str


@dataclass(frozen=True)
class Artifact:
    """A built release: `version` is the commit sha, `location` where the backend finds it.

    For the local fleet `location` is a release directory; for Docker an image tag.
    """

    version: str
    location: str


@dataclass(frozen=True)
class HostStatus:
    """What a probe of a host observed just now."""

    host: Host
    running: bool
    healthy: bool
    version: str | None
    detail: str = ""


@dataclass
class DeployResult:
    """Timings of one host replacement, for the rollout benchmark and the audit log."""

    host: Host
    version: str
    changed: bool
    drain_s: float = 0.0
    stop_s: float = 0.0
    start_s: float = 0.0
    health_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        return self.drain_s + self.stop_s + self.start_s + self.health_s


@runtime_checkable
class Fleet(Protocol):
    """A set of hosts that can be probed and told to run a version.

    `deploy` must be idempotent: when the host already runs `artifact.version` and is
    healthy it returns at once with `changed=False`. That is what makes the controller's
    effects safe to replay after a crash.
    """

    def hosts(self) -> list[Host]:
        """All hosts of the fleet, in a stable order (waves are cut from this order)."""
        ...

    def probe(self, host: Host) -> HostStatus:
        """Ask the host what it runs and whether it is healthy; never raises."""
        ...

    def deploy(self, host: Host, artifact: Artifact) -> DeployResult:
        """Drain, stop, start `artifact`, wait until healthy, put back in rotation.

        Raises `deployer.exceptions.HostFailed` when the host does not become healthy.
        """
        ...

    def restart(self, host: Host, artifact: Artifact) -> DeployResult:
        """Like `deploy` but restarts even when the version is unchanged (fresh baseline)."""
        ...

    def stop(self, host: Host) -> None:
        """Take the host out of rotation and stop it."""
        ...
