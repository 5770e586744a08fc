"""Host slots as containers: `<platform>-host-N` serves, `-next` is a replacement starting beside it.

Everything the runtime knows is on the engines themselves (container names and labels), so a
controller restarted after a crash rediscovers every container and carries on: a `-next`
left behind is removed before the next start, a `-old` (retired but not yet stopped) is
stopped. A container with the platform's label that fits none of these is reported by
`unknown()`, never removed. Each slot has two loopback ports and alternates between them,
so the new version starts before the old one stops (`overlap = True`).
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker.errors
from docker.models.containers import Container

from deployer.exceptions import HostFailed
from deployer.fleet.base import Artifact, Host, HostStatus, Instance
from deployer.fleet.docker.engines import Engine, EngineError, Engines
from deployer.fleet.docker.labels import APP_ROLE, HOST, PLATFORM, PORT, ROLE, VERSION
from deployer.fleet.health import HttpHealth
from deployer.fleet.local.procs import port_is_free

log = logging.getLogger(__name__)
NEXT, OLD = "-next", "-old"


@dataclass(frozen=True)
class Limits:
    """Per-container resources: CPUs (fractions allowed) and a memory size such as "256m"."""

    cpus: float
    memory: str


class DockerRuntime:
    """Host slots `host-0..host-{n-1}`, slot i on engine i mod n, ports base_port+2i and base_port+2i+1."""

    overlap = True

    def __init__(self, *, engines: Engines, host_count: int, base_port: int, health: HttpHealth, platform: str,
                 limits: Limits, bind: str = "127.0.0.1", app_env: dict[str, str] | None = None,
                 volumes: list[Path] | None = None, stop_timeout_s: float = 10.0) -> None:
        self.engines = engines
        self.health = health
        self.platform = platform
        self.limits = limits
        self.bind = bind
        self.app_env = dict(app_env or {})
        self.volumes = [Path(v).resolve() for v in volumes or []]
        self.stop_timeout_s = stop_timeout_s
        self._names = [f"host-{i}" for i in range(host_count)]
        self._index = {name: i for i, name in enumerate(self._names)}
        self._base_port = base_port

    # -- slots and their containers -----------------------------------------------------------

    def engine(self, host: Host | str) -> Engine:
        """The engine that runs this host slot."""
        return self.engines.for_slot(self._slot(host))

    def ports(self, host: Host | str) -> tuple[int, int]:
        """The slot's two ports: it serves on one while the next version starts on the other."""
        first = self._base_port + 2 * self._slot(host)
        return first, first + 1

    def container_name(self, host: Host | str, suffix: str = "") -> str:
        """`<platform>-host-N` for the serving container, plus `-next` / `-old` while replacing."""
        return f"{self.platform}-{self._name(host)}{suffix}"

    def _find(self, host: Host | str, suffix: str = "") -> Container | None:
        try:
            return self.engine(host).client.containers.get(self.container_name(host, suffix))
        except docker.errors.NotFound:
            return None

    def _address(self, host: Host | str, container: Container | None) -> str:
        engine = self.engine(host)
        port = int(container.labels.get(PORT, 0)) if container is not None else self.ports(host)[0]
        return f"http://{engine.address}:{port}"

    # -- the HostRuntime protocol ---------------------------------------------------------------

    def hosts(self) -> list[Host]:
        """Every slot with the address its serving container answers on now (the first port before any)."""
        found = []
        for name in self._names:
            try:
                found.append(Host(name, self._address(name, self._find(name))))
            except (EngineError, docker.errors.APIError):
                found.append(Host(name, self._address(name, None)))
        return found

    def settled(self, host: Host) -> bool:
        """The slot has a serving container (only promoted after its health checks) and it runs."""
        container = self._find(host)
        return container is not None and container.status == "running"

    def check(self, host: Host, artifact: Artifact) -> None:
        """The image must be on the slot's engine before anything is started or stopped."""
        engine = self.engine(host)
        try:
            engine.client.images.get(artifact.location)
        except docker.errors.ImageNotFound:
            raise HostFailed(host.name, artifact.version,
                             f"image {artifact.location} is not on engine {engine.url}; build the release") from None
        except EngineError as exc:
            raise HostFailed(host.name, artifact.version, str(exc)) from None

    def start(self, host: Host, artifact: Artifact) -> Instance:
        """Run the image as `-next` on the port the serving container does not use."""
        engine = self.engine(host)
        self._retire_leftovers(host)
        serving = self._find(host)
        used = int(serving.labels.get(PORT, 0)) if serving is not None and serving.status == "running" else None
        first, second = self.ports(host)
        port = second if used == first else first
        if engine.address == self.bind and not port_is_free(self.bind, port):
            raise HostFailed(host.name, artifact.version, f"port {port} on {self.bind} is in use by another process")
        labels = {PLATFORM: self.platform, HOST: host.name, ROLE: APP_ROLE, VERSION: artifact.version,
                  PORT: str(port)}
        try:
            container = engine.client.containers.run(
                artifact.location, ["--host", engine.address, "--port", str(port)],
                name=self.container_name(host, NEXT), detach=True, network_mode="host", labels=labels,
                environment=self.app_env, nano_cpus=int(self.limits.cpus * 1e9), mem_limit=self.limits.memory,
                # Swap would turn an out-of-memory kill into a slow host; the limit is the limit.
                memswap_limit=self.limits.memory,
                volumes={str(v): {"bind": str(v), "mode": "rw"} for v in self.volumes})
        except docker.errors.APIError as exc:
            raise HostFailed(host.name, artifact.version,
                             f"engine {engine.url} could not start {artifact.location}: {exc.explanation or exc}"
                             ) from None
        return Instance(host, artifact.version, f"http://{engine.address}:{port}", container.id)

    def exited(self, instance: Instance) -> str | None:
        """Why the container stopped (exit status, out-of-memory kill), or None while it runs."""
        container = self._by_id(instance.host, instance.target)
        if container is None:
            return "container was removed while starting"
        if container.status in ("created", "running", "restarting"):
            return None
        return _why_stopped(container)

    def start_failed(self, instance: Instance, reason: str, may_retry: bool) -> str | None:
        """Quote the container's last output, remove it; a container start is not retried."""
        container = self._by_id(instance.host, instance.target)
        tail = ""
        if container is not None:
            try:
                tail = container.logs(tail=20).decode(errors="replace")
            except docker.errors.APIError:
                pass
            self._remove(container)
        return f"{reason}; container output:\n{tail}" if tail else reason

    def promote(self, instance: Instance) -> None:
        """Make the new container the slot's serving one; the previous one becomes `-old`."""
        engine, host = self.engine(instance.host), instance.host
        serving = self._find(host)
        if serving is not None and serving.id != instance.target:
            serving.rename(self.container_name(host, OLD))
        container = engine.client.containers.get(instance.target)
        if container.name != self.container_name(host):
            container.rename(self.container_name(host))

    def stop(self, host: Host, *, instance: Instance | None = None, status: str = "stopped") -> None:
        """Stop and remove a container (default: the serving one), and any `-old` of the slot."""
        targets = [self._by_id(host, instance.target)] if instance is not None else [self._find(host)]
        targets.append(self._find(host, OLD))
        for container in {c.id: c for c in targets if c is not None}.values():
            self._remove(container)

    def probe(self, host: Host) -> HostStatus:
        """What the serving container runs, asked of the app itself; never raises."""
        try:
            container = self._find(host)
            current = Host(host.name, self._address(host, container))
            if container is None:
                return HostStatus(current, running=False, healthy=False, version=None, detail="no container")
            if container.status != "running":
                return HostStatus(current, running=False, healthy=False, version=None,
                                  detail=_why_stopped(container), target=container.short_id)
            healthy, version, detail = self.health.ask(current.address)
            return HostStatus(current, running=True, healthy=healthy, version=version,
                              detail=f"container {container.short_id}; {detail}".rstrip("; "),
                              target=container.id)
        except Exception as exc:  # the protocol promises probe() never raises
            log.warning("probe of %s failed: %s", host.name, exc)
            return HostStatus(host, running=False, healthy=False, version=None, detail=f"probe failed: {exc}")

    def stop_all(self) -> None:
        """Stop and remove every container of the platform's slots, on every engine (unknown ones stay)."""
        mine = [c for c in self.containers() if self._slot_of(c) is not None]
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(mine)))) as pool:
            list(pool.map(self._remove, mine))

    def close(self) -> None:
        """Close the engine connections (containers keep running)."""
        self.engines.close()

    # -- discovery ---------------------------------------------------------------------------

    def containers(self) -> list[Container]:
        """Every container labelled with this platform, on every engine."""
        found: list[Container] = []
        for engine in self.engines.engines:
            found += engine.client.containers.list(all=True, filters={"label": f"{PLATFORM}={self.platform}"})
        return found

    def unknown(self) -> list[str]:
        """Containers with the platform's label that are no slot's: reported, never removed."""
        return [f"{c.name} ({c.short_id}, {c.status})" for c in self.containers() if self._slot_of(c) is None]

    def _slot_of(self, container: Container) -> str | None:
        match = re.fullmatch(rf"{re.escape(self.platform)}-(host-\d+)({NEXT}|{OLD})?", container.name)
        if match is None or container.labels.get(HOST) != match.group(1) or container.labels.get(ROLE) != APP_ROLE:
            return None
        return match.group(1)

    # -- helpers ---------------------------------------------------------------------------------

    def _retire_leftovers(self, host: Host) -> None:
        """A `-next` or `-old` left by a crashed controller is removed before a new start."""
        for suffix in (NEXT, OLD):
            container = self._find(host, suffix)
            if container is not None:
                log.warning("removing %s left over from an interrupted replacement", container.name)
                self._remove(container)

    def _by_id(self, host: Host, container_id: str) -> Container | None:
        try:
            return self.engine(host).client.containers.get(container_id)
        except docker.errors.NotFound:
            return None

    def _remove(self, container: Container) -> None:
        try:
            if container.status == "running":
                container.stop(timeout=int(max(1, self.stop_timeout_s)))
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: another caller is removing it already, which is the outcome wanted
                raise

    def _slot(self, host: Host | str) -> int:
        try:
            return self._index[self._name(host)]
        except KeyError:
            raise HostFailed(self._name(host), "", "not one of this fleet's host slots") from None

    @staticmethod
    def _name(host: Host | str) -> str:
        return host if isinstance(host, str) else host.name


def _why_stopped(container: Container) -> str:
    """The cause of a stopped container, OOM kills named as such."""
    state = container.attrs.get("State", {})
    limit = container.attrs.get("HostConfig", {}).get("Memory") or 0
    if state.get("OOMKilled"):
        return (f"container was killed for running out of memory (limit {limit // (1024 * 1024)} MiB, "
                f"exit status {state.get('ExitCode')})")
    return f"container {container.status} with exit status {state.get('ExitCode')} {state.get('Error') or ''}".strip()

