"""Accuracy and speed of the canary judge against two reference judges, on seeded simulated canaries.

Run: ``python bench/judge_accuracy.py [--seed N] [--scenarios K] [--workers W] [--quick]``; prints ONE JSON line.

Every scenario is a pair of per-interval series (baseline, canary) generated from request-level
simulation: Poisson traffic on a shared load wave, per-request latencies from a lognormal with
slow outliers, observed through the sample app's histogram buckets (p99 as histogram_quantile
computes it), CPU accounted in 10 ms ticks, RSS with warm-up, garbage-collection noise and
allocator steps. No-regression scenarios add the noise real fleets have: an uneven traffic
split, hosts a few percent faster or slower, memory levels that differ, shared error bursts
from a dependency, and canaries that are slightly better. Regression scenarios inject one
fault of a given kind and size into the canary only.

The three judges see the same data:
- ``ours``: ``canary.judge.replay`` with the default configuration (watches every interval);
- ``kayenta_style``: Kayenta's NetflixACAJudge on the whole window: Mann-Whitney per metric at
  98% confidence with the same effect sizes, directions, critical flags, groups, weights and
  score thresholds (written here from scipy, independent of canary/);
- ``flagger_style``: Flagger's analysis: every interval, the canary's error rate and p99 are
  checked against fixed limits (1% errors, or 3x the service's known background rate if
  higher; 500 ms p99); rollback after 5 failed checks, promotion after the last iteration.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from canary.config import (  # noqa: E402
    DEFAULT_CONFIG,
    CanaryConfig,
    Direction,
    EffectSize,
    MetricConfig,
    OutlierStrategy,
)
from canary.counters import histogram_quantile  # noqa: E402
from canary.judge import replay  # noqa: E402
from canary.samples import Samples, bucket_series, route_series  # noqa: E402

INTERVAL_S = 2.0
WINDOW = 20  # intervals: a 40 s bake, the upper end of the demo's bake
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, math.inf)
# Routes as the sample app labels them, and their usual shares of the traffic: faults on latency
# and CPU hit the feed, error faults hit likes, the small route is a sign-up-like one.
FEED, LIKE, SMALL, OTHER = "/api/feed", "/api/posts/{post_id}/like", "/api/users", "/"
ROUTES = (FEED, LIKE, SMALL, OTHER)
FEED_SHARE = 0.4
LIKE_SHARE = 0.2
SMALL_SHARE = 0.03

# kind -> (description, is_regression); the "clear error regression" is errors_10pct.
KINDS: dict[str, tuple[str, bool]] = {
    "none": ("no change, realistic noise", False),
    "none_better": ("canary slightly faster and with fewer errors", False),
    "none_expected_4xx": ("10-20% of one route's answers are expected 4xx on both sides", False),
    "none_noisy_route": ("one route's latency and 4xx swing wildly on both sides", False),
    "none_few_requests_route": ("one route gets 0.5% of the traffic", False),
    "none_idle_cpu": ("fixed CPU (idle work, background threads) larger than per-request CPU", False),
    "none_memory_walk": ("resident memory wanders (a random walk) on both sides", False),
    "errors_2pct": ("2% of all requests fail (10% of likes)", True),
    "errors_10pct": ("half of the likes fail: 10% of all requests", True),
    "errors_25pct": ("every like and a few more fail: 25% of requests", True),
    "errors_x3_x5_3rps": ("error rate x3-x5 over a 1-5% background, at 3 requests/s", True),
    "route_4xx": ("5-50% of one route's answers become 4xx", True),
    "small_route_broken": ("a route of 2-10% of the traffic answers every request with 5xx", True),
    "latency_feed_150ms": ("+150 ms on the feed route", True),
    "latency_x2": ("every request twice as slow", True),
    "latency_tail": ("5-10% of requests slower by 0.5-2 s", True),
    "cpu_feed_20ms": ("+20 ms CPU per feed request", True),
    "cpu_x1_6": ("60% more CPU per request", True),
    "cpu_5_30ms": ("+5-30 ms CPU per request", True),
    "cpu_x1_6_idle_heavy": ("60% more CPU per request where fixed CPU exceeds request CPU", True),
    "memory_leak_10pct_min": ("canary RSS grows 10% of its level per minute", True),
    "memory_leak_40pct_min": ("canary RSS grows 40% of its level per minute", True),
    "memory_leak_walk": ("0.5-1 MB per interval leak while memory wanders (a random walk)", True),
}
NULL_SHARE = 0.5  # half the scenarios are no-regression ones, to measure false fails tightly


@dataclass(frozen=True)
class Env:
    """The service and fleet a scenario runs on (shared by both sides)."""

    rate: float  # requests per second per side
    p_err: float  # background error rate
    p_4xx: float  # background share of expected 4xx (stale links, duplicate sign-ups) on OTHER
    lat_median: float
    lat_sigma: float
    cpu_per_req: float
    cpu_idle: float
    rss_level: float
    rss_walk: float  # step of the random walk of resident memory, bytes per interval (0: none)
    shares: tuple[float, float, float, float]  # FEED, LIKE, SMALL, OTHER


def _environment(rng: np.random.Generator, kind: str) -> Env:
    """Draw a service: demo scale (5 req/s per host) up to a busier one (60 req/s)."""
    rate = float(math.exp(rng.uniform(math.log(5), math.log(60))))
    p_err = 0.0 if rng.random() < 0.4 else float(math.exp(rng.uniform(math.log(5e-4), math.log(0.02))))
    cpu_idle = float(rng.uniform(0.002, 0.01))
    small = SMALL_SHARE
    if kind == "errors_x3_x5_3rps":
        rate, p_err = 3.0, float(rng.uniform(0.01, 0.05))
    elif kind == "small_route_broken":
        small = float(rng.uniform(0.02, 0.10))
    elif kind == "none_few_requests_route":
        small = 0.005
    if kind in ("none_idle_cpu", "cpu_x1_6_idle_heavy"):
        cpu_idle = float(rng.uniform(0.05, 0.2))  # per second: several times the request CPU
    walk = float(rng.uniform(0.1e6, 0.3e6)) if kind in ("none_memory_walk", "memory_leak_walk") else 0.0
    return Env(
        rate=rate, p_err=p_err, p_4xx=float(rng.uniform(0.0, 0.05)),
        lat_median=float(rng.uniform(0.002, 0.03)),
        lat_sigma=float(rng.uniform(0.3, 0.7)),
        cpu_per_req=float(rng.uniform(0.001, 0.004)),
        cpu_idle=cpu_idle,
        rss_level=float(rng.uniform(40e6, 200e6)),
        rss_walk=walk,
        shares=(FEED_SHARE, LIKE_SHARE, small, 1.0 - FEED_SHARE - LIKE_SHARE - small),
    )


@dataclass(frozen=True)
class Fault:
    """The size of the one fault a regression scenario injects (drawn once per scenario)."""

    route_4xx: float = 0.0
    errors_factor: float = 1.0
    tail_share: float = 0.0
    tail_delay: float = 0.0
    cpu_add: float = 0.0
    leak_bytes: float = 0.0


def _fault(rng: np.random.Generator, kind: str) -> Fault:
    """Draw the fault's size within the kind's range."""
    return Fault(
        route_4xx=float(rng.uniform(0.05, 0.5)),
        errors_factor=float(rng.uniform(3.0, 5.0)),
        tail_share=float(rng.uniform(0.05, 0.10)),
        tail_delay=float(rng.uniform(0.5, 2.0)),
        cpu_add=float(rng.uniform(0.005, 0.030)),
        leak_bytes=float(rng.uniform(0.5e6, 1.0e6)),
    )


def _side(env: Env, rng: np.random.Generator, wave: np.ndarray, burst: np.ndarray, noisy: np.ndarray, share: float,
          speed: float, kind: str, fault: Fault, canary: bool) -> dict[str, list[float]]:
    """Simulate one side (baseline or canary) request by request and aggregate per interval and route."""
    f = kind if canary else "none"
    n_int = len(wave)
    requests = rng.poisson(env.rate * INTERVAL_S * wave * 2 * share)
    p_err = env.p_err + burst
    if f == "none_better":
        p_err = p_err * 0.7
    elif f == "errors_x3_x5_3rps":
        p_err = p_err * fault.errors_factor
    nb = len(BUCKETS)
    out: dict[str, np.ndarray] = {name: np.zeros(n_int) for name in (
        "errors", "unexpected", "latency_p99_s", "cpu_seconds", "handler_cpu_seconds")}
    per_route = np.zeros((n_int, len(ROUTES), 3))  # requests, errors, unexpected
    buckets = np.zeros((n_int, len(ROUTES), nb))
    shares = np.asarray(env.shares)
    for t in range(n_int):
        n = int(requests[t])
        route = rng.choice(len(ROUTES), n, p=shares)
        feed, like, small, other = (route == i for i in range(4))
        lat = env.lat_median * speed * rng.lognormal(0.0, env.lat_sigma, n)
        # Slow requests (GC pause, slow disk) on either side, a few per thousand.
        slow = rng.random(n) < 0.004
        lat[slow] += rng.uniform(0.05, 0.3, int(slow.sum()))
        p = np.full(n, p_err[t])
        p4 = np.where(other, env.p_4xx, 0.0)
        cost = env.cpu_per_req * speed * rng.gamma(4.0, 0.25, n)
        if kind == "none_expected_4xx":
            p4 = np.where(like, 0.15, p4)
        if kind == "none_noisy_route":  # both sides: the small route swings with a shared driver
            lat[small] *= noisy[t]
            p4 = np.where(small, min(0.5, 0.1 * noisy[t]), p4)
        if f == "errors_2pct":
            p[like] = np.maximum(p[like], 0.1)
        elif f == "errors_10pct":
            p[like] = np.maximum(p[like], 0.5)
        elif f == "errors_25pct":
            p[like] = 1.0
            p = np.maximum(p, 0.07)
        elif f == "route_4xx":
            p4 = np.where(like, p4 + fault.route_4xx, p4)
        elif f == "small_route_broken":
            p[small] = 1.0
        elif f == "latency_feed_150ms":
            lat[feed] += 0.15
        elif f == "latency_x2":
            lat *= 2.0
        elif f == "latency_tail":
            hit = rng.random(n) < fault.tail_share
            lat[hit] += fault.tail_delay
        elif f == "none_better":
            lat *= 0.9
        elif f == "cpu_feed_20ms":
            cost[feed] += 0.02
        elif f in ("cpu_x1_6", "cpu_x1_6_idle_heavy"):
            cost *= 1.6
        elif f == "cpu_5_30ms":
            cost += fault.cpu_add
        err = rng.random(n) < p
        unexpected = err | (rng.random(n) < p4)
        out["errors"][t] = float(err.sum())
        out["unexpected"][t] = float(unexpected.sum())
        for i in range(len(ROUTES)):
            sel = route == i
            per_route[t, i] = (sel.sum(), (err & sel).sum(), (unexpected & sel).sum())
        where = np.searchsorted(np.asarray(BUCKETS), lat, side="left")  # first bound with lat <= le
        buckets[t] = np.bincount(route * nb + where, minlength=len(ROUTES) * nb).reshape(len(ROUTES), nb)
        counts = buckets[t].sum(axis=0).cumsum()
        out["latency_p99_s"][t] = histogram_quantile(0.99, list(zip(BUCKETS, counts, strict=True))) if n else math.nan
        # Process CPU is accounted in 10 ms ticks, with the host's idle work; the fraction is
        # carried by luck. Handler CPU is thread time of the requests themselves (ns clock).
        used = cost.sum() + env.cpu_idle * INTERVAL_S * rng.lognormal(0.0, 0.3)
        out["cpu_seconds"][t] = 0.01 * (math.floor(used / 0.01) + (rng.random() < (used / 0.01) % 1))
        out["handler_cpu_seconds"][t] = float(cost.sum())
    minutes = np.arange(n_int) * INTERVAL_S / 60.0
    level = env.rss_level * (1.0 + rng.normal(0.0, 0.02))  # two processes never sit at the same level
    warm = 0.04 * (1.0 + rng.normal(0.0, 0.2)) * (1.0 - np.exp(-minutes / 0.2))
    rss = level * (1.0 + warm + rng.normal(0.0, 0.002, n_int))
    if rng.random() < 0.3:  # an allocator arena or cache step of up to 1% at some moment
        rss[int(rng.integers(1, n_int)):] += level * rng.uniform(0.002, 0.01)
    if env.rss_walk > 0:
        rss = rss + np.cumsum(rng.normal(0.0, env.rss_walk, n_int))
    if f.startswith("memory_leak_") and f != "memory_leak_walk":
        pct = 0.10 if "10pct" in f else 0.40
        rss = rss + level * pct * minutes
    elif f == "memory_leak_walk":
        rss = rss + fault.leak_bytes * np.arange(n_int)
    series = {k: v.tolist() for k, v in out.items()}
    series["requests"] = requests.astype(float).tolist()
    series["rss_bytes"] = rss.tolist()
    cumulative = buckets.cumsum(axis=2)
    for b, le in enumerate(BUCKETS):
        series[bucket_series(le)] = cumulative[:, :, b].sum(axis=1).tolist()
    for i, r in enumerate(ROUTES):
        for k, name in enumerate(("requests", "errors", "unexpected")):
            series[route_series(r, name)] = per_route[:, i, k].tolist()
        for b, le in enumerate(BUCKETS):
            series[route_series(r, bucket_series(le))] = cumulative[:, i, b].tolist()
    return series


def scenario(seed: int, kind: str) -> tuple[Env, Samples, Samples]:
    """Generate one seeded scenario of the given kind: (environment, baseline, canary)."""
    rng = np.random.default_rng(seed)
    env = _environment(rng, kind)
    fault = _fault(rng, kind)
    wave = 1.0 + 0.2 * np.sin(np.arange(WINDOW) / 3.0 + rng.uniform(0, 6.3)) + rng.normal(0, 0.05, WINDOW)
    wave = np.clip(wave, 0.3, None)
    burst = np.zeros(WINDOW)
    if rng.random() < 0.1:  # a dependency blip hits both sides for a couple of intervals
        start = int(rng.integers(0, WINDOW - 2))
        burst[start:start + 2] = rng.uniform(0.02, 0.1)
    noisy = rng.lognormal(0.0, 1.0, WINDOW)  # a route driven by something both sides share
    share = float(rng.uniform(0.45, 0.55))  # the load balancer's split is never exact
    speed_b, speed_c = (float(x) for x in rng.normal(1.0, 0.03, 2))
    base = _side(env, rng, wave, burst, noisy, 1.0 - share, speed_b, kind, fault, canary=False)
    can = _side(env, rng, wave, burst, noisy, share, speed_c, kind, fault, canary=True)
    return env, Samples(INTERVAL_S, base), Samples(INTERVAL_S, can)


# ---------------------------------------------------------------- reference judges


def _tukey(values: np.ndarray, factor: float) -> np.ndarray:
    """Kayenta's IQR outlier removal (kept when the IQR is zero, as canary.stats does)."""
    if len(values) < 4:
        return values
    q1, q3 = np.percentile(values, [25, 75])
    iqr = q3 - q1
    if iqr <= 0:
        return values
    return values[(values >= q1 - factor * iqr) & (values <= q3 + factor * iqr)]


