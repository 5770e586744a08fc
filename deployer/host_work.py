"""Host work beside the controller's tick: a bounded pool of replacement futures the tick polls.

A host replacement (drain, stop, start, health checks, enable) takes seconds; the tick must
not wait for it, or an abort waits for a whole wave. The tick submits replacements here,
at most `workers` at a time, and on every pass collects the ones that finished. Nothing is
queued behind the workers: `free()` says how many more may start now, so every submitted
replacement is running, and the planner (not a queue) decides what goes next.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from deployer.exceptions import HostFailed
from deployer.fleet.base import Artifact, DeployResult, Fleet, Host, HostStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostOutcome:
    """How one replacement ended: `result` when the host runs `artifact`, else `reason` and a fresh probe."""

    name: str
    artifact: Artifact
    generation: int
    result: DeployResult | None = None
    reason: str = ""
    probe: HostStatus | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None


class HostWorkPool:
    """At most `workers` host replacements at once, on threads; `poll()` returns the finished ones."""

    def __init__(self, *, fleet: Fleet, workers: int, on_done: Callable[[], None] | None = None) -> None:
        self.fleet = fleet
        self.workers = workers
        # Called (on the worker thread) whenever a replacement finishes: a simulated clock listens.
        self.on_done = on_done
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="host-work")
        self._futures: dict[str, Future[HostOutcome]] = {}
        self._lock = threading.Lock()

    def free(self) -> int:
        """How many more replacements may start now."""
        return self.workers - len(self._futures)

    def in_flight(self) -> set[str]:
        """Hosts whose replacement was submitted and not yet collected by `poll()`."""
        return set(self._futures)

    def busy(self, name: str) -> bool:
        return name in self._futures

    def running(self) -> int:
        """Replacements not finished yet (a finished one may still wait for `poll()`)."""
        with self._lock:
            return sum(1 for f in self._futures.values() if not f.done())

    def submit(self, host: Host, artifact: Artifact, *, restart: bool, generation: int) -> None:
        """Start replacing `host` (deploy, or restart on the same version); never more than `workers`."""
        if host.name in self._futures:
            raise RuntimeError(f"{host.name} is already being replaced")
        if self.free() <= 0:
            raise RuntimeError("no free host worker; check free() before submitting")
        with self._lock:
            future = self._executor.submit(self._replace, host, artifact, restart, generation)
            self._futures[host.name] = future
        future.add_done_callback(self._finished)

    def _finished(self, _future: Future[HostOutcome]) -> None:
        if self.on_done is not None:
            self.on_done()

    def poll(self) -> list[HostOutcome]:
        """The replacements that finished since the last poll (each is returned once)."""
        with self._lock:
            done = [name for name, f in self._futures.items() if f.done()]
            return [self._futures.pop(name).result() for name in done]

    def wait_any(self, timeout: float) -> None:
        """Block up to `timeout` for a replacement to finish (start-up convergence only, never the tick)."""
        with self._lock:
            pending = [f for f in self._futures.values() if not f.done()]
        if pending:
            wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)

    def close(self) -> None:
        """Let running replacements finish (a host is never left half-replaced by us) and stop the threads."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _replace(self, host: Host, artifact: Artifact, restart: bool, generation: int) -> HostOutcome:
        try:
            result = (self.fleet.restart if restart else self.fleet.deploy)(host, artifact)
        except HostFailed as exc:
            return HostOutcome(host.name, artifact, generation, reason=exc.reason or "unhealthy",
                               probe=self.fleet.probe(host))
        except Exception as exc:  # a backend bug must fail the host, not lose the future
            log.exception("replacing %s failed unexpectedly", host.name)
            return HostOutcome(host.name, artifact, generation, reason=f"{type(exc).__name__}: {exc}",
                               probe=self.fleet.probe(host))
        return HostOutcome(host.name, artifact, generation, result=result)
