"""Anytime-valid tests on counts beyond the 5xx errors, PURE: unexpected answers and the latency tail.

Both reduce to the same question as the error test of ``canary.sequential``: is the canary's
share of "bad" requests higher than the baseline's by more than allowed? Bad is:

- **unexpected answers**: any status that is neither 2xx nor 3xx. Expected 4xx (a stale
  link's 404) stay expected because the baseline answers them as often, and only a higher
  *rate* on the canary counts.
- **slow requests**: requests slower than the baseline's q-quantile (p95, p99), read from
  the cumulative latency buckets pooled over the bake. The bound is learned from the
  baseline's first ``latencyTail.learnIntervals`` intervals and the test runs on the intervals
  after them, so the bound never depends on the data it is tested on and the e-process keeps
  its guarantee; a regression that slows 5% of requests by a second is then visible even when
  every interval holds a handful of requests and its p99 is simply its slowest request.

Each test runs pooled and per route (series from ``canary.samples.route_series``). A
family's alpha is split by weighted Bonferroni: half to the pooled tests (what most users
feel, and where most evidence is), half shared evenly by the routes' tests; the alphas
still sum to the family's, so the chance that any test of a good canary fails stays below
it whatever the number of routes, while a regression spread over many routes is not
diluted into a threshold ten routes high. A route with too little traffic for a decision
is reported as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import betaincinv

from .config_model import CanaryConfig
from .samples import Samples, bucket_bounds, route_series, split_route_series
from .sequential import ErrorCounts, fail_evalues, first_crossing
from .verdict import Classification, Explanation, MetricResult, Rule


@dataclass
class CountOutcome:
    """Rows of every count test, the earliest crossing and the routes too thin to judge alone."""

    rows: list[MetricResult] = field(default_factory=list)
    crossed_at: int | None = None
    failing: MetricResult | None = None
    thin_routes: list[str] = field(default_factory=list)

    def worst_route(self, pooled: MetricResult) -> MetricResult | None:
        """Return the route whose version of a pooled test has the most evidence against the canary."""
        same = [r for r in self.rows if r.route is not None and r.name.split("@")[0] == pooled.name]
        return max(same, key=lambda r: r.explanation.e_value or 0.0, default=None)

    def add(self, row: MetricResult, crossed: int | None) -> None:
        """Record one test's row; keep the earliest crossing."""
        self.rows.append(row)
        if crossed is not None and (self.crossed_at is None or crossed < self.crossed_at):
            self.crossed_at, self.failing = crossed, row


def _fmt(v: float) -> str:
    """Format a number compactly."""
    if not math.isfinite(v):
        return "inf" if v > 0 else "nan"
    return f"{v:.3g}"


def ratio_interval(bad_c: int, n_c: int, bad_b: int, n_b: int, confidence: float) -> tuple[float, float]:
    """Return a confidence interval for (canary rate / baseline rate) from pooled counts.

    Conditional on the total of bad requests, the canary's share of them is binomial with
    q = theta rho / (theta rho + 1 - rho) (rho: canary share of requests); a Clopper-Pearson
    interval for q maps monotonically to one for theta.
    """
    total = bad_c + bad_b
    if total == 0 or n_c == 0 or n_b == 0:
        return (0.0, math.inf)
    a = 1.0 - confidence
    lo_q = float(betaincinv(bad_c, total - bad_c + 1, a / 2)) if bad_c > 0 else 0.0
    hi_q = float(betaincinv(bad_c + 1, total - bad_c, 1 - a / 2)) if bad_c < total else 1.0
    rho = n_c / (n_c + n_b)

    def theta(q: float) -> float:
        return math.inf if q >= 1.0 else q * (1 - rho) / (rho * (1 - q))

    return (theta(lo_q), theta(hi_q))


