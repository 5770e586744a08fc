"""What the controller needs from hosts and traffic, as small protocols.

Nothing third-party here. A backend is a `HostRuntime` (start / stop / probe a version on
a host slot: local processes, Docker containers) and a `Router` (who gets the traffic:
the built-in balancer, HAProxy). `deployer.fleet.replace` turns the pair into a `Fleet`
with the one host replacement every backend shares; `deployer.fleet.build_fleet(settings)`
wires them.
"""

from __future__ import annotations

from collections.abc import Callable
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
    """What a probe of a host observed just now; `target` is the pid or container to profile."""

    host: Host
    running: bool
    healthy: bool
    version: str | None
    detail: str = ""
    target: str | None = None


@dataclass(frozen=True)
class Instance:
    """One started copy of a version on a host slot: where it answers, and what it is."""

    host: Host
    version: str
    address: str
    target: str


@dataclass(frozen=True)
class HostTraffic:
    """A router's counts for one host: requests in flight now, and served so far."""

    in_flight: int
    served: int
    in_rotation: bool
    weight: int | None = None


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
        """The whole replacement, phase by phase."""
        return self.drain_s + self.stop_s + self.start_s + self.health_s


@runtime_checkable
class HostRuntime(Protocol):
    """Starts, stops and probes versions on host slots (processes, containers, ...).

    `overlap` says whether a slot can run a second instance beside the serving one (on
    another port), which lets a replacement start the new version before stopping the old.
    """

    overlap: bool

    def hosts(self) -> list[Host]:
        """All host slots, in a stable order (waves are cut from this order)."""
        ...

    def settled(self, host: Host) -> bool:
        """True when the slot's recorded instance passed its health checks (not half-started)."""
        ...

    def check(self, host: Host, artifact: Artifact) -> None:
        """Raise HostFailed before anything is stopped when `artifact` cannot run here."""
        ...

    def start(self, host: Host, artifact: Artifact) -> Instance:
        """Start `artifact` on the slot (beside the serving instance when `overlap`)."""
        ...

    def exited(self, instance: Instance) -> str | None:
        """Why a started instance is gone (exit status, OOM kill), or None while it runs."""
        ...

    def start_failed(self, instance: Instance, reason: str, may_retry: bool) -> str | None:
        """Clean up a failed start; None to try again (e.g. a port race), else the reason to report."""
        ...

    def promote(self, instance: Instance) -> None:
        """Record `instance` as the slot's serving, healthy instance (stops nothing)."""
        ...

    def stop(self, host: Host, *, instance: Instance | None = None, status: str = "stopped") -> None:
        """Stop an instance (default: the slot's serving one) and record `status` for the slot.

        With status "replaced" it may return once the instance no longer serves and finish
        its exit in the background, overlapping with the successor's start.
        """
        ...

    def probe(self, host: Host) -> HostStatus:
        """Ask the host what it runs and whether it is healthy; never raises."""
        ...

    def stop_all(self) -> None:
        """Stop every instance this runtime knows, even outside the current host count."""
        ...

    def unknown(self) -> list[str]:
        """Running instances that carry the platform's mark but fill no slot: reported, never removed here."""
        ...

    def close(self) -> None:
        """Release connections (instances keep running)."""
        ...


@runtime_checkable
class HealthWait(Protocol):
    """How a replacement waits for a started instance to prove healthy (HTTP checks, or a simulation)."""

    def wait_healthy(self, instance: Instance, exited: Callable[[Instance], str | None]) -> float:
        """Return when the first good answer came, once enough passed; raise HostFailed otherwise."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class Router(Protocol):
    """Decides which host gets each request; drains and enables hosts during replacements."""

    @property
    def url(self) -> str | None:
        """Where users send traffic, or None when this router does not know it."""
        ...

    def start(self) -> str | None:
        """Start (or adopt, or just connect to) the router; returns its traffic URL."""
        ...

    def drain(self, host: Host, notes: list[str]) -> None:
        """Take `host` out of rotation and wait (bounded) until its in-flight requests are done."""
        ...

    def enable(self, host: Host, address: str, notes: list[str]) -> None:
        """Send `host`'s share of traffic to `address` and put it back in rotation."""
        ...

    def set_weight(self, host: Host, weight: int) -> None:
        """Set `host`'s relative share of traffic (0-256, HAProxy's scale; 0 takes no new requests)."""
        ...

    def traffic(self) -> dict[str, HostTraffic]:
        """Per-host in-flight and served counts, by host name."""
        ...

    def stop(self) -> None:
        """Stop the router if this platform started it; a router run by others is left alone."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class Builder(Protocol):
    """Turns a commit into an artifact a runtime can start."""

    def build(self, sha: str) -> Artifact:
        """Build (or reuse) the artifact of `sha`; safe to call twice or concurrently."""
        ...

    def prune(self, keep: list[str] | set[str]) -> list[str]:
        """Delete artifacts whose sha is not in `keep`; returns what was removed."""
        ...


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
