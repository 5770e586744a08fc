"""The benchmark check's verdict: candidate vs target tip per route, with the canary judge's statistics.

Pure: rounds in, verdict out. Each metric (CPU and latency per request) of each route is
compared on a log scale with the Mann-Whitney U test and the Hodges-Lehmann interval of
canary/stats.py, so the shift reads as a ratio with its interval. As in the canary judge
(Kayenta's rule), a route fails when the change is statistically significant (the whole
interval above zero) AND its estimate is worse than the allowance: noise alone never fails
a commit, and a real but tiny change does not either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from canary.stats import mann_whitney_hl

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
            base, cand = base[base > 0], cand[cand > 0]
            if len(base) >= 3 and len(cand) >= 3:
                pairs.append((route, metric, base, cand))
    # Many routes and metrics are judged at once: Bonferroni keeps the chance that ANY of them
    # fails an unchanged commit at 1 - confidence, instead of that chance per comparison.
    each = 1.0 - (1.0 - confidence) / max(1, len(pairs))
    changes: list[RouteChange] = []
    for route, metric, base, cand in pairs:
        test = mann_whitney_hl(np.log(base), np.log(cand), each)
        change, lower, upper = (math.expm1(test.estimate), math.expm1(test.lower), math.expm1(test.upper))
        failed = lower > 0 and change > allowance
        changes.append(RouteChange(route, metric, float(np.median(base)), float(np.median(cand)),
                                   change, lower, upper, test.p_value, failed))
    worse = [c for c in changes if c.failed]
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
