"""A realistic release history written straight into the database, for dashboard tests and the bench.

Bulk inserts (SQLAlchemy Core) so 10,000 releases and 100,000 audit events take seconds.
Every 7th release fails its canary (with a verdict and series), every 11th fails its tests,
the last one is in flight; a few bisect and rollback releases are mixed in.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine import Engine

from deployer.model import (
    AuditEvent,
    Commit,
    CommitStatus,
    Deployment,
    HostRole,
    HostState,
    Release,
    ReleaseKind,
    Stage,
    StageStatus,
    Verdict,
)
from deployer.pipeline import Phase, Status

AUTHORS = ["ana", "ben", "chloe", "dev", "emil", "fatima", "goran", "hana"]


def sha_of(i: int) -> str:
    return hashlib.sha1(f"commit-{i}".encode()).hexdigest()


def failing_report(intervals: int = 12) -> dict[str, Any]:
    """A canary verdict whose error rate is far above the baseline's, with the series charted."""
    canary = [0.0, 0.01, 0.2, 0.35, 0.4, 0.38, 0.41, 0.39, 0.4, 0.42, 0.4, 0.39][:intervals]
    baseline = [0.0] * len(canary)
    return {
        "verdict": "fail", "score": 0.0, "reason": "sequential error test: e-value 141 >= 100",
        "interval_s": 2.0,
        "metrics": {"error_rate": {"name": "error_rate", "group": "errors", "classification": "high",
                                   "critical": True, "counted": True,
                                   "explanation": {"rule": "sequential-errors", "n_baseline": len(canary),
                                                   "n_canary": len(canary), "baseline_mean": 0.0,
                                                   "canary_mean": 0.33, "estimate": 0.33, "interval": [0.2, 0.4],
                                                   "confidence": 0.98, "effect_size": None, "threshold": {},
                                                   "p_value": None, "e_value": 141.0,
                                                   "note": "canary 8/20 errors, baseline 0/20: far more errors"}},
                    "latency_p99": {"name": "latency_p99", "group": "latency", "classification": "pass",
                                    "critical": False, "counted": True,
                                    "explanation": {"rule": "mann-whitney", "n_baseline": len(canary),
                                                    "n_canary": len(canary), "baseline_mean": 0.05,
                                                    "canary_mean": 0.051, "estimate": 0.001, "interval": [-0.01, 0.01],
                                                    "confidence": 0.98, "effect_size": 1.02, "threshold": {},
                                                    "p_value": 0.6, "e_value": None, "note": "no difference"}}},
        "series": {"error_rate": {"canary": canary, "baseline": baseline},
                   "latency_p99": {"canary": [0.05 + 0.001 * (i % 3) for i in range(len(canary))],
                                   "baseline": [0.05] * len(canary)}},
    }


@dataclass
class History:
    releases: int
    hosts: int
    events: int
    last_good: int
    failed_canary: int
    failed_tests: int
    active: int | None


