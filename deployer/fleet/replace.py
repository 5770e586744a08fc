"""The one host replacement every backend uses, and the Fleet built from a runtime and a router.

"Drain before stop": a runtime that can run only one instance per slot (local processes
on a fixed port) goes drain -> stop -> start -> consecutive health checks on the right
version -> enable. A runtime that can run two (containers on free ports) starts the new
instance first, so a wave never lowers capacity: start-new -> healthy -> drain the slot ->
switch it to the new address -> enable -> stop-old. The router only sees the slot out of
rotation while the old instance's in-flight requests finish.
"""

from __future__ import annotations

import logging
import threading
import time

from deployer.exceptions import HostFailed, NotFound
from deployer.fleet.base import Artifact, DeployResult, HealthWait, Host, HostRuntime, HostStatus, Instance, Router

log = logging.getLogger(__name__)
START_ATTEMPTS = 3


class RoutedFleet:
    """A Fleet: host slots from a runtime, traffic through a router (or none)."""

    def __init__(self, *, runtime: HostRuntime, router: Router | None, health: HealthWait) -> None:
        self.runtime = runtime
        self.router = router
        self.health = health
        self._locks = {h.name: threading.Lock() for h in runtime.hosts()}

    # -- the Fleet protocol ------------------------------------------------------------

    def hosts(self) -> list[Host]:
        """All hosts in a stable order (waves are cut from this order)."""
        return self.runtime.hosts()

    @property
    def overlap(self) -> bool:
        """Whether a replacement starts the new instance beside the serving one (it uses surge, not capacity)."""
        return bool(self.runtime.overlap)

    def probe(self, host: Host) -> HostStatus:
        """Ask the host what it runs and whether it is healthy; never raises."""
        return self.runtime.probe(host)

    def deploy(self, host: Host, artifact: Artifact) -> DeployResult:
        """Make `host` run `artifact`; a no-op (changed=False) when it already does, healthy."""
        with self._lock(host):
            return replace_host(self.runtime, self.router, self.health, host, artifact, force=False)

    def restart(self, host: Host, artifact: Artifact) -> DeployResult:
        """Like deploy, but restart even when the version is unchanged (fresh baseline)."""
        with self._lock(host):
            return replace_host(self.runtime, self.router, self.health, host, artifact, force=True)

    def stop(self, host: Host) -> None:
        """Take the host out of rotation and stop it."""
        with self._lock(host):
            if self.router is not None:
                self.router.drain(host, [])
            self.runtime.stop(host)

    # -- whole fleet -------------------------------------------------------------------

    def start_router(self) -> str | None:
        """Start (or adopt, or connect to) the router; returns where users send traffic."""
        return self.router.start() if self.router is not None else None

    @property
    def traffic_url(self) -> str | None:
        """Where users send traffic, or None without a router."""
        return self.router.url if self.router is not None else None

    def stop_all(self) -> None:
        """Stop every host the runtime knows, and the router if the platform started it."""
        self.runtime.stop_all()
        if self.router is not None:
            self.router.stop()

    def close(self) -> None:
        """Release connections (hosts and router keep running)."""
        self.health.close()
        self.runtime.close()
        if self.router is not None:
            self.router.close()

    def _lock(self, host: Host) -> threading.Lock:
        lock = self._locks.get(host.name)
        if lock is None:
            raise NotFound("host", host.name)
        return lock


def replace_host(
    runtime: HostRuntime, router: Router | None, health: HealthWait, host: Host, artifact: Artifact, *, force: bool
) -> DeployResult:
    """Make `host` run `artifact` without failing a request; idempotent unless `force`."""
    # A slot left half-started by a crashed controller is replaced rather than trusted.
    if not force and runtime.settled(host):
        status = runtime.probe(host)
        if status.running and status.healthy and status.version == artifact.version:
            result = DeployResult(host, artifact.version, changed=False)
            # After a crash mid-deploy the host may run the right version but still be
            # drained; replaying the effect must put it back.
            if router is not None:
                router.enable(host, status.host.address, result.notes)  # where it runs now
            return result
    runtime.check(host, artifact)  # a bad artifact must not cost a host
    if runtime.overlap:
        result = _start_then_switch(runtime, router, health, host, artifact)
    else:
        result = _drain_then_restart(runtime, router, health, host, artifact)
    log.info("%s now runs %s in %.2fs (drain %.2f, stop %.2f, start %.2f, health %.2f)", host.name,
             artifact.version[:12], result.total_s, result.drain_s, result.stop_s, result.start_s, result.health_s)
    return result


def _drain_then_restart(
    runtime: HostRuntime, router: Router | None, health: HealthWait, host: Host, artifact: Artifact
) -> DeployResult:
    result = DeployResult(host, artifact.version, changed=True)
    began = time.monotonic()
    if router is not None:
        router.drain(host, result.notes)
    drained = time.monotonic()
    runtime.stop(host, status="replaced")
    stopped = time.monotonic()
    instance, answered = _start_healthy(runtime, health, host, artifact)
    runtime.promote(instance)
    if router is not None:
        router.enable(host, instance.address, result.notes)
    result.drain_s, result.stop_s = drained - began, stopped - drained
    result.start_s, result.health_s = answered - stopped, time.monotonic() - answered
    return result


def _start_then_switch(
    runtime: HostRuntime, router: Router | None, health: HealthWait, host: Host, artifact: Artifact
) -> DeployResult:
    result = DeployResult(host, artifact.version, changed=True)
    began = time.monotonic()
    old = runtime.probe(host)
    instance, answered = _start_healthy(runtime, health, host, artifact)
    healthy = time.monotonic()
    if router is not None:
        router.drain(host, result.notes)
    drained = time.monotonic()
    runtime.promote(instance)  # the slot's record now names the new instance; the old one is retired
    if router is not None:
        router.enable(host, instance.address, result.notes)
    switched = time.monotonic()
    if old.target is not None and old.target != instance.target:
        runtime.stop(host, instance=Instance(host, old.version or "", host.address, old.target), status="replaced")
    result.start_s, result.health_s = answered - began, healthy - answered
    result.drain_s, result.stop_s = drained - healthy + (switched - drained), time.monotonic() - switched
    return result


def _start_healthy(runtime: HostRuntime, health: HealthWait, host: Host, artifact: Artifact) -> tuple[Instance, float]:
    """Start the artifact and wait for its consecutive health checks; clean up after a failure."""
    for attempt in range(1, START_ATTEMPTS + 1):
        instance = runtime.start(host, artifact)
        try:
            return instance, health.wait_healthy(instance, runtime.exited)
        except HostFailed as exc:
            # Nothing half-started is left behind; the runtime says whether a retry can help.
            reason = runtime.start_failed(instance, exc.reason, attempt < START_ATTEMPTS)
            if reason is None:
                log.warning("%s: start attempt %d failed (%s); retrying", host.name, attempt, exc.reason)
                continue
            raise HostFailed(host.name, artifact.version, reason) from None
    raise AssertionError("unreachable")