def count_test(name: str, group: str, rule: Rule, what: str, bad: tuple[list[float], list[float]],
               requests: tuple[list[float], list[float]], allowed: float, alpha: float,
               route: str | None, offset: int = 0) -> tuple[MetricResult, int | None]:
    """Run the fail e-process on (baseline, canary) bad/request counts; return its row and crossing."""
    counts = ErrorCounts.from_values(bad[1], requests[1], bad[0], requests[0])
    ce, cr, be, br = counts.totals()
    path = fail_evalues(counts, allowed)
    threshold = 1.0 / alpha
    crossed = first_crossing(path, threshold)
    e_max = float(path.max()) if len(path) else 1.0
    rate_c = ce / cr if cr else math.nan
    rate_b = be / br if br else math.nan
    lo, hi = ratio_interval(ce, cr, be, br, 1.0 - alpha)
    ratio = (rate_c / rate_b) if be and br else (math.inf if ce else 1.0)
    cls = Classification.HIGH if crossed is not None else (
        Classification.NODATA if cr == 0 or br == 0 else Classification.PASS)
    where = f" on {route}" if route else ""
    decision = (f"shown above x{_fmt(allowed)} the baseline's (e-value {_fmt(e_max)} >= {_fmt(threshold)})"
                if crossed is not None else f"not shown above x{_fmt(allowed)} (max e-value {_fmt(e_max)})")
    note = (f"{what}{where}: canary {ce}/{cr} ({_fmt(100 * rate_c)}%), baseline {be}/{br} ({_fmt(100 * rate_b)}%); "
            f"ratio x{_fmt(ratio)} [{_fmt(lo)}, {_fmt(hi)}] at {1 - alpha:.2%}; {decision}")
    expl = Explanation(rule, br, cr, rate_b, rate_c, ratio, (lo, hi), 1.0 - alpha, ratio,
                       {"eValue": threshold, "allowedIncrease": allowed}, None, e_max, note)
    row = MetricResult(name, group, cls, True, expl, counted=False, critical_failure=crossed is not None, route=route)
    return row, None if crossed is None else crossed + offset


def split_alpha(alpha: float, routes: list[str | None]) -> list[float]:
    """Each test's alpha (weighted Bonferroni): pooled tests (route None) share half, route tests the other half.

    With only pooled or only route tests, they share all of it. The alphas sum to `alpha`.
    """
    pooled = sum(r is None for r in routes)
    per_route = len(routes) - pooled
    if pooled == 0 or per_route == 0:
        return [alpha / len(routes)] * len(routes)
    return [alpha / 2 / pooled if r is None else alpha / 2 / per_route for r in routes]


def routes_of(samples: Samples, series: str) -> list[str]:
    """Return the routes for which samples hold a per-route version of series, sorted."""
    out = set()
    for name in samples.series:
        parts = split_route_series(name)
        if parts is not None and parts[1] == series:
            out.add(parts[0])
    return sorted(out)


def _total(values: list[float] | None) -> float:
    """Sum of a series, missing values left out."""
    return float(np.nansum(np.asarray(values, dtype=float))) if values else 0.0


def success_rate(config: CanaryConfig, baseline: Samples, canary: Samples, out: CountOutcome) -> None:
    """Test unexpected answers pooled and per route (alpha split over all of them)."""
    sr = config.success_rate
    if not sr.enabled:
        return
    tests: list[tuple[str | None, str, str]] = []
    if all(s.get(name) is not None for s in (baseline, canary) for name in (sr.unexpected, sr.requests)):
        tests.append((None, sr.unexpected, sr.requests))
    if config.routes.enabled:
        both = set(routes_of(baseline, sr.unexpected)) & set(routes_of(canary, sr.unexpected))
        for route in sorted(both):
            bad, req = route_series(route, sr.unexpected), route_series(route, sr.requests)
            if all(s.get(name) is not None for s in (baseline, canary) for name in (bad, req)):
                tests.append((route, bad, req))
    if not tests:
        return
    alphas = split_alpha(sr.alpha, [route for route, _, _ in tests])
    for (route, bad, req), alpha in zip(tests, alphas, strict=True):
        name = "unexpected_answers" + (f"@{route}" if route else "")
        row, crossed = count_test(name, "errors", Rule.SUCCESS_RATE, "unexpected (non-2xx/3xx) answers",
                                  (baseline.series[bad], canary.series[bad]),
                                  (baseline.series[req], canary.series[req]), sr.allowed_increase, alpha, route)
        out.add(row, crossed)
        if route is not None:
            _mark_thin(config, route, baseline.series[req], canary.series[req], row, out)


