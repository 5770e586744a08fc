"""Make hosts run the version the database wants them to, and record what they really run.

The desired version is written (by the controller) before anything happens to a host;
replacements run on a bounded pool beside the tick (`deployer.host_work`), and their
outcomes are written back in one batched transaction per poll, observed version from the
host's own answer. `fleet.deploy` is a no-op for a host already on its version, so
replaying a convergence after a crash is safe.

At thousands of hosts the controller must not read or write every row every tick: this
keeps a book of every host's row (the controller is the only writer of desired state;
it reloads the book, in one query, after it changes targets), writes a row only when
something in it changed, and probes with bounded concurrency.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from deployer import store
from deployer.fleet.base import Artifact, Fleet, HostStatus
from deployer.host_work import HostOutcome, HostWorkPool
from deployer.model import AuditEvent, HostState, utcnow
from deployer.rollout_budget import HostPhase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostRecord:
    """The controller's copy of one host's row: what it should run and what it was seen running."""

    desired_version: str | None
    desired_artifact: str | None
    restart_generation: int
    restarted_generation: int
    observed_version: str | None
    healthy: bool

    @classmethod
    def of(cls, row: HostState) -> HostRecord:
        return cls(row.desired_version, row.desired_artifact, row.restart_generation, row.restarted_generation,
                   row.observed_version, row.healthy)

    @property
    def restart_requested(self) -> bool:
        return self.restart_generation > self.restarted_generation

    @property
    def converged(self) -> bool:
        """On its desired version, healthy, and no restart asked for (nothing to do)."""
        if self.desired_version is None or self.desired_artifact is None:
            return True
        return not self.restart_requested and self.observed_version == self.desired_version and self.healthy


class Reconciler:
    """Desired versus observed, for every host, without blocking the caller."""

    def __init__(self, *, engine: Engine, fleet: Fleet, workers: int, probe_workers: int = 16,
                 on_done: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.fleet = fleet
        self.hosts = {h.name: h for h in fleet.hosts()}
        self.pool = HostWorkPool(fleet=fleet, workers=workers, on_done=on_done)
        self.probe_workers = probe_workers
        # Hosts whose replacement failed since the last `clear_failures()`: not retried until then.
        self.failed: dict[str, str] = {}
        self.book: dict[str, HostRecord] = {}
        # Whether hosts run beside their old instance while starting (surge) or leave service (replace).
        self.overlap = bool(getattr(fleet, "overlap", False))
        # A counter bumped whenever a replacement is submitted or recorded, and the value it had at
        # each host's latest one: a probe begun before a host's replacement is stale for that host.
        self._moves = 0
        self._moved_at: dict[str, int] = {}

    # --- the book ---------------------------------------------------------------------------

    def load(self) -> None:
        """Read every host's row in one query (rows missing for a fleet host are created)."""
        with store.session_scope(self.engine) as session:
            rows = store.host_states_named(session, names=list(self.hosts))
            self.book = {name: HostRecord.of(rows[name]) for name in self.hosts}

    def needs_work(self, name: str) -> bool:
        return not self.book[name].converged

    def pending(self, names: Iterable[str] | None = None) -> list[str]:
        """Hosts that need a replacement, are not being replaced and did not just fail; restarts first."""
        chosen = self.hosts if names is None else names
        todo = [n for n in chosen if not self.book[n].converged and not self.pool.busy(n) and n not in self.failed]
        todo.sort(key=lambda n: not self.book[n].restart_requested)  # the baseline restarts first
        return todo

    def phase(self, name: str, wave: set[str]) -> HostPhase:
        """Where a host stands for the wave planner."""
        if self.pool.busy(name):
            return HostPhase.SURGING if self.overlap else HostPhase.REPLACING
        if name in self.failed:
            return HostPhase.FAILED
        record = self.book[name]
        if not record.healthy:
            return HostPhase.UNHEALTHY
        if record.converged:
            return HostPhase.DONE if name in wave else HostPhase.SERVING
        return HostPhase.SERVING

    def clear_failures(self) -> None:
        self.failed.clear()

    # --- acting -----------------------------------------------------------------------------

    def start(self, names: Iterable[str]) -> list[str]:
        """Submit replacements for `names` (as many as the pool has room for); returns those started."""
        started = []
        for name in names:
            if self.pool.free() <= 0:
                break
            record = self.book[name]
            if record.converged or self.pool.busy(name) or record.desired_version is None \
                    or record.desired_artifact is None:
                continue
            self.pool.submit(self.hosts[name], Artifact(record.desired_version, record.desired_artifact),
                             restart=record.restart_requested, generation=record.restart_generation)
            self._moved(name)
            started.append(name)
        return started

    def poll(self) -> list[HostOutcome]:
        """Collect finished replacements and record them, all in one transaction."""
        outcomes = self.pool.poll()
        if not outcomes:
            return []
        with store.session_scope(self.engine) as session:
            rows = store.host_states_named(session, names=[o.name for o in outcomes])
            for outcome in outcomes:
                self._record(session, rows[outcome.name], outcome)
        for outcome in outcomes:
            self._moved(outcome.name)
            self.book[outcome.name] = HostRecord.of(rows[outcome.name])
            # A host that failed to start a version it is no longer meant to run (an abort
            # came while it started) is not a failure of the current convergence.
            if not outcome.ok and self.book[outcome.name].desired_version == outcome.artifact.version:
                self.failed[outcome.name] = outcome.reason.splitlines()[0] if outcome.reason else "unhealthy"
        return outcomes

    def failure_texts(self) -> list[str]:
        return [f"{name}: {reason}" for name, reason in self.failed.items()]

    def converge(self, names: list[str] | None = None, *, poll_s: float = 0.05,
                 sleep: Callable[[float], None] = time.sleep) -> list[str]:
        """Block until every named host matches its row or failed (start-up only: never from the tick)."""
        self.load()
        self.clear_failures()
        while True:
            self.poll()
            self.start(self.pending(names))
            if not self.pool.in_flight():
                return self.failure_texts()
            self.pool.wait_any(poll_s)

    def moves(self) -> int:
        """A mark to take before probing; `record_probes(..., since=mark)` then skips hosts moved after it."""
        return self._moves

    def _moved(self, name: str) -> None:
        self._moves += 1
        self._moved_at[name] = self._moves

    def observe_all(self) -> int:
        """Probe every host (bounded concurrency) and record what changed; returns rows written."""
        since = self.moves()
        names = list(self.hosts)
        with ThreadPoolExecutor(max_workers=max(1, min(self.probe_workers, len(names))),
                                thread_name_prefix="probe") as pool:
            statuses = dict(zip(names, pool.map(lambda n: self.fleet.probe(self.hosts[n]), names)))
        return self.record_probes(statuses, since=since)

    def record_probes(self, statuses: dict[str, HostStatus], *, since: int | None = None) -> int:
        """Write the probes that differ from the book (and only those); returns rows written.

        `since` is the `moves()` mark taken before the probes began: a host replaced meanwhile
        was probed on the version it left, which must not overwrite the one it was seen starting.
        """
        changed = {name: s for name, s in statuses.items() if name in self.book and not self.pool.busy(name)
                   and (since is None or self._moved_at.get(name, 0) <= since)
                   and self._differs(self.book[name], s)}
        if not changed:
            return 0
        with store.session_scope(self.engine) as session:
            rows = store.host_states_named(session, names=list(changed))
            for name, status in changed.items():
                row = rows[name]
                row.observed_version = status.version if status.running else None
                row.healthy, row.detail, row.updated_at = status.healthy, status.detail, utcnow()
                session.add(row)
        for name in changed:
            self.book[name] = HostRecord.of(rows[name])
        return len(changed)

    def close(self) -> None:
        self.pool.close()

    @staticmethod
    def _differs(record: HostRecord, status: HostStatus) -> bool:
        observed = status.version if status.running else None
        return record.observed_version != observed or record.healthy != status.healthy

    @staticmethod
    def _record(session: Session, row: HostState, outcome: HostOutcome) -> None:
        version = outcome.artifact.version
        if outcome.result is None:
            probe = outcome.probe
            row.observed_version = probe.version if probe is not None and probe.running else None
            row.healthy = bool(probe and probe.healthy)
            row.detail, row.updated_at = outcome.reason[-500:], utcnow()
            session.add(row)
            session.add(AuditEvent(kind="host_failed", actor="controller", deployment_id=row.deployment_id,
                                   message=f"{row.name} did not come up on {version[:12]}: {outcome.reason[-300:]}",
                                   data={"host": row.name, "version": version}))
            return
        result = outcome.result
        row.observed_version, row.healthy, row.detail = version, True, ""
        row.restarted_generation = max(row.restarted_generation, outcome.generation)
        row.updated_at = utcnow()
        session.add(row)
        if result.changed:
            session.add(AuditEvent(kind="host_deployed", actor="controller", deployment_id=row.deployment_id,
                                   message=f"{row.name} runs {version[:12]} ({result.total_s:.1f}s)",
                                   data={"host": row.name, "version": version, "drain_s": result.drain_s,
                                         "stop_s": result.stop_s, "start_s": result.start_s,
                                         "health_s": result.health_s}))
