"""The embedded runtime: each host slot is a sample-app process on a 127.0.0.1 port.

Processes run in their own session, so they outlive the controller; what each one is
lives in `state_dir/hosts/<name>/state.json` (pid + start time, version, release dir),
so a controller restarted after a crash picks the fleet up where it was. What a host
*runs* is always asked of the host itself (`/version`), never taken from the file.
A slot has one fixed port, so a replacement stops the old process before starting the
new one (`overlap = False`); `deployer.fleet.replace` drains it first. With `fork_server`
the new process is forked from its release's preloaded interpreter (`forkservers`), which
`check` has ready before the old process is stopped: the slot is down for the fork and
the health checks, not for the app's imports.
"""

from __future__ import annotations

import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deployer.fleet.base import Artifact, Host, HostStatus, Instance
from deployer.fleet.health import HttpHealth
from deployer.fleet.local import procs
from deployer.fleet.local.forkservers import ForkServers
from deployer.fleet.local.hosts import HostProcesses

log = logging.getLogger(__name__)

# uvicorn's message when its port is taken (errno 98, EADDRINUSE).
ADDRESS_IN_USE = "address already in use"


class LocalRuntime:
    """Host slots `host-0..host-{n-1}` on ports base_port+i, as processes of this machine."""

    overlap = False

    def __init__(
        self,
        *,
        state_dir: Path,
        host_count: int,
        base_port: int,
        health: HttpHealth,
        bind: str = "127.0.0.1",
        python: str = sys.executable,
        app_env: dict[str, str] | None = None,
        stop_timeout_s: float = 10.0,
        fork_server: bool = False,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.health = health
        self._hosts = [Host(f"host-{i}", f"http://{bind}:{base_port + i}") for i in range(host_count)]
        self._ports = {h.name: base_port + i for i, h in enumerate(self._hosts)}
        self._warn_if_ephemeral(base_port, host_count)
        # A fork server gets as long to import a release as a host gets to start.
        self.fork_servers = ForkServers(python=python, log_dir=self.state_dir / "forkservers",
                                        ready_timeout_s=health.policy.start_timeout_s) if fork_server else None
        self.processes = HostProcesses(
            state_dir=self.state_dir,
            bind=bind,
            python=python,
            app_env=dict(app_env or {}),
            stop_timeout_s=stop_timeout_s,
            fork_servers=self.fork_servers,
        )
        # Where each start's output begins in the host log, to quote it when the start fails.
        self._log_offsets: dict[str, int] = {}

    def hosts(self) -> list[Host]:
        """All host slots in a stable order (waves are cut from this order)."""
        return list(self._hosts)

    def settled(self, host: Host) -> bool:
        """"running" is only recorded after the consecutive healthy checks passed."""
        return self.processes.read_state(host.name).get("status") == "running"

    def check(self, host: Host, artifact: Artifact) -> None:
        """The release directory must exist before anything is stopped; its fork server gets ready here."""
        release = self.processes.check_release(host.name, artifact)
        # The imports happen while the old process still serves (a no-op without fork servers).
        self.processes.prepare(release)

    def start(self, host: Host, artifact: Artifact) -> Instance:
        """Spawn the release on the slot's port (evicting an orphan that holds it)."""
        self.processes.free_port(host.name, self._ports[host.name], artifact.version)
        child, offset = self.processes.spawn(host.name, self._ports[host.name], artifact)
        self._log_offsets[host.name] = offset
        return Instance(host, artifact.version, host.address, str(child.pid))

    def exited(self, instance: Instance) -> str | None:
        """Why the started process is gone, or None while it runs."""
        reason = self.processes.exit_reason(instance.host.name)
        return None if reason is None else f"{reason} while starting"

    def start_failed(self, instance: Instance, reason: str, may_retry: bool) -> str | None:
        """Stop what is left, quote the log; retry when the port was taken under us."""
        name = instance.host.name
        log_path = self.processes.log_path(name)
        tail = procs.log_tail(log_path, self._log_offsets.get(name, 0))
        # Nothing half-started is left behind; the log keeps what it said.
        self.processes.stop(name, status="failed")
        if ADDRESS_IN_USE in tail and may_retry:
            # Between our port check and the app's bind, an outgoing connection may have
            # picked this port as its local port; such connections are short.
            log.warning("%s: port %d was taken while starting; retrying", name, self._ports[name])
            return None
        return f"{reason}; log {log_path}:\n{tail}"

    def promote(self, instance: Instance) -> None:
        """Record that the slot's process passed its consecutive health checks."""
        self.processes.mark_running(instance.host.name)

    def stop(self, host: Host, *, instance: Instance | None = None, status: str = "stopped") -> None:
        """Stop the slot's process; for a replacement, return once its port is closed."""
        self.processes.stop(host.name, overlap=status == "replaced")

    def probe(self, host: Host) -> HostStatus:
        """Ask the host what it runs and whether it is healthy; never raises."""
        try:
            alive, pid = self.processes.is_alive(host.name)
            healthy, version, detail = self.health.ask(host.address)
            answered = not detail.startswith("unreachable")
            if alive:
                detail = f"pid {pid}; {detail}".rstrip("; ")
            elif answered:
                detail = f"answers, but no process of ours is recorded; {detail}".rstrip("; ")
            running = alive or answered
            return HostStatus(host, running=running, healthy=healthy, version=version, detail=detail,
                              target=str(pid) if alive else None)
        except Exception as exc:  # the protocol promises probe() never raises
            log.exception("probe of %s failed", host.name)
            return HostStatus(host, running=False, healthy=False, version=None, detail=f"probe failed: {exc!r}")

    def stop_all(self) -> None:
        """Stop every host this state_dir knows (even ones outside host_count)."""
        names = sorted({h.name for h in self._hosts} | self.processes.known_names())
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            list(pool.map(self.processes.stop, names))
        self.processes.join_reapers()
        if self.fork_servers is not None:
            self.fork_servers.stop_all()

    def unknown(self) -> list[str]:
        """Recorded hosts outside host_count whose process still runs (the fleet was shrunk)."""
        extra = sorted(self.processes.known_names() - {h.name for h in self._hosts})
        return [f"{name} (pid {pid})" for name in extra for alive, pid in [self.processes.is_alive(name)] if alive]

    def close(self) -> None:
        """Stop the fork servers (the hosts keep running); health questions go through the shared HttpHealth."""
        if self.fork_servers is not None:
            self.fork_servers.stop_all()

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