def seed_history(engine: Engine, *, releases: int = 40, hosts: int = 6, events: int = 0,
                 active: bool = True, seed: int = 7) -> History:
    """Write `releases` releases (one commit each, oldest first), `hosts` hosts and about `events` audit events."""
    rng = random.Random(seed)
    start = datetime.now(timezone.utc) - timedelta(minutes=15 * releases + 60)
    commit_rows, release_rows, deployment_rows, stage_rows, verdict_rows, event_rows = [], [], [], [], [], []
    last_good = failed_canary = failed_tests = 0
    active_id: int | None = None
    good_sha = sha_of(0)
    for i in range(1, releases + 1):
        sha = sha_of(i)
        created = start + timedelta(minutes=15 * i)
        in_flight = active and i == releases
        kind = ReleaseKind.DEPLOY
        if i % 7 == 0 and not in_flight:
            status = Status.ROLLED_BACK
            failed_canary = i
        elif i % 11 == 0 and not in_flight:
            status = Status.TESTS_FAILED
            failed_tests = i
        elif in_flight:
            status = Status.CANARY
            active_id = i
        else:
            status = Status.SUCCEEDED
            if i % 13 == 0:
                kind = ReleaseKind.ROLLBACK
        finished = None if in_flight else created + timedelta(seconds=rng.randint(40, 300))
        commit_status = {Status.SUCCEEDED: CommitStatus.SHIPPED, Status.ROLLED_BACK: CommitStatus.BAD,
                         Status.TESTS_FAILED: CommitStatus.BAD}.get(status, CommitStatus.PENDING)
        commit_rows.append(dict(sha=sha, position=i, author=AUTHORS[i % len(AUTHORS)],
                                message=f"change number {i}\n\nbody", committed_at=created - timedelta(minutes=3),
                                discovered_at=created - timedelta(minutes=2), status=commit_status, release_id=i))
        release_rows.append(dict(id=i, sha=sha, kind=kind, previous_sha=good_sha, commit_shas=[sha], status=status,
                                 artifact=f"/releases/{sha}", started_by="controller", created_at=created,
                                 finished_at=finished))
        deployment_rows.append(dict(
            id=i, release_id=i, status=status, phase=Phase.BAKING if in_flight else None, wave=0, waves=3,
            extensions=0, max_extensions=2, wave_plan=[1, 2, hosts], host_order=[f"host-{h}" for h in range(hosts)],
            canary_hosts=["host-0"], baseline_hosts=[f"host-{hosts - 1}"], version=sha, previous_version=good_sha,
            artifact=f"/releases/{sha}", previous_artifact=f"/releases/{good_sha}",
            reason="wave 0 analysis: fail: sequential error test" if status is Status.ROLLED_BACK else "",
            aborted=False, skip_analysis=False, bake_started_at=created + timedelta(seconds=30),
            last_verdict=failing_report() if status is Status.ROLLED_BACK else None, created_at=created,
            updated_at=finished or created, finished_at=finished))
        stage_rows.append(dict(deployment_id=i, name="tests", status=StageStatus.FAILED if status is Status.TESTS_FAILED
                               else StageStatus.PASSED, started_at=created, finished_at=created + timedelta(seconds=12),
                               detail="pytest", log="....F\n1 failed" if status is Status.TESTS_FAILED else "....\n4 passed"))
        if status is not Status.TESTS_FAILED:
            stage_rows.append(dict(deployment_id=i, name="build", status=StageStatus.PASSED,
                                   started_at=created + timedelta(seconds=12),
                                   finished_at=created + timedelta(seconds=15), detail="built", log=""))
        if status is Status.ROLLED_BACK:
            verdict_rows.append(dict(deployment_id=i, wave=0, result="fail", score=0.0,
                                     reason="sequential error test: e-value 141 >= 100", report=failing_report(),
                                     intervals=12, at=created + timedelta(seconds=60)))
        if status is Status.SUCCEEDED:
            good_sha = sha
            last_good = i
        for step, (a, b) in enumerate([("queued", "testing"), ("testing", "building"), ("building", "canary/deploying")]):
            event_rows.append(dict(at=created + timedelta(seconds=step * 5), actor="controller", kind="transition",
                                   deployment_id=i, release_id=i, from_status=a, to_status=b, event="start",
                                   message="", data={}))
    filler = max(0, events - len(event_rows))
    for j in range(filler):
        i = rng.randint(1, releases)
        event_rows.append(dict(at=start + timedelta(seconds=j), actor=rng.choice(AUTHORS + ["controller"]),
                               kind=rng.choice(["command", "lock", "unlock", "commit_discovered", "transition"]),
                               deployment_id=i, release_id=i, from_status=None, to_status=None, event=None,
                               message=f"event {j}", data={}))
    host_rows = [dict(name=f"host-{h}", address=f"127.0.0.1:{9100 + h}", desired_version=good_sha,
                      desired_artifact=f"/releases/{good_sha}", restart_generation=0, restarted_generation=0,
                      observed_version=good_sha, healthy=True,
                      role=HostRole.CANARY if h == 0 and active else HostRole.IDLE, deployment_id=None,
                      updated_at=start, detail="") for h in range(hosts)]
    with engine.begin() as conn:
        for model, rows in ((Release, release_rows), (Commit, commit_rows), (Deployment, deployment_rows),
                            (Stage, stage_rows), (Verdict, verdict_rows), (HostState, host_rows)):
            for k in range(0, len(rows), 2000):
                conn.execute(insert(model), rows[k:k + 2000])  # type: ignore[arg-type]
        for k in range(0, len(event_rows), 5000):
            conn.execute(insert(AuditEvent), event_rows[k:k + 5000])
        if engine.dialect.name == "postgresql":
            # Explicit ids do not move PostgreSQL's sequences: move them past what was written.
            for table in ("release", "deployment"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
    return History(releases=releases, hosts=hosts, events=len(event_rows), last_good=last_good,
                   failed_canary=failed_canary, failed_tests=failed_tests, active=active_id)