def _kayenta_metric(b: np.ndarray, c: np.ndarray, allowed_inc: float, allowed_dec: float,
                    direction: Direction, confidence: float, outlier_factor: float | None) -> str:
    """Kayenta's MannWhitneyClassifier: pass/high/low/nodata for one metric (normal-approximation interval)."""
    b, c = b[np.isfinite(b)], c[np.isfinite(c)]
    if outlier_factor is not None:
        b, c = _tukey(b, outlier_factor), _tukey(c, outlier_factor)
    if len(b) == 0 or len(c) == 0:
        return "nodata"
    if np.array_equal(np.sort(b), np.sort(c)):
        return "pass"
    m, n = len(b), len(c)
    diffs = np.sort(np.subtract.outer(c, b).ravel())
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    k = int(math.floor(m * n / 2 - z * math.sqrt(m * n * (m + n + 1) / 12)))
    lower, upper = (diffs[k], diffs[m * n - k - 1]) if k >= 0 else (-math.inf, math.inf)
    mb, mc = float(np.mean(b)), float(np.mean(c))
    ratio = (mc / mb) if mb != 0 else (math.inf if mc > 0 else 1.0)
    result = "pass"
    if lower > 0 and ratio > allowed_inc:
        result = "high"
    elif upper < 0 and ratio < allowed_dec:
        result = "low"
    if (result == "low" and direction is Direction.INCREASE) or (result == "high" and direction is Direction.DECREASE):
        result = "pass"
    return result


