"""rq workers as real processes on real Redis: a worker killed mid-job, jobs run twice, lost jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import rq
from redis import Redis
from sqlalchemy.engine import Engine

from deployer import store
from deployer.jobs import JobContext, build_job, run_tests_job
from deployer.model import StageStatus
from deployer.queue import RqQueue
from tests.fleet_support import processes_under
from tests.gitrepo import make_central_repo
from tests.integration.test_store_and_queue import REDIS, stage_for, wait_stage
from tests.pipeline_world import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[JobContext, Engine, str]]:
    central = make_central_repo(tmp_path)
    # Slow enough to kill its worker in the middle of it.
    slow = central.commit("slow tests", {"test_app.py": "import time\n\ndef test_slow():\n    time.sleep(3)\n"})
    central.push()
    url = f"sqlite:///{tmp_path / 'deployer.db'}"
    ctx = JobContext(database_url=url, repository=str(central.bare), branch="main", workdir=str(tmp_path / "work"),
                     test_command="python -m pytest -q -p no:cacheprovider", test_timeout_s=120)
    engine = store.open_database(url)
    yield ctx, engine, slow
    engine.dispose()
    for pid in processes_under(tmp_path):  # test runs orphaned by a killed worker
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Workers:
    """Worker processes on one queue, each in its own process group; all killed at the end."""

    def __init__(self, queue_name: str, cwd: Path) -> None:
        self.queue_name, self.cwd = queue_name, cwd
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        code = ("from deployer.queue import run_worker; "
                f"run_worker(redis_url={REDIS!r}, name={self.queue_name!r}, heartbeat_s=1, heartbeat_grace_s=2)")
        process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, cwd=self.cwd,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """Kill the worker and everything under it at once, as a machine that dies would."""
        # rq's work horse runs in a process group of its own, so walk the process tree.
        for pid in [process.pid, *_descendants(process.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=10)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                self.kill(process)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    name = f"deployer-test-{uuid.uuid4().hex[:8]}"
    pool = Workers(name, tmp_path)
    yield pool
    pool.close()
    connection = Redis.from_url(REDIS)
    for key in connection.scan_iter(f"rq:*{name}*"):
        connection.delete(key)
    connection.close()


def test_a_job_whose_worker_is_killed_runs_again_on_another(setup: tuple[JobContext, Engine, str],
                                                            workers: Workers) -> None:
    ctx, engine, slow = setup
    queue = RqQueue(redis_url=REDIS, name=workers.queue_name, retries=1)
    deployment_id, stage_id = stage_for(engine, slow, "tests")
    job_id = f"{workers.queue_name}-tests-{deployment_id}"
    queue.submit(job_id, run_tests_job, ctx, deployment_id, stage_id)
    first = workers.start()
    wait_until("the job to start", lambda: queue.state(job_id) == "started", 60, interval=0.05)
    workers.kill(first)
    workers.start()
    # The controller's check is what notices the abandoned job: it is retried, not failed.
    stage = wait_until("the retried job to pass", lambda: queue.failure(job_id) is None and _closed(engine, deployment_id),
                       90, interval=0.2)
    assert stage.status is StageStatus.PASSED, stage.detail
    # It really ran again: its one retry is used up (and the killed run's scratch folder is all that is left).
    assert rq.job.Job.fetch(job_id, connection=Redis.from_url(REDIS)).retries_left == 0
    queue.close()


def test_a_job_whose_every_worker_dies_fails_with_the_reason(setup: tuple[JobContext, Engine, str],
                                                            workers: Workers) -> None:
    ctx, engine, slow = setup
    queue = RqQueue(redis_url=REDIS, name=workers.queue_name, retries=0)
    deployment_id, stage_id = stage_for(engine, slow, "tests")
    job_id = f"{workers.queue_name}-tests-{deployment_id}"
    queue.submit(job_id, run_tests_job, ctx, deployment_id, stage_id)
    worker = workers.start()
    wait_until("the job to start", lambda: queue.state(job_id) == "started", 60, interval=0.05)
    workers.kill(worker)
    reason = wait_until("the job to be given up", lambda: queue.failure(job_id), 60, interval=0.2)
    assert reason == "the worker running it died (no heartbeat)"
    assert queue.failure("tests-never-submitted").startswith("the job vanished from the queue")
    queue.close()


def _closed(engine: Engine, deployment_id: int):  # type: ignore[no-untyped-def]
    with store.session_scope(engine) as session:
        stage = store.latest_stage(session, deployment_id=deployment_id, name="tests")
        return stage if stage is not None and stage.status is not StageStatus.RUNNING else None


def test_jobs_run_twice_at_once_give_one_outcome(setup: tuple[JobContext, Engine, str]) -> None:
    ctx, engine, sha = setup
    build_dep, build_stage = stage_for(engine, sha, "build")
    tests_dep, tests_stage = stage_for(engine, sha, "tests")
    results: list[object] = []
    threads = [threading.Thread(target=lambda f=f, d=d, s=s: results.append(f(ctx, d, s)))
               for f, d, s in [(build_job, build_dep, build_stage)] * 3 + [(run_tests_job, tests_dep, tests_stage)] * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert wait_stage(engine, build_dep, "build").status is StageStatus.PASSED
    assert wait_stage(engine, tests_dep, "tests").status is StageStatus.PASSED
    releases = Path(ctx.workdir) / "releases"
    assert [p.name for p in releases.iterdir()] == [sha]  # one release directory, no half-built leftovers
    assert (releases / sha / "REVISION").read_text().strip() == sha
    # Run again after the fact: nothing changes.
    assert run_tests_job(ctx, tests_dep, tests_stage) is True
    assert wait_stage(engine, tests_dep, "tests").status is StageStatus.PASSED


def test_workers_starting_together_share_one_mirror_safely(setup: tuple[JobContext, Engine, str],
                                                          tmp_path: Path) -> None:
    ctx, _, sha = setup
    # Several worker processes use a mirror that does not exist yet: one clones, the others wait for it.
    code = ("import sys; from pathlib import Path; from deployer.source import GitSource; "
            "src = GitSource(repository=sys.argv[1], branch='main', mirror_dir=Path(sys.argv[2])); "
            "src.archive(sys.argv[3], Path(sys.argv[4])); src.fetch()")
    mirror = tmp_path / "shared" / "mirror.git"
    processes = [subprocess.Popen([sys.executable, "-c", code, ctx.repository, str(mirror), sha,
                                   str(tmp_path / f"out-{i}")], stderr=subprocess.PIPE, text=True)
                 for i in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert all(p.returncode == 0 for p in processes), [e[-600:] for e in errors]
    assert all((tmp_path / f"out-{i}" / "test_app.py").is_file() for i in range(4))
    assert [p.name for p in mirror.parent.iterdir() if p.name.startswith(".")] == []  # no scratch clones left
