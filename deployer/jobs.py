"""Long-running steps as queue jobs: module-level, take ids, safe to run twice.

A job records its outcome in the database (the stage row, and the artifact for a
build); the controller reads it from there on its next tick. So a job that runs on an
rq worker on another machine and one in the controller's own thread pool look the
same to the controller.
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from deployer import store
from deployer.fleet import build_builder
from deployer.fleet.base import Builder
from deployer.fleet.local.builder import ReleaseBuilder
from deployer.model import Deployment, Release, StageStatus
from deployer.settings import Settings
from deployer.source import GitSource
from deployer.tests_runner import run_tests

log = logging.getLogger(__name__)
_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


@dataclass(frozen=True)
class JobContext:
    """Everything a job needs, picklable so rq can carry it to a worker."""

    database_url: str
    repository: str
    branch: str
    workdir: str
    test_command: str
    test_timeout_s: float
    # The whole configuration, so a worker builds the artifact kind the fleet runs (directory, image).
    settings: Settings | None = None

    def source(self) -> GitSource:
        return GitSource(repository=self.repository, branch=self.branch,
                         mirror_dir=Path(self.workdir) / "mirror.git")

    def builder(self) -> Builder:
        """The fleet's builder, or a release-directory builder when no settings came along."""
        if self.settings is not None:
            return build_builder(self.settings, self.source())
        return ReleaseBuilder(source=self.source(), releases_dir=Path(self.workdir) / "releases")


def _engine(url: str) -> Engine:
    with _engines_lock:
        if url not in _engines:
            _engines[url] = store.make_engine(url)
        return _engines[url]


def _already_finished(ctx: JobContext, stage_id: int) -> bool:
    with store.session_scope(_engine(ctx.database_url)) as session:
        stage = session.get(store.Stage, stage_id)
        return stage is None or stage.status is not StageStatus.RUNNING


def run_tests_job(ctx: JobContext, deployment_id: int, stage_id: int) -> bool:
    """Run the test command at the deployment's commit and close the stage with the result."""
    if _already_finished(ctx, stage_id):
        return True
    engine = _engine(ctx.database_url)
    with store.session_scope(engine) as session:
        deployment = store.get_deployment(session, deployment_id=deployment_id)
        sha = deployment.version
    try:
        result = run_tests(source=ctx.source(), sha=sha, command=ctx.test_command,
                           timeout_s=ctx.test_timeout_s, runs_dir=Path(ctx.workdir) / "test-runs")
        passed, detail, output = result.passed, f"{result.reason} in {result.duration_s:.1f}s", result.log
    except Exception as exc:  # a broken checkout is a failed test step, not a stuck one
        log.exception("test run for deployment %s crashed", deployment_id)
        passed, detail, output = False, f"test run could not start: {exc}", traceback.format_exc()
    with store.session_scope(engine) as session:
        store.finish_stage(session, stage_id=stage_id, passed=passed, detail=detail, log=output)
    return passed


def build_job(ctx: JobContext, deployment_id: int, stage_id: int) -> str | None:
    """Build the deployment's artifact, record where it is and close the stage."""
    if _already_finished(ctx, stage_id):
        return None
    engine = _engine(ctx.database_url)
    with store.session_scope(engine) as session:
        sha = store.get_deployment(session, deployment_id=deployment_id).version
    try:
        artifact = ctx.builder().build(sha)
    except Exception as exc:
        log.exception("build of %s failed", sha[:12])
        with store.session_scope(engine) as session:
            store.finish_stage(session, stage_id=stage_id, passed=False, detail=f"build failed: {exc}",
                               log=traceback.format_exc())
        return None
    with store.session_scope(engine) as session:
        deployment = session.get(Deployment, deployment_id)
        if deployment is not None:
            deployment.artifact = artifact.location
            session.add(deployment)
            release = session.get(Release, deployment.release_id)
            if release is not None:
                release.artifact = artifact.location
                session.add(release)
        store.finish_stage(session, stage_id=stage_id, passed=True, detail=f"built {artifact.location}")
    return artifact.location