def kayenta_style(config: CanaryConfig, base: Samples, can: Samples) -> tuple[str, int]:
    """Fixed-window Kayenta judgement; returns (verdict, intervals used)."""
    classes: list[tuple[str, str, bool]] = []
    for metric in config.metrics:
        def values(s: Samples, metric: MetricConfig = metric) -> np.ndarray:
            if metric.ratio:
                num = np.asarray(s.series[metric.ratio[0]], dtype=float)
                den = np.asarray(s.series[metric.ratio[1]], dtype=float)
                with np.errstate(divide="ignore", invalid="ignore"):
                    return np.where(den > 0, num / den, np.nan)
            return np.asarray(s.series[metric.series or ""], dtype=float)
        es = metric.effect_size
        factor = metric.outliers.factor if metric.outliers.strategy is OutlierStrategy.REMOVE else None
        cls = _kayenta_metric(values(base), values(can), es.allowed_increase, es.allowed_decrease,
                              metric.direction, config.confidence, factor)
        classes.append((metric.group, cls, metric.critical))
    n = len(base)
    if sum(c == "nodata" for _, c, _ in classes) * 2 >= len(classes):
        return "fail", n
    if any(crit and c in ("high", "low") for _, c, crit in classes):
        return "fail", n
    total = wsum = 0.0
    for group, weight in config.classifier.group_weights.items():
        counted = [c for g, c, _ in classes if g == group and c != "nodata"]
        if counted:
            total += weight * 100 * sum(c == "pass" for c in counted) / len(counted)
            wsum += weight
    score = total / wsum if wsum else 0.0
    return ("pass" if score >= config.classifier.pass_score else "fail"), n


