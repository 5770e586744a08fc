"""The embedded fleet: each host is a sample-app process on a 127.0.0.1 port.

Processes run in their own session, so they outlive the controller; what each one is
lives in `state_dir/hosts/<name>/state.json` (pid + kernel start time, version, release
dir), so a controller restarted after a crash picks the fleet up where it was. What a
host *runs* is always asked of the host itself (`/version`), never taken from the file.

A replacement follows "drain before stop": out of the balancer, in-flight requests
finish, SIGTERM (then SIGKILL), start the new release, several consecutive healthy
checks on the right version, back into the balancer.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from deployer.exceptions import DeployerError, HostFailed, NotFound
from deployer.fleet.local import procs
from deployer.fleet.base import Artifact, DeployResult, Host, HostStatus
from deployer.fleet.local.router import BalancerProcess
from deployer.fleet.local.hosts import HostProcesses

log = logging.getLogger(__name__)

# How often to look for a process that has not answered yet: fast, the benchmark counts it.
START_POLL_S = 0.02
# uvicorn's message when its port is taken (errno 98, EADDRINUSE).
ADDRESS_IN_USE = "address already in use"
BIND_ATTEMPTS = 3


class LocalFleet:
    """Hosts `host-0..host-{n-1}` on ports base_port+i, optionally behind a balancer process."""

    def __init__(
        self,
        *,
        state_dir: Path,
        host_count: int,
        base_port: int,
        bind: str = "127.0.0.1",
        python: str = sys.executable,
        app_env: dict[str, str] | None = None,
        balancer_port: int | None = None,
        health_path: str = "/healthz",
        healthy_checks: int = 3,
        health_interval_s: float = 0.2,
        start_timeout_s: float = 30.0,
        drain_timeout_s: float = 10.0,
        stop_timeout_s: float = 10.0,
        balancer_health_interval_s: float = 0.5,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.health_path = health_path
        self.healthy_checks = max(1, healthy_checks)
        self.health_interval_s = health_interval_s
        self.start_timeout_s = start_timeout_s
        self._hosts = [Host(f"host-{i}", f"http://{bind}:{base_port + i}") for i in range(host_count)]
        self._ports = {h.name: base_port + i for i, h in enumerate(self._hosts)}
        self._locks = {h.name: threading.Lock() for h in self._hosts}
        self._warn_if_ephemeral(base_port, host_count)
        self.processes = HostProcesses(
            state_dir=self.state_dir,
            bind=bind,
            python=python,
            app_env=dict(app_env or {}),
            stop_timeout_s=stop_timeout_s,
        )
        self._http = httpx.Client(timeout=httpx.Timeout(2.0, connect=0.5), trust_env=False)
        self.balancer: BalancerProcess | None = None
        if balancer_port is not None:
            self.balancer = BalancerProcess(
                state_dir=self.state_dir,
                bind=bind,
                port=balancer_port,
                hosts=self._hosts,
                health_path=health_path,
                health_interval_s=balancer_health_interval_s,
                drain_timeout_s=drain_timeout_s,
            )

    # -- the Fleet protocol ------------------------------------------------------------

    def hosts(self) -> list[Host]:
        """All hosts in a stable order (waves are cut from this order)."""
        return list(self._hosts)

    def probe(self, host: Host) -> HostStatus:
        """Ask the host what it runs and whether it is healthy; never raises."""
        try:
            alive, pid = self.processes.is_alive(host.name)
            healthy, version, detail = self._ask(host)
            answered = not detail.startswith("unreachable")
            if alive:
                detail = f"pid {pid}; {detail}".rstrip("; ")
            elif answered:
                detail = f"answers, but no process of ours is recorded; {detail}".rstrip("; ")
            running = alive or answered
            return HostStatus(host, running=running, healthy=healthy, version=version, detail=detail)
        except Exception as exc:  # the protocol promises probe() never raises
            log.exception("probe of %s failed", host.name)
            return HostStatus(
                host, running=False, healthy=False, version=None, detail=f"probe failed: {exc!r}"
            )

    def deploy(self, host: Host, artifact: Artifact) -> DeployResult:
        """Make `host` run `artifact`; a no-op (changed=False) when it already does, healthy."""
        return self._replace(host, artifact, force=False)

    def restart(self, host: Host, artifact: Artifact) -> DeployResult:
        """Like deploy, but restart even when the version is unchanged (fresh baseline)."""
        return self._replace(host, artifact, force=True)

    def stop(self, host: Host) -> None:
        """Take the host out of rotation and stop it."""
        with self._lock(host):
            if self.balancer is not None:
                self.balancer.drain(host, [])
            self.processes.stop(host.name)

    # -- whole fleet -------------------------------------------------------------------

    def start_balancer(self) -> str:
        """Start the balancer process (or adopt the running one); returns its URL."""
        if self.balancer is None:
            raise DeployerError("this local fleet has no balancer: balancer_port is not set")
        return self.balancer.start()

    def stop_balancer(self) -> None:
        """Stop the balancer process if it runs."""
        if self.balancer is not None:
            self.balancer.stop()

    @property
    def balancer_url(self) -> str | None:
        """Where clients send traffic, or None without a balancer."""
        return self.balancer.url if self.balancer is not None else None

    def stop_all(self) -> None:
        """Stop every host this state_dir knows (even ones outside host_count) and the balancer."""
        names = sorted({h.name for h in self._hosts} | self.processes.known_names())
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            list(pool.map(self.processes.stop, names))
        self.processes.join_reapers()
        self.stop_balancer()

    def close(self) -> None:
        """Release HTTP connections (processes keep running)."""
        self._http.close()
        if self.balancer is not None:
            self.balancer.close()

    # -- one replacement -----------------------------------------------------------------

    def _replace(self, host: Host, artifact: Artifact, *, force: bool) -> DeployResult:
        with self._lock(host):
            # "running" is only recorded after the consecutive healthy checks passed; a host
            # left "starting" by a crashed controller is restarted rather than trusted.
            if not force and self.processes.read_state(host.name).get("status") == "running":
                status = self.probe(host)
                if status.running and status.healthy and status.version == artifact.version:
                    result = DeployResult(host, artifact.version, changed=False)
                    # After a crash mid-deploy the host may run the right version but still
                    # be drained; replaying the effect must put it back.
                    if self.balancer is not None:
                        self.balancer.enable(host, result.notes)
                    return result
            self.processes.check_release(host.name, artifact)  # a bad artifact must not cost a host
            result = DeployResult(host, artifact.version, changed=True)
            began = time.monotonic()
            if self.balancer is not None:
                self.balancer.drain(host, result.notes)
            drained = time.monotonic()
            self.processes.stop(host.name, overlap=True)
            self.processes.free_port(host.name, self._ports[host.name], artifact.version)
            stopped = time.monotonic()
            answered = self._start(host, artifact)
            if self.balancer is not None:
                self.balancer.enable(host, result.notes)
            result.drain_s = drained - began
            result.stop_s = stopped - drained
            result.start_s = answered - stopped
            result.health_s = time.monotonic() - answered
            log.info(
                "%s now runs %s in %.2fs (drain %.2f, stop %.2f, start %.2f, health %.2f)",
                host.name,
                artifact.version[:12],
                result.total_s,
                result.drain_s,
                result.stop_s,
                result.start_s,
                result.health_s,
            )
            return result

    def _start(self, host: Host, artifact: Artifact) -> float:
        """Spawn the release, wait for its healthy checks; returns when it first answered."""
        log_path = self.processes.log_path(host.name)
        for attempt in range(1, BIND_ATTEMPTS + 1):
            proc, offset = self.processes.spawn(host.name, self._ports[host.name], artifact)
            try:
                answered = self._wait_healthy(host, artifact, proc)
            except HostFailed as exc:
                tail = procs.log_tail(log_path, offset)
                # Nothing half-started is left behind; the log keeps what it said.
                self.processes.stop(host.name, status="failed")
                if ADDRESS_IN_USE in tail and attempt < BIND_ATTEMPTS:
                    # Between our port check and the app's bind, an outgoing connection may
                    # have picked this port as its local port; such connections are short.
                    log.warning(
                        "%s: port %d was taken while starting; retrying", host.name, self._ports[host.name]
                    )
                    self.processes.free_port(host.name, self._ports[host.name], artifact.version)
                    continue
                raise HostFailed(
                    host.name, artifact.version, f"{exc.reason}; log {log_path}:\n{tail}"
                ) from None
            self.processes.mark_running(host.name)
            return answered
        raise AssertionError("unreachable")

    def _wait_healthy(self, host: Host, artifact: Artifact, proc: subprocess.Popen[bytes]) -> float:
        """Return when the first healthy answer came, once `healthy_checks` in a row passed."""
        deadline = time.monotonic() + self.start_timeout_s
        first_ok: float | None = None
        in_a_row = wrong_version = 0
        last = "no answer yet"
        while True:
            healthy, version, detail = self._ask(host)
            if healthy and version == artifact.version:
                first_ok = first_ok or time.monotonic()
                in_a_row += 1
                if in_a_row >= self.healthy_checks:
                    return first_ok
            else:
                in_a_row = 0
                last = detail or f"/version says {version!r}"
                if healthy and version is not None:
                    wrong_version += 1
                    if wrong_version >= self.healthy_checks:
                        raise HostFailed(host.name, artifact.version, f"host reports version {version!r}")
            # Before the first answer poll fast (startup time is what a restart costs);
            # after it, the checks are spaced by the health interval.
            pause = self.health_interval_s if first_ok is not None else START_POLL_S
            if time.monotonic() + pause > deadline:
                reason = f"not healthy after {self.start_timeout_s:g}s: {last}"
                raise HostFailed(host.name, artifact.version, reason)
            try:
                code = proc.wait(timeout=pause)  # a sleep that ends at once if the process dies
            except subprocess.TimeoutExpired:
                continue
            raise HostFailed(host.name, artifact.version, f"process exited with status {code} while starting")

    def _ask(self, host: Host) -> tuple[bool, str | None, str]:
        """(healthy, version, detail) as the host itself reports them."""
        try:
            health = self._http.get(host.address + self.health_path)
        except httpx.HTTPError as exc:
            return False, None, f"unreachable: {type(exc).__name__}"
        healthy = health.status_code == 200
        detail = "" if healthy else f"{self.health_path} returned {health.status_code}"
        try:
            resp = self._http.get(host.address + "/version")
            version = resp.json().get("version") if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            return healthy, None, f"{detail} /version failed: {type(exc).__name__}".strip()
        return healthy, version if isinstance(version, str) else None, detail

    def _lock(self, host: Host) -> threading.Lock:
        lock = self._locks.get(host.name)
        if lock is None:
            raise NotFound("host", host.name)
        return lock

    @staticmethod
    def _warn_if_ephemeral(base_port: int, host_count: int) -> None:
        ephemeral = procs.ephemeral_ports()
        last = base_port + host_count - 1
        if ephemeral and host_count and base_port <= ephemeral[1] and last >= ephemeral[0]:
            # While a host restarts, its free port can become some outgoing connection's
            # local port, and the new process then fails with "address already in use".
            log.warning(
                "host ports %d-%d overlap the ephemeral range %d-%d; choose ports below %d",
                base_port,
                last,
                ephemeral[0],
                ephemeral[1],
                ephemeral[0],
            )
