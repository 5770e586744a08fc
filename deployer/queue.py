"""Task dispatch: an in-process thread pool (default) or rq on Redis (the only importer of rq).

Jobs are the module-level functions of `deployer.jobs`; they write their results to
the database, so the queue only has to run them and say whether one died.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import rq
from redis import Redis

log = logging.getLogger(__name__)


class TaskQueue(Protocol):
    def submit(self, job_id: str, func: Callable[..., Any], *args: Any) -> None:
        """Run `func(*args)` once under `job_id` (a job already queued or running is not doubled)."""
        ...

    def failure(self, job_id: str) -> str | None:
        """Why the job died without recording its result, or None while it is fine."""
        ...

    def close(self) -> None:
        """Stop accepting work and release resources."""
        ...


class InProcessQueue:
    """Jobs run on a small thread pool inside the controller process."""

    def __init__(self, *, workers: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
        self._futures: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()

    def submit(self, job_id: str, func: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            current = self._futures.get(job_id)
            if current is not None and not current.done():
                return
            self._futures[job_id] = self._pool.submit(func, *args)

    def failure(self, job_id: str) -> str | None:
        with self._lock:
            future = self._futures.get(job_id)
        if future is None or not future.done():
            return None
        error = future.exception()
        return f"{type(error).__name__}: {error}" if error else None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class RqQueue:
    """Jobs go to Redis; any number of `deployer worker` processes run them.

    A job that raises is retried `retries` times. A worker killed mid-job stops
    heart-beating; once its heartbeat expires the job counts as abandoned and is
    retried the same way, then failed with that reason, so no job is ever lost.
    """

    def __init__(self, *, redis_url: str, name: str = "deployer", job_timeout_s: float = 1800,
                 retries: int = 2) -> None:
        self._connection = Redis.from_url(redis_url)
        self._queue = rq.Queue(name, connection=self._connection)
        self._timeout = int(job_timeout_s)
        self._retries = retries

    def submit(self, job_id: str, func: Callable[..., Any], *args: Any) -> None:
        try:
            job = rq.job.Job.fetch(job_id, connection=self._connection)
            if job.get_status(refresh=True) in ("queued", "started", "deferred", "scheduled"):
                return
            job.delete()
        except rq.exceptions.NoSuchJobError:
            pass
        except ValueError as exc:
            # rq cannot delete a job whose execution record expired with its dead worker; the
            # enqueue below overwrites the job under the same id anyway.
            log.info("old job %s could not be deleted cleanly (%s); replacing it", job_id, exc)
        self._queue.enqueue(func, *args, job_id=job_id, job_timeout=self._timeout, result_ttl=3600,
                            failure_ttl=86400, retry=rq.Retry(max=self._retries) if self._retries else None)

    def failure(self, job_id: str) -> str | None:
        # Abandoned jobs (their worker died) are retried or failed here, not only when a
        # worker gets round to its periodic maintenance.
        rq.registry.StartedJobRegistry(queue=self._queue).cleanup()
        try:
            job = rq.job.Job.fetch(job_id, connection=self._connection)
        except rq.exceptions.NoSuchJobError:
            return "the job vanished from the queue (Redis restarted without persistence, or was flushed)"
        if job.get_status(refresh=True) in ("failed", "stopped", "canceled"):
            info = job.latest_result()
            detail = info.exc_string.strip().splitlines()[-1] if info and info.exc_string else "job failed"
            if "AbandonedJobError" in detail:
                detail = (f"the worker running it died (no heartbeat), and so did {self._retries} "
                          f"retr{'y' if self._retries == 1 else 'ies'}" if self._retries else
                          "the worker running it died (no heartbeat)")
            return detail
        return None

    def state(self, job_id: str) -> str | None:
        """The job's rq status (queued, started, finished, failed...), or None if unknown."""
        try:
            return str(rq.job.Job.fetch(job_id, connection=self._connection).get_status(refresh=True).value)
        except rq.exceptions.NoSuchJobError:
            return None

    def close(self) -> None:
        self._connection.close()


class _Worker(rq.Worker):
    """An rq worker whose jobs count as abandoned `heartbeat_grace` seconds after their last heartbeat.

    rq waits a fixed 60 s past the monitoring interval; a shorter grace lets a dead worker's
    job be retried sooner (the monitoring interval must stay well below it).
    """

    heartbeat_grace: float = 60.0

    def get_heartbeat_ttl(self, job: rq.job.Job, working_time: float = 0.0) -> int:
        return int(super().get_heartbeat_ttl(job, working_time) - 60 + self.heartbeat_grace)


def run_worker(*, redis_url: str, name: str = "deployer", burst: bool = False, heartbeat_s: float = 10.0,
               heartbeat_grace_s: float = 60.0) -> None:
    """Run an rq worker on the deployer queue until stopped (or until empty with burst)."""
    connection = Redis.from_url(redis_url)
    worker = _Worker([rq.Queue(name, connection=connection)], connection=connection,
                     job_monitoring_interval=max(1, int(heartbeat_s)))
    worker.heartbeat_grace = heartbeat_grace_s
    worker.work(burst=burst, with_scheduler=False)
