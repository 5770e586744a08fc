"""The store on SQLite and on a real PostgreSQL; test and build jobs through real Redis with rq workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from deployer import store
from deployer.exceptions import InvalidTransition
from deployer.jobs import JobContext, build_job, run_tests_job
from deployer.model import CommandKind, Deployment, Release, StageStatus
from deployer.pipeline import Event, Phase, Status
from deployer.queue import InProcessQueue, RqQueue
from tests.gitrepo import make_central_repo

pytestmark = pytest.mark.integration
POSTGRES = os.environ.get("DEPLOYER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("DEPLOYER_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"deployer_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'deployer.db'}" if request.param == "sqlite" \
        else request.getfixturevalue("postgres_url")
    engine = store.make_engine(url)
    store.init_db(engine)
    yield engine
    engine.dispose()


def new_deployment(engine: Engine, sha: str = "b" * 40) -> int:
    with store.session_scope(engine) as session:
        release = Release(sha=sha, commit_shas=[sha])
        session.add(release)
        session.flush()
        deployment = Deployment(release_id=release.id, version=sha, wave_plan=[1, 2, 4], waves=3)
        session.add(deployment)
        session.flush()
        assert deployment.id is not None
        return deployment.id


def test_transitions_and_their_audit_events_land_together(engine: Engine) -> None:
    deployment_id = new_deployment(engine)
    for event in (Event.START, Event.TESTS_PASSED, Event.BUILD_SUCCEEDED, Event.WAVE_DEPLOYED):
        with store.session_scope(engine) as session:
            store.apply_event(session, deployment=store.get_deployment(session, deployment_id=deployment_id),
                              event=event, reason=f"because {event.value}")
    with store.session_scope(engine) as session:
        deployment = store.get_deployment(session, deployment_id=deployment_id)
        assert (deployment.status, deployment.phase) == (Status.CANARY, Phase.BAKING)
        assert deployment.wave_plan == [1, 2, 4]
        release = store.get_release(session, release_id=deployment.release_id)
        assert release.status is Status.CANARY
        trail = [(e.from_status, e.to_status, e.event) for e in store.recent_audit(session)]
    assert trail == [("queued", "testing", "start"), ("testing", "building", "tests_passed"),
                     ("building", "canary/deploying", "build_succeeded"),
                     ("canary/deploying", "canary/baking", "wave_deployed")]


def test_a_failed_transaction_writes_neither_state_nor_audit(engine: Engine) -> None:
    deployment_id = new_deployment(engine)
    with pytest.raises(RuntimeError), store.session_scope(engine) as session:
        store.apply_event(session, deployment=store.get_deployment(session, deployment_id=deployment_id),
                          event=Event.START)
        raise RuntimeError("crash before commit")
    with store.session_scope(engine) as session:
        assert store.get_deployment(session, deployment_id=deployment_id).status is Status.QUEUED
        assert store.recent_audit(session) == []
    with pytest.raises(InvalidTransition), store.session_scope(engine) as session:
        store.apply_event(session, deployment=store.get_deployment(session, deployment_id=deployment_id),
                          event=Event.ROLLBACK_DONE)


def test_active_deployment_commands_and_hosts(engine: Engine) -> None:
    first = new_deployment(engine)
    with store.session_scope(engine) as session:
        assert store.active_deployment(session).id == first
        store.add_command(session, kind=CommandKind.ABORT, actor="ana", deployment_id=first)
        state = store.host_state(session, name="host-0")
        state.desired_version = "b" * 40
    with store.session_scope(engine) as session:
        assert [c.kind for c in store.pending_commands(session)] == [CommandKind.ABORT]
        assert store.host_state(session, name="host-0").desired_version == "b" * 40


@pytest.fixture
def job_setup(tmp_path: Path, postgres_url: str) -> tuple[JobContext, Engine, str, str]:
    central = make_central_repo(tmp_path)
    good = central.commit("good", {"test_app.py": "def test_ok():\n    assert True\n", "app.txt": "v1\n"})
    bad = central.commit("bad", {"test_app.py": "def test_ok():\n    assert False, 'broken'\n"})
    central.push()
    ctx = JobContext(database_url=postgres_url, repository=str(central.bare), branch="main",
                     workdir=str(tmp_path / "work"), test_command="python -m pytest -q -p no:cacheprovider",
                     test_timeout_s=120)
    engine = store.make_engine(postgres_url)
    store.init_db(engine)
    return ctx, engine, good, bad


def stage_for(engine: Engine, sha: str, name: str) -> tuple[int, int]:
    deployment_id = new_deployment(engine, sha)
    with store.session_scope(engine) as session:
        stage = store.start_stage(session, deployment_id=deployment_id, name=name)
        return deployment_id, stage.id


def wait_stage(engine: Engine, deployment_id: int, name: str, timeout: float = 120):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.session_scope(engine) as session:
            stage = store.latest_stage(session, deployment_id=deployment_id, name=name)
            if stage is not None and stage.status is not StageStatus.RUNNING:
                return stage
        time.sleep(0.2)
    raise AssertionError(f"stage {name} of {deployment_id} did not finish")


def test_jobs_through_redis_and_an_rq_worker(job_setup: tuple[JobContext, Engine, str, str]) -> None:
    ctx, engine, good, bad = job_setup
    queue_name = f"deployer-test-{uuid.uuid4().hex[:8]}"
    queue = RqQueue(redis_url=REDIS, name=queue_name)
    good_dep, good_stage = stage_for(engine, good, "tests")
    bad_dep, bad_stage = stage_for(engine, bad, "tests")
    build_dep, build_stage = stage_for(engine, good, "build")
    queue.submit(f"tests-{good_dep}", run_tests_job, ctx, good_dep, good_stage)
    queue.submit(f"tests-{good_dep}", run_tests_job, ctx, good_dep, good_stage)  # not doubled
    queue.submit(f"tests-{bad_dep}", run_tests_job, ctx, bad_dep, bad_stage)
    queue.submit(f"build-{build_dep}", build_job, ctx, build_dep, build_stage)
    # A real worker process (forking, as in production), on its own queue, until the queue is empty.
    worker = subprocess.run(
        [sys.executable, "-c", "import sys; from deployer.queue import run_worker; "
         f"run_worker(redis_url={REDIS!r}, name={queue_name!r}, burst=True)"],
        capture_output=True, text=True, timeout=300)
    assert worker.returncode == 0, worker.stderr[-2000:]
    assert wait_stage(engine, good_dep, "tests").status is StageStatus.PASSED
    failed = wait_stage(engine, bad_dep, "tests")
    assert failed.status is StageStatus.FAILED and "broken" in failed.log
    assert wait_stage(engine, build_dep, "build").status is StageStatus.PASSED
    with store.session_scope(engine) as session:
        artifact = store.get_deployment(session, deployment_id=build_dep).artifact
    assert artifact and Path(artifact, "app.txt").read_text() == "v1\n"
    assert queue.failure(f"tests-{good_dep}") is None
    queue.close()


def test_in_process_queue_runs_jobs_once_and_reports_deaths(job_setup: tuple[JobContext, Engine, str, str]) -> None:
    ctx, engine, good, _ = job_setup
    queue = InProcessQueue(workers=2)
    deployment_id, stage_id = stage_for(engine, good, "tests")
    queue.submit("tests", run_tests_job, ctx, deployment_id, stage_id)
    assert wait_stage(engine, deployment_id, "tests").status is StageStatus.PASSED

    def explode() -> None:
        raise OSError("disk full")

    queue.submit("boom", explode)
    deadline = time.monotonic() + 10
    while queue.failure("boom") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert queue.failure("boom") == "OSError: disk full"
    queue.close()
