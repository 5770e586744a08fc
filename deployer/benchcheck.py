"""The benchmark check's verdict: candidate vs target tip per route, with the canary judge's statistics.

Pure: rounds in, verdict out. Each metric (CPU and latency per request) of each route is
compared on a log scale, so the shift reads as a ratio with its interval. The runner
alternates the two versions' rounds, so round i of each was measured side by side: the
comparison is paired (Wilcoxon signed-rank with its Hodges-Lehmann interval, from
canary/stats.py), which cancels what a pair shared (a machine that got busier mid-run)
and needs far fewer rounds than an unpaired test. Runs of unequal length (not paired)
fall back to the Mann-Whitney test the canary judge uses. As in the canary judge
(Kayenta's rule), a route fails when the change is statistically significant (the whole
interval above zero) AND its estimate is worse than the allowance: noise alone never fails
a commit, and a real but tiny change does not either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from canary.stats import ShiftTest, mann_whitney_hl, signed_rank_hl

METRICS = {"cpu_ms": "CPU per request", "latency_ms": "latency per request"}
Series = Mapping[str, Mapping[str, Sequence[float]]]  # route -> metric -> rounds


@dataclass(frozen=True)
class RouteChange:
    route: str
    metric: str
    baseline_ms: float
    candidate_ms: float
    change: float          # estimated relative change (0.3 = 30% worse)
    lower: float           # interval of the relative change
    upper: float
    p_value: float
    failed: bool

    def describe(self) -> str:
        """One line: route, metric, change with its interval."""
        return (f"route {self.route}: {METRICS.get(self.metric, self.metric)} {self.change:+.1%} "
                f"({self.baseline_ms:.3f} -> {self.candidate_ms:.3f} ms; {_pct(self.lower)} to {_pct(self.upper)})")


@dataclass(frozen=True)
class BenchVerdict:
    passed: bool
    summary: str
    changes: tuple[RouteChange, ...]

    def as_report(self) -> dict[str, object]:
        """JSON-ready form stored with the check."""
        return {"passed": self.passed, "summary": self.summary, "changes": [asdict(c) for c in self.changes]}


def _pct(value: float) -> str:
    return f"{value:+.1%}" if math.isfinite(value) else ("+inf" if value > 0 else "-inf")


def _shift(base_log: np.ndarray, cand_log: np.ndarray, confidence: float) -> ShiftTest:
    """Paired signed-rank when the rounds pair up one to one, else the unpaired rank-sum test."""
    if len(base_log) == len(cand_log):
        return signed_rank_hl(cand_log - base_log, confidence)
    return mann_whitney_hl(base_log, cand_log, confidence)


def compare(baseline: Series, candidate: Series, *, allowance: float = 0.10,
            confidence: float = 0.98) -> BenchVerdict:
    """Judge every route and metric present in both runs; `allowance` is a fraction (0.10 = 10%)."""
    routes = sorted(set(baseline) & set(candidate))
    missing = sorted(set(baseline) ^ set(candidate))
    pairs = []
    for route in routes:
        for metric in METRICS:
            base = np.asarray(baseline[route].get(metric, ()), dtype=float)
            cand = np.asarray(candidate[route].get(metric, ()), dtype=float)
            if len(base) == len(cand):
                keep = (base > 0) & (cand > 0)
                base, cand = base[keep], cand[keep]
            else:
                base, cand = base[base > 0], cand[cand > 0]
            if len(base) >= 3 and len(cand) >= 3:
                pairs.append((route, metric, base, cand))
    # Many routes and metrics are judged at once: Bonferroni keeps the chance that ANY of them
    # fails an unchanged commit at 1 - confidence, instead of that chance per comparison.
    each = 1.0 - (1.0 - confidence) / max(1, len(pairs))
    changes: list[RouteChange] = []
    decidable = 0
    for route, metric, base, cand in pairs:
        test = _shift(np.log(base), np.log(cand), each)
        decidable += math.isfinite(test.lower)
        change, lower, upper = (math.expm1(test.estimate), math.expm1(test.lower), math.expm1(test.upper))
        failed = lower > 0 and change > allowance
        changes.append(RouteChange(route, metric, float(np.median(base)), float(np.median(cand)),
                                   change, lower, upper, test.p_value, failed))
    worse = [c for c in changes if c.failed]
    if changes and not decidable:
        # With too few rounds no interval exists at this confidence: a check that cannot
        # fail must not pass as if it had looked.
        rounds = min(len(baseline[c.route].get(c.metric, ())) for c in changes)
        return BenchVerdict(False, f"{rounds} rounds are too few to show any change at {confidence:.0%} confidence "
                                   f"over {len(pairs)} comparisons; raise gate.bench_rounds", tuple(changes))
    if not changes:
        return BenchVerdict(False, "no route could be compared (too few rounds, or no route in common)", ())
    if worse:
        worst = max(worse, key=lambda c: c.change)
        more = f" and {len(worse) - 1} more" if len(worse) > 1 else ""
        return BenchVerdict(False, f"{worst.describe()} is worse than the {allowance:.0%} allowance{more}",
                            tuple(changes))
    note = f"; routes only in one run: {', '.join(missing)}" if missing else ""
    biggest = max(changes, key=lambda c: c.change)
    return BenchVerdict(True, f"no route is shown worse than {allowance:.0%} (largest: {biggest.describe()}){note}",
                        tuple(changes))
