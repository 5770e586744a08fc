"""Make hosts run the version the database wants them to, and record what they really run.

The desired version is written (by the controller) before anything happens to a host;
`converge` asks the fleet to make each host match and records the observed version from
the host's own answer. `fleet.deploy` is a no-op for a host already on its version, so
replaying a convergence after a crash is safe.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import Engine

from deployer import store
from deployer.exceptions import HostFailed
from deployer.fleet.base import Artifact, Fleet
from deployer.model import utcnow

log = logging.getLogger(__name__)


class Reconciler:
    """Desired versus observed, host by host."""

    def __init__(self, *, engine: Engine, fleet: Fleet, max_parallel: int) -> None:
        self.engine = engine
        self.fleet = fleet
        self.max_parallel = max_parallel
        self.hosts = {h.name: h for h in fleet.hosts()}

    def observe_all(self) -> None:
        """Probe every host and record what it says it runs."""
        statuses = {name: self.fleet.probe(host) for name, host in self.hosts.items()}
        with store.session_scope(self.engine) as session:
            for name, status in statuses.items():
                state = store.host_state(session, name=name)
                state.observed_version = status.version if status.running else None
                state.healthy = status.healthy
                state.detail = status.detail
                state.updated_at = utcnow()
                session.add(state)

    def converge(self, names: list[str], *, parallel: int | None = None) -> list[str]:
        """Make each named host run its desired version; returns failure descriptions."""
        with store.session_scope(self.engine) as session:
            work = []
            for name in names:
                state = store.host_state(session, name=name)
                if state.desired_version is None or state.desired_artifact is None:
                    continue
                restart = state.restart_generation > state.restarted_generation
                if restart or state.observed_version != state.desired_version or not state.healthy:
                    work.append((name, Artifact(state.desired_version, state.desired_artifact), restart,
                                 state.restart_generation))
        if not work:
            return []
        work.sort(key=lambda item: not item[2])  # requested restarts (the baseline) start first
        width = max(1, min(len(work), parallel or self.max_parallel))
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="deploy") as pool:
            outcomes = list(pool.map(lambda item: self._replace_host(*item), work))
        return [failure for failure in outcomes if failure]

    def _replace_host(self, name: str, artifact: Artifact, restart: bool, generation: int) -> str | None:
        host = self.hosts[name]
        try:
            result = (self.fleet.restart if restart else self.fleet.deploy)(host, artifact)
        except HostFailed as exc:
            probe = self.fleet.probe(host)
            with store.session_scope(self.engine) as session:
                state = store.host_state(session, name=name)
                state.observed_version = probe.version if probe.running else None
                state.healthy, state.detail, state.updated_at = probe.healthy, exc.reason[-500:], utcnow()
                session.add(state)
                store.audit(session, kind="host_failed", deployment_id=state.deployment_id,
                            message=f"{name} did not come up on {artifact.version[:12]}: {exc.reason[-300:]}",
                            data={"host": name, "version": artifact.version})
            return f"{name}: {exc.reason.splitlines()[0] if exc.reason else 'unhealthy'}"
        with store.session_scope(self.engine) as session:
            state = store.host_state(session, name=name)
            state.observed_version, state.healthy, state.detail = artifact.version, True, ""
            state.restarted_generation = max(state.restarted_generation, generation)
            state.updated_at = utcnow()
            session.add(state)
            if result.changed:
                store.audit(session, kind="host_deployed", deployment_id=state.deployment_id,
                            message=f"{name} runs {artifact.version[:12]} ({result.total_s:.1f}s)",
                            data={"host": name, "version": artifact.version, "drain_s": result.drain_s,
                                  "stop_s": result.stop_s, "start_s": result.start_s, "health_s": result.health_s})
        return None