def flagger_style(env: Env, base: Samples, can: Samples, threshold: int = 5) -> tuple[str, int]:
    """Flagger's fixed-threshold analysis on the canary; returns (verdict, intervals used).

    Its built-in checks are request-success-rate (here: 5xx share <= max(1%, 3x the known
    background)) and request-duration p99 <= 500 ms; it gets the new signal as a custom
    metric check on the share of non-2xx/3xx answers <= max(1%, 3x the service's usual share,
    read from the baseline over the whole window, as an operator would from history).
    """
    max_error_rate = max(0.01, 3 * env.p_err)
    b_req = float(np.nansum(base.series["requests"]))
    usual = float(np.nansum(base.series["unexpected"])) / b_req if b_req else 0.0
    max_unexpected = max(0.01, 3 * usual)
    max_p99 = 0.5
    failed = 0
    for t in range(len(can)):
        req = can.series["requests"][t]
        err = can.series["errors"][t]
        bad = can.series["unexpected"][t]
        p99 = can.series["latency_p99_s"][t]
        # Flagger counts a check without data as failed.
        if req <= 0 or err / req > max_error_rate or bad / req > max_unexpected or not (p99 <= max_p99):
            failed += 1
        if failed >= threshold:
            return "fail", t + 1
    return "pass", len(can)


