"""Roll a release over 100, 1,000 and 10,000 SIMULATED hosts through the real controller; one JSON line per size.

    python bench/scale.py [--sizes 100,1000,10000] [--database sqlite|postgres] [--postgres-url URL]
                          [--max-unavailable 5%] [--bake 60s] [--start-median 2s] [--start-p95 3s]

The controller, the pipeline, the database (SQLite file, or a fresh PostgreSQL database),
the wave planner, the analysis window and the judge are the real ones; only the hosts are
simulated (deployer.fleet.sim) on a simulated clock, so 10 simulated minutes cost only the
controller's own work. Each size runs in its own process (peak memory is per size).
Figures, from the end of the build to the release having succeeded:
`sim_rollout_s` simulated wall time of the rollout; `cpu_ms_per_host` process CPU (the
controller and the simulator together) per host replaced; `db_statements_per_host`
statements sent to the database per host; `peak_rss_mb` the process's peak memory;
`tick_p95_ms` / `tick_max_ms` the controller's tick duration (real time).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, event, text  # noqa: E402

from deployer import store  # noqa: E402
from deployer.controller import Controller  # noqa: E402
from deployer.demo import workspace as ws_ops  # noqa: E402
from deployer.demo.scenario import ScriptedCommit  # noqa: E402
from deployer.fleet.sim import SimBuilder, SimClock, build_sim_fleet  # noqa: E402
from deployer.fleet.sim.drive import SimDriver  # noqa: E402
from deployer.fleet.sim.metrics import SimMetrics, sim_window_factory  # noqa: E402
from deployer.pipeline import Status  # noqa: E402
from deployer.queue import InProcessQueue  # noqa: E402
from deployer.runtime import build_source  # noqa: E402
from deployer.settings import load_settings  # noqa: E402

DEFAULT_PG = os.environ.get("DEPLOYER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def scratch_postgres(admin_url: str) -> tuple[str, Any]:
    """A fresh database on the server of `admin_url`, and a function that drops it."""
    name = f"scale_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin_url.rsplit("/", 1)[0] + "/" + name, drop


def run_one(args: argparse.Namespace, hosts: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        root = Path(tmp)
        drop = None
        db_url = f"sqlite:///{root / 'deployer.db'}"
        if args.database == "postgres":
            db_url, drop = scratch_postgres(args.postgres_url)
        try:
            return _rollout(args, hosts, root, db_url)
        finally:
            if drop is not None:
                drop()


def _rollout(args: argparse.Namespace, hosts: int, root: Path, db_url: str) -> dict[str, Any]:
    tick_s = 0.25
    overrides = {
        "source.repository": str(root / "ws" / "app.git"), "workdir": str(root / "ws" / "deployer"),
        "source.poll_interval": "30s", "pipeline.test_command": "true", "database.url": db_url,
        "fleet.backend": "sim", "fleet.hosts": hosts, "fleet.start_median": args.start_median,
        "fleet.start_p95": args.start_p95, "fleet.failure_rate": 0.0,
        "rollout.max_unavailable": args.max_unavailable, "rollout.canary_bake": args.bake,
        "rollout.wave_bake": args.bake, "rollout.warmup": "0s", "analysis.interval": "10s",
        "controller.tick": f"{tick_s}s", "controller.host_workers": args.workers}
    workspace = ws_ops.create(root / "ws", base_config={}, overrides=overrides)
    settings = load_settings(workspace.config, environ={})
    fleet_settings = settings.fleet
    clock = SimClock()
    fleet = build_sim_fleet(hosts=hosts, clock=clock, start_median_s=fleet_settings.start_median,  # type: ignore[union-attr]
                            start_p95_s=fleet_settings.start_p95, seed=1,  # type: ignore[union-attr]
                            healthy_checks=1, drain_s=0.0)
    engine = store.open_database(settings.database_url)
    statements = [0]

    @event.listens_for(engine, "before_cursor_execute")
    def _count(*_args: Any) -> None:
        statements[0] += 1

    assert settings.canary_config is not None
    windows = sim_window_factory(config=settings.canary_config, metrics=SimMetrics(fleet.runtime),
                                 interval_s=settings.analysis.interval, warmup_s=settings.rollout.warmup)
    queue = InProcessQueue(workers=2)
    controller = Controller(settings=settings, engine=engine, source=build_source(settings), builder=SimBuilder(),
                            fleet=fleet, queue=queue, windows=windows, clock=clock)
    driver = SimDriver(controller, clock, tick_s)
    try:
        driver.recover()
        sha = ws_ops.commit(workspace, ScriptedCommit("scale", "Scale benchmark change", "Bench Mark", "good",
                                                      "ship", new_files={"docs/scale.md": "scale\n"}), {})
        ws_ops.push(workspace)

        def status() -> Status | None:
            with store.session_scope(engine) as session:
                stamp = store.active_deployment_stamp(session)
                return store.get_deployment(session, deployment_id=stamp[0]).status if stamp else None

        # Tests and build run as real jobs in real time; the rollout starts at the canary.
        driver.run_until(lambda: status() is Status.CANARY, max_sim_s=3600, real_pause_s=0.02,
                         pause_while=lambda: True)
        driver.tick_wall_s.clear()
        statements[0] = 0
        started_hosts = fleet.runtime.started
        cpu0, sim0 = time.process_time(), clock.now()
        def finished() -> bool:
            with store.session_scope(engine) as session:
                return store.active_deployment_stamp(session) is None

        driver.run_until(finished, max_sim_s=6 * 3600)
        cpu, sim_s = time.process_time() - cpu0, clock.now() - sim0
        replaced = fleet.runtime.started - started_hosts
        with store.session_scope(engine) as session:
            last = store.recent_releases(session, limit=1)[0]
            outcome = store.deployment_of(session, release_id=last.id)
        ticks = sorted(driver.tick_wall_s)
        return {"benchmark": "scale", "database": args.database, "hosts": hosts, "release": last.status.value,
                **({} if last.status is Status.SUCCEEDED else {"reason": outcome.reason if outcome else ""}),
                "commit": sha[:12], "max_unavailable": args.max_unavailable, "bake": args.bake,
                "host_workers": args.workers, "sim_rollout_s": round(sim_s, 1), "hosts_replaced": replaced,
                "cpu_ms_per_host": round(1000 * cpu / max(1, replaced), 3),
                "db_statements": statements[0],
                "db_statements_per_host": round(statements[0] / hosts, 3),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "ticks": len(ticks), "tick_p95_ms": round(1000 * ticks[int(0.95 * (len(ticks) - 1))], 2),
                "tick_max_ms": round(1000 * ticks[-1], 2)}
    finally:
        clock.release()
        controller.close()
        queue.close()
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_PG, help="a server where databases may be created")
    parser.add_argument("--max-unavailable", default="5%")
    parser.add_argument("--bake", default="60s", help="canary and wave bake (simulated)")
    parser.add_argument("--start-median", default="2s")
    parser.add_argument("--start-p95", default="3s")
    parser.add_argument("--workers", type=int, default=600, help="controller.host_workers")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args, args.one)), flush=True)
        return 0
    for size in (int(s) for s in args.sizes.split(",")):
        # One process per size: peak memory and caches belong to that size alone.
        cmd = [sys.executable, __file__, "--one", str(size), "--database", args.database,
               "--postgres-url", args.postgres_url, "--max-unavailable", args.max_unavailable, "--bake", args.bake,
               "--start-median", args.start_median, "--start-p95", args.start_p95, "--workers", str(args.workers)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        line = next((ln for ln in reversed(done.stdout.splitlines()) if ln.startswith("{")), None)
        if done.returncode != 0 or line is None:
            sys.stderr.write(done.stderr[-3000:])
            return done.returncode or 1
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
