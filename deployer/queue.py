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
    """Jobs go to Redis; any number of `deployer worker` processes run them."""

    def __init__(self, *, redis_url: str, name: str = "deployer", job_timeout_s: float = 1800) -> None:
        self._connection = Redis.from_url(redis_url)
        self._queue = rq.Queue(name, connection=self._connection)
        self._timeout = int(job_timeout_s)

    def submit(self, job_id: str, func: Callable[..., Any], *args: Any) -> None:
        try:
            job = rq.job.Job.fetch(job_id, connection=self._connection)
            if job.get_status(refresh=True) in ("queued", "started", "deferred", "scheduled"):
                return
            job.delete()
        except rq.exceptions.NoSuchJobError:
            pass
        self._queue.enqueue(func, *args, job_id=job_id, job_timeout=self._timeout, result_ttl=3600,
                            failure_ttl=86400)

    def failure(self, job_id: str) -> str | None:
        try:
            job = rq.job.Job.fetch(job_id, connection=self._connection)
        except rq.exceptions.NoSuchJobError:
            return None
        if job.get_status(refresh=True) in ("failed", "stopped", "canceled"):
            info = job.latest_result()
            detail = info.exc_string.strip().splitlines()[-1] if info and info.exc_string else "job failed"
            return detail
        return None

    def close(self) -> None:
        self._connection.close()


def run_worker(*, redis_url: str, name: str = "deployer", burst: bool = False) -> None:
    """Run an rq worker on the deployer queue until stopped (or until empty with burst)."""
    connection = Redis.from_url(redis_url)
    worker = rq.Worker([rq.Queue(name, connection=connection)], connection=connection)
    worker.work(burst=burst, with_scheduler=False)