# Kayenta's judge sees the same per-interval metrics as ours plus the new signal it can hold,
# the share of unexpected answers per interval (critical, like errors).
KAYENTA_CONFIG = DEFAULT_CONFIG.model_copy(update={"metrics": (*DEFAULT_CONFIG.metrics, MetricConfig(
    name="unexpected_rate", group="errors", ratio=("unexpected", "requests"), direction=Direction.INCREASE,
    critical=True, effect_size=EffectSize(allowed_increase=1.5)))})


# ---------------------------------------------------------------- running and scoring


def run_one(task: tuple[int, str]) -> dict[str, Any]:
    """Generate one scenario and judge it with the three judges."""
    seed, kind = task
    env, base, can = scenario(seed, kind)
    v = replay(DEFAULT_CONFIG, base, can)
    ours_n = (v.decided_at + 1) if v.decided_at is not None else len(can)
    k_verdict, k_n = kayenta_style(KAYENTA_CONFIG, base, can)
    f_verdict, f_n = flagger_style(env, base, can)
    return {
        "kind": kind,
        "ours": (v.result.value, ours_n),
        "kayenta_style": (k_verdict, k_n),
        "flagger_style": (f_verdict, f_n),
    }


def _median(values: list[int]) -> float | None:
    """Median, or None for an empty list."""
    return float(np.median(values)) if values else None


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per judge: detection, false fails, inconclusives, intervals to decide, per-kind breakdown."""
    out: dict[str, Any] = {}
    for judge in ("ours", "kayenta_style", "flagger_style"):
        reg = [r[judge] for r in results if KINDS[r["kind"]][1]]
        null = [r[judge] for r in results if not KINDS[r["kind"]][1]]
        clear = [r[judge] for r in results if r["kind"] == "errors_10pct"]
        by_kind: dict[str, Any] = {}
        grouped: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for r in results:
            grouped[r["kind"]].append(r[judge])
        for kind, rows in grouped.items():
            fails = [n for v, n in rows if v == "fail"]
            by_kind[kind] = {
                "runs": len(rows),
                "fail_rate": round(len(fails) / len(rows), 4),
                "inconclusive_rate": round(sum(v == "inconclusive" for v, _ in rows) / len(rows), 4),
                "median_intervals_to_decide": _median([n for v, n in rows if v != "inconclusive"]),
            }
        out[judge] = {
            "detection_rate": round(sum(v == "fail" for v, _ in reg) / max(len(reg), 1), 4),
            "false_fail_rate": round(sum(v == "fail" for v, _ in null) / max(len(null), 1), 4),
            "inconclusive_rate_no_regression": round(sum(v == "inconclusive" for v, _ in null) / max(len(null), 1), 4),
            "median_intervals_to_detect": _median([n for v, n in reg if v == "fail"]),
            "median_intervals_to_pass": _median([n for v, n in null if v == "pass"]),
            "median_intervals_to_decide": _median([n for v, n in reg + null if v != "inconclusive"]),
            "median_intervals_clear_error_regression": _median([n for v, n in clear if v == "fail"]),
            "clear_error_regression_detection_rate": round(sum(v == "fail" for v, _ in clear) / max(len(clear), 1), 4),
            "by_kind": by_kind,
        }
    return out


def tasks(seed: int, count: int) -> list[tuple[int, str]]:
    """Return (scenario seed, kind) pairs: half no-regression, half spread over the regression kinds."""
    null_kinds = [k for k, (_, reg) in KINDS.items() if not reg]
    reg_kinds = [k for k, (_, reg) in KINDS.items() if reg]
    n_null = int(round(count * NULL_SHARE))
    kinds = [null_kinds[i % len(null_kinds)] for i in range(n_null)]
    kinds += [reg_kinds[i % len(reg_kinds)] for i in range(count - n_null)]
    return [(seed * 1_000_003 + i, kind) for i, kind in enumerate(kinds)]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenarios", type=int, default=1200, help="total scenarios (half without regression)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one scenario per kind, for a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.scenarios = 2 * max(sum(not reg for _, reg in KINDS.values()), sum(reg for _, reg in KINDS.values()))
    started = time.perf_counter()
    work = tasks(args.seed, args.scenarios)
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            results = list(pool.map(run_one, work, chunksize=16))
    else:
        results = [run_one(t) for t in work]
    summary = summarise(results)
    ours, kay, flg = summary["ours"], summary["kayenta_style"], summary["flagger_style"]
    better_ref = max(kay["detection_rate"], flg["detection_rate"])
    kay_clear = kay["median_intervals_clear_error_regression"] or float(WINDOW)
    ours_clear = ours["median_intervals_clear_error_regression"]
    table: dict[str, dict[str, Any]] = {}
    short: list[str] = []
    for kind, (_, regression) in KINDS.items():
        row = {j: summary[j]["by_kind"].get(kind, {}).get("fail_rate") for j in ("ours", "kayenta_style",
                                                                                  "flagger_style")}
        row["ours_median_intervals"] = summary["ours"]["by_kind"].get(kind, {}).get("median_intervals_to_decide")
        table[kind] = row
        refs = [v for j, v in row.items() if j in ("kayenta_style", "flagger_style") and v is not None]
        if regression and row["ours"] is not None and refs and row["ours"] < max(refs):
            short.append(kind)
    line = {
        "benchmark": "judge_accuracy",
        "seed": args.seed,
        "scenarios": len(work),
        "interval_s": INTERVAL_S,
        "window_intervals": WINDOW,
        "clear_error_regression": "errors_10pct",
        "references": {
            "kayenta_style": "whole window; Mann-Whitney 98% per metric, same effect sizes, groups, weights, "
                             "critical flags and score thresholds as ours, plus the per-interval share of "
                             "unexpected answers as a critical metric",
            "flagger_style": "each interval: canary error rate <= max(1%, 3x background), share of non-2xx/3xx "
                             "answers <= max(1%, 3x the usual share), p99 <= 500 ms; rollback after 5 failed checks",
        },
        "fail_rate_by_kind": table,
        "judges": summary,
        "targets": {
            "detects_at_least_better_reference": ours["detection_rate"] >= better_ref,
            "kinds_below_best_reference": short,
            "false_fail_rate_at_most_1pct": ours["false_fail_rate"] <= 0.01,
            "clear_error_decided_in_half_kayenta_intervals": ours_clear is not None and ours_clear <= kay_clear / 2,
        },
        "runtime_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(line, sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
