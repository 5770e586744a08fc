"""The benchmark check's error rates and wall time; prints one JSON line.

    python bench/gate_check.py [--unchanged 20] [--slow-runs 5] [--rounds 12] [--requests 20]

Runs the required `bench` check exactly as the platform does (the app's benchmark at two
checkouts, rounds interleaved, judged per route with the canary statistics):
`--unchanged` times with the same code on both sides (every failure is a false fail),
and `--slow-runs` times each with the feed route 10%, 20% and 30% slower in CPU per
request (every pass is a miss). The slowdown is calibrated from the route's measured CPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deployer.bench_runner import Series, run_interleaved  # noqa: E402
from deployer.check_jobs import join_runs  # noqa: E402
from deployer.benchcheck import compare  # noqa: E402
from tests.gate_support import FEED, route_cpu_ms, slow_feed_source  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def checkout(dest: Path, feed_source: str | None = None) -> Path:
    """A copy of the app as the check would archive it; optionally with another feed.py."""
    shutil.copytree(ROOT / "sample_app", dest / "sample_app", ignore=shutil.ignore_patterns("__pycache__", "tests"))
    if feed_source is not None:
        (dest / FEED).write_text(feed_source)
    return dest


def one_check(target: Path, candidate: Path, args: argparse.Namespace) -> tuple[bool, float, str]:
    """One check as the platform runs it: a failing run is judged again with a second run's pairs."""
    started = time.monotonic()

    def run() -> tuple[Series, Series]:
        return run_interleaved(command=f"{sys.executable} -m sample_app.bench", target_dir=target,
                               candidate_dir=candidate, rounds=args.rounds, requests=args.requests, timeout_s=1800)

    base, cand = run()
    verdict = compare(base, cand, allowance=args.allowance / 100.0)
    if any(c.failed for c in verdict.changes):
        base2, cand2 = run()
        verdict = compare(join_runs(base, base2), join_runs(cand, cand2), allowance=args.allowance / 100.0)
    return verdict.passed, time.monotonic() - started, verdict.summary


def main() -> int:
    # SIGTERM runs the finally blocks too, so the benchmark processes of a check in progress are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unchanged", type=int, default=20)
    parser.add_argument("--slow-runs", type=int, default=5)
    parser.add_argument("--slowdowns", default="10,20,30", help="percent, comma-separated")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--allowance", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as folder:
        root = Path(folder)
        target = checkout(root / "target")
        same = checkout(root / "same")
        feed_cpu = route_cpu_ms(target, rounds=5, requests=args.requests)
        walls: list[float] = []
        false_fails = 0
        for _ in range(args.unchanged):
            passed, wall, summary = one_check(target, same, args)
            false_fails += not passed
            print(f"unchanged: {'pass' if passed else 'FAIL'} in {wall:.1f}s: {summary}", file=sys.stderr, flush=True)
            walls.append(wall)
        detection: dict[str, float] = {}
        original = (ROOT / FEED).read_text()
        for pct in [int(p) for p in args.slowdowns.split(",") if p.strip()]:
            slow = checkout(root / f"slow{pct}", slow_feed_source(original, feed_cpu * pct / 100.0))
            caught = 0
            for _ in range(args.slow_runs):
                passed, wall, summary = one_check(target, slow, args)
                caught += (not passed) and "route feed" in summary
                print(f"{pct}% slower: {'pass' if passed else 'FAIL'} in {wall:.1f}s: {summary}", file=sys.stderr,
                      flush=True)
                walls.append(wall)
            detection[f"{pct}%"] = round(caught / max(1, args.slow_runs), 3)
    print(json.dumps({"benchmark": "gate_check", "rounds": args.rounds, "requests": args.requests,
                      "allowance_pct": args.allowance, "feed_cpu_ms": round(feed_cpu, 3),
                      "unchanged_runs": args.unchanged, "false_fails": false_fails,
                      "false_fail_rate": round(false_fails / max(1, args.unchanged), 3),
                      "slow_runs_each": args.slow_runs, "detection": detection,
                      "check_wall_s_median": round(median(walls), 2) if walls else None,
                      "check_wall_s_max": round(max(walls), 2) if walls else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