def _mark_thin(config: CanaryConfig, route: str, b_req: list[float], c_req: list[float], row: MetricResult,
               out: CountOutcome) -> None:
    """Say when a route served too few requests on a side for anything but a total break to show."""
    least = min(_total(b_req), _total(c_req))
    if least < config.routes.min_requests and row.classification is not Classification.HIGH:
        row.explanation.note += (f"; too little traffic to judge this route on its own ({least:.0f} < "
                                 f"{config.routes.min_requests} requests on a side): it counts in the pooled tests")
        if route not in out.thin_routes:
            out.thin_routes.append(route)


def tail_bound(buckets: list[tuple[float, list[float]]], upto: int, q: float) -> float | None:
    """Return the smallest bucket bound holding at least a share q of the first ``upto`` intervals' requests."""
    totals = [(le, _total(values[:upto])) for le, values in buckets]
    if not totals or totals[-1][1] <= 0:
        return None
    everything = max(t for _, t in totals)
    for le, count in totals:
        if count >= q * everything:
            return None if math.isinf(le) else le
    return None


def _slow(buckets: dict[float, list[float]], bound: float) -> tuple[list[float], list[float]]:
    """Return per-interval (slow requests above bound, all requests) from cumulative buckets."""
    total = np.asarray(buckets[math.inf], dtype=float)
    within = np.asarray(buckets[bound], dtype=float)
    return list(np.maximum(total - within, 0.0)), list(total)


def latency_tail(config: CanaryConfig, baseline: Samples, canary: Samples, out: CountOutcome) -> None:
    """Test the share of requests slower than the baseline's p95/p99, pooled and per route."""
    lt = config.latency_tail
    learn = lt.learn_intervals
    n = min(len(baseline), len(canary))
    if not lt.enabled or n <= learn:
        return
    prefixes: list[tuple[str | None, str]] = [(None, "")]
    if config.routes.enabled:
        prefixes += [(r, route_series(r, "")) for r in routes_of(baseline, "requests")]
    plans: list[tuple[str | None, float, float, dict[float, list[float]], dict[float, list[float]]]] = []
    for route, prefix in prefixes:
        b_b = {le: baseline.series[name] for le, name in bucket_bounds(baseline.series, prefix)}
        c_b = {le: canary.series[name] for le, name in bucket_bounds(canary.series, prefix)}
        if math.inf not in b_b or set(b_b) != set(c_b):
            continue
        if route is not None and _total(b_b[math.inf][:learn]) < config.routes.min_requests:
            continue  # too few baseline requests to place its p95 on this route yet
        bounds: set[float] = set()
        top: float | None = None
        for q in sorted(lt.quantiles):
            bound = tail_bound(sorted(b_b.items()), learn, q)
            # Two quantiles in one bucket would be the same test twice, spending alpha for nothing.
            if bound is not None and bound not in bounds:
                bounds.add(bound)
                plans.append((route, q, bound, b_b, c_b))
                top = bound
        if top is not None and lt.far_multiple > 0:
            far = next((le for le in sorted(b_b) if le >= lt.far_multiple * top and le > top), math.inf)
            if math.isfinite(far) and far not in bounds:
                plans.append((route, -lt.far_multiple, far, b_b, c_b))
    if not plans:
        return
    alphas = split_alpha(lt.alpha, [plan[0] for plan in plans])
    for (route, q, bound, b_b, c_b), alpha in zip(plans, alphas, strict=True):
        b_slow, b_all = _slow(b_b, bound)
        c_slow, c_all = _slow(c_b, bound)
        top_q = max(lt.quantiles)
        label = f"p{q * 100:g}" if q > 0 else f"{-q:g}x_p{top_q * 100:g}"
        name = f"latency_tail_{label}" + (f"@{route}" if route else "")
        described = (f"the baseline's {label}" if q > 0 else
                     f"{-q:g} x the baseline's p{top_q * 100:g}, next bucket bound")
        what = f"requests slower than {bound:g} s ({described} over its first {learn} intervals)"
        row, crossed = count_test(name, lt.group, Rule.LATENCY_TAIL, what, (b_slow[learn:], c_slow[learn:]),
                                  (b_all[learn:], c_all[learn:]), lt.allowed_increase, alpha, route, offset=learn)
        out.add(row, crossed)


def count_tests(config: CanaryConfig, baseline: Samples, canary: Samples) -> CountOutcome:
    """Run the unexpected-answer and latency-tail tests on aligned samples."""
    out = CountOutcome()
    success_rate(config, baseline, canary, out)
    latency_tail(config, baseline, canary, out)
    return out
