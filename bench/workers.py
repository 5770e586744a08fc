"""The same batch of test-and-build jobs for N commits on 1, 2 and 4 rq workers; one JSON line.

    python bench/workers.py [--commits 10] [--workers 1 2 4] [--redis-url redis://127.0.0.1:6379/0]

Each commit of a central repository seeded with the sample app gets a test job (the real
test command, `pipeline.test_command`) and a build job, queued on Redis before the workers
start. For each worker count: a fresh database and release folder, the jobs queued, then
N `deployer worker`-equivalent processes (burst mode); `wall_s` runs from starting the
workers to the last stage being recorded. `speedup` is the 1-worker wall time over the
N-worker one. `tests_median_s` / `build_median_s` are per stage, from being queued to being
recorded (so they include the wait for a free worker). The machine's CPU count and load average are printed too: on a shared
machine other work competes for the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis import Redis  # noqa: E402

from deployer import store  # noqa: E402
from deployer.demo import workspace as ws_ops  # noqa: E402
from deployer.demo.scenario import ScriptedCommit  # noqa: E402
from deployer.jobs import JobContext, build_job, run_tests_job  # noqa: E402
from deployer.model import Deployment, Release, StageStatus  # noqa: E402
from deployer.queue import RqQueue  # noqa: E402
from deployer.settings import PipelineSettings  # noqa: E402


def change(number: int) -> ScriptedCommit:
    """A harmless commit so each job works on a different tree."""
    return ScriptedCommit(f"bench-{number}", f"Benchmark change {number}", "Bench Mark", "good", "ship",
                          new_files={f"docs/bench-{number}.md": f"change {number}\n"})


def queue_jobs(ctx: JobContext, queue: RqQueue, shas: list[str]) -> tuple[list[int], str]:
    """A deployment per commit with a tests and a build stage, both jobs queued; returns ids and a prefix."""
    engine = store.open_database(ctx.database_url)
    prefix = uuid.uuid4().hex[:8]
    ids = []
    for sha in shas:
        with store.session_scope(engine) as session:
            release = Release(sha=sha, commit_shas=[sha])
            session.add(release)
            session.flush()
            deployment = Deployment(release_id=release.id, version=sha, wave_plan=[1, 2], waves=2)
            session.add(deployment)
            session.flush()
            tests = store.start_stage(session, deployment_id=deployment.id, name="tests")
            build = store.start_stage(session, deployment_id=deployment.id, name="build")
            assert deployment.id is not None
            ids.append(deployment.id)
            stages = (deployment.id, tests.id, build.id)
        queue.submit(f"{prefix}-tests-{stages[0]}", run_tests_job, ctx, stages[0], stages[1])
        queue.submit(f"{prefix}-build-{stages[0]}", build_job, ctx, stages[0], stages[2])
    engine.dispose()
    return ids, prefix


def finished(ctx: JobContext, ids: list[int]) -> list[Any] | None:
    """Every stage of the batch if all are recorded, else None."""
    engine = store.make_engine(ctx.database_url)
    try:
        with store.session_scope(engine) as session:
            stages = [s for d in ids for s in store.stages_of(session, deployment_id=d)]
        return stages if all(s.status is not StageStatus.RUNNING for s in stages) else None
    finally:
        engine.dispose()


def run_batch(root: Path, repo: Path, shas: list[str], workers: int, redis_url: str, test_command: str) -> dict[str, Any]:
    """Queue the batch, start `workers` workers, wait for every stage; the figures of this run."""
    run_dir = root / f"run-{workers}"
    ctx = JobContext(database_url=f"sqlite:///{run_dir / 'deployer.db'}", repository=str(repo), branch="main",
                     workdir=str(run_dir), test_command=test_command, test_timeout_s=600)
    queue_name = f"bench-workers-{uuid.uuid4().hex[:8]}"
    queue = RqQueue(redis_url=redis_url, name=queue_name, retries=0)
    ids, _ = queue_jobs(ctx, queue, shas)
    code = ("from deployer.queue import run_worker; "
            f"run_worker(redis_url={redis_url!r}, name={queue_name!r}, burst=True)")
    started = time.monotonic()
    processes = [subprocess.Popen([sys.executable, "-c", code], cwd=run_dir, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True) for _ in range(workers)]
    try:
        while (stages := finished(ctx, ids)) is None:
            if all(p.poll() is not None for p in processes):
                raise SystemExit(f"every worker exited with stages still running (queue {queue_name})")
            time.sleep(0.1)
        wall = time.monotonic() - started
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        queue.close()
        connection = Redis.from_url(redis_url)
        for key in connection.scan_iter(f"rq:*{queue_name}*"):
            connection.delete(key)
        connection.close()
    failed = [f"{s.name}: {s.detail}" for s in stages if s.status is not StageStatus.PASSED]
    if failed:
        raise SystemExit(f"{len(failed)} job(s) failed with {workers} worker(s): {failed}")
    durations = {name: [(s.finished_at - s.started_at).total_seconds() for s in stages if s.name == name]
                 for name in ("tests", "build")}
    return {"wall_s": round(wall, 2), "tests_median_s": round(median(durations["tests"]), 2),
            "build_median_s": round(median(durations["build"]), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--redis-url", default=os.environ.get("DEPLOYER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--test-command", default=PipelineSettings().test_command)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        root = Path(tmp)
        workspace = ws_ops.create(root / "ws", base_config={}, overrides={})
        shas: dict[str, str] = {}
        for number in range(args.commits):
            item = change(number)
            shas[item.key] = ws_ops.commit(workspace, item, shas)
        ws_ops.push(workspace)
        load_before = os.getloadavg()[0]
        runs = {n: run_batch(root, workspace.repo, list(shas.values()), n, args.redis_url, args.test_command)
                for n in args.workers}
    base = runs[args.workers[0]]["wall_s"]
    print(json.dumps({
        "commits": args.commits, "jobs": 2 * args.commits, "cpus": os.cpu_count(),
        "loadavg_1m_before": round(load_before, 2), "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "wall_s": {str(n): r["wall_s"] for n, r in runs.items()},
        "speedup": {str(n): round(base / r["wall_s"], 2) for n, r in runs.items()},
        "tests_median_s": {str(n): r["tests_median_s"] for n, r in runs.items()},
        "build_median_s": {str(n): r["build_median_s"] for n, r in runs.items()},
    }))


if __name__ == "__main__":
    main()
