"""Unexpected answers and the request-level latency tail, pooled and per route (canary.counts)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canary.config import DEFAULT_CONFIG, load_canary_config
from canary.counts import ratio_interval, tail_bound
from canary.judge import judge, replay
from canary.samples import Samples, bucket_series, route_series
from canary.verdict import Classification, Result

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf)
ROUTES = {"/api/feed": 0.5, "/api/posts/{post_id}/like": 0.45, "/api/signup": 0.05}


def side(seed: int, n: int = 20, rate: float = 10.0, *, bad_route: str | None = None, bad_share: float = 0.0,
         expected_4xx: float = 0.05, slow_share: float = 0.0, slow_by: float = 1.0) -> Samples:
    """Per-interval series with per-route counts and cumulative latency buckets."""
    rng = np.random.default_rng(seed)
    series: dict[str, list[float]] = {"requests": [], "errors": [], "unexpected": []}
    names = {b: bucket_series(b) for b in BOUNDS}
    for name in names.values():
        series[name] = []
    for route in ROUTES:
        for kind in ("requests", "unexpected", *names.values()):
            series[route_series(route, kind)] = []
    for _ in range(n):
        totals = {"requests": 0.0, "unexpected": 0.0, **{v: 0.0 for v in names.values()}}
        for route, share in ROUTES.items():
            k = int(rng.poisson(rate * share))
            p = expected_4xx + (bad_share if route == bad_route else 0.0)
            bad = float((rng.random(k) < p).sum())
            lat = 0.01 * rng.lognormal(0, 0.5, k)
            lat[rng.random(k) < slow_share] += slow_by
            series[route_series(route, "requests")].append(float(k))
            series[route_series(route, "unexpected")].append(bad)
            totals["requests"] += k
            totals["unexpected"] += bad
            for b, name in names.items():
                c = float((lat <= b).sum())
                series[route_series(route, name)].append(c)
                totals[name] += c
        for key, value in totals.items():
            series[key].append(value)
        series["errors"].append(0.0)
    reqs = np.asarray(series["requests"])
    series["latency_p99_s"] = list(0.05 * rng.lognormal(0, 0.1, n))
    series["cpu_seconds"] = list(reqs * 0.003 * rng.lognormal(0, 0.05, n))
    series["rss_bytes"] = list(6e7 * (1 + 0.001 * rng.standard_normal(n)))
    return Samples(2.0, series)


def test_expected_4xx_answered_by_both_sides_pass() -> None:
    v = replay(DEFAULT_CONFIG, side(1, expected_4xx=0.2), side(2, expected_4xx=0.2))
    assert v.result is not Result.FAIL, v.reason
    assert v.metric("unexpected_answers").classification is Classification.PASS


def test_a_route_answering_a_fifth_with_4xx_fails_and_the_verdict_names_it() -> None:
    route = "/api/posts/{post_id}/like"
    v = replay(DEFAULT_CONFIG, side(1), side(2, bad_route=route, bad_share=0.2))
    assert v.result is Result.FAIL
    assert route in v.reason and v.decided_at is not None and v.decided_at < 19
    row = v.metric(f"unexpected_answers@{route}")
    assert row.route == route and row.classification is Classification.HIGH
    lo, hi = row.explanation.interval or (0, 0)
    assert lo > 1.0 and lo <= row.explanation.estimate <= hi


def test_a_small_route_breaking_completely_is_not_diluted() -> None:
    route = "/api/signup"  # 5% of the traffic
    v = replay(DEFAULT_CONFIG, side(1, rate=30), side(2, rate=30, bad_route=route, bad_share=0.95))
    assert v.result is Result.FAIL and route in v.reason


def test_a_route_with_few_requests_says_so() -> None:
    v = judge(DEFAULT_CONFIG, side(1, n=10, rate=5), side(2, n=10, rate=5), final=True)
    assert "/api/signup" in v.thin_routes
    assert "too little traffic" in v.metric("unexpected_answers@/api/signup").explanation.note
    assert "/api/signup" in v.to_dict()["thin_routes"]


def test_a_tail_regression_of_a_few_percent_of_requests_fails() -> None:
    v = replay(DEFAULT_CONFIG, side(1, rate=40), side(2, rate=40, slow_share=0.07, slow_by=1.0))
    assert v.result is Result.FAIL and "slower than" in v.reason, v.reason
    tail = [m for m in v.metrics if m.name.startswith("latency_tail") and m.critical_failure]
    assert tail and tail[0].explanation.interval is not None


def test_tail_bound_is_the_first_bucket_holding_the_quantile() -> None:
    buckets = [(0.1, [5.0, 5.0]), (0.5, [9.0, 9.0]), (1.0, [10.0, 10.0]), (math.inf, [10.0, 10.0])]
    assert tail_bound(buckets, 2, 0.5) == 0.1
    assert tail_bound(buckets, 2, 0.9) == 0.5
    assert tail_bound(buckets, 2, 0.99) == 1.0
    assert tail_bound([(0.1, [0.0]), (math.inf, [0.0])], 1, 0.9) is None


def test_ratio_interval_covers_the_estimate() -> None:
    lo, hi = ratio_interval(30, 1000, 10, 1000, 0.99)
    assert lo < 3.0 < hi and lo > 1.0
    assert ratio_interval(0, 100, 0, 100, 0.99) == (0.0, math.inf)


def test_disabled_tests_add_no_rows() -> None:
    config = load_canary_config({"successRate": {"enabled": False}, "latencyTail": {"enabled": False}})
    v = judge(config, side(1), side(2), final=True)
    assert not [m for m in v.metrics if m.name.startswith(("unexpected", "latency_tail"))]


@pytest.mark.slow
@given(seed=st.integers(0, 10_000))
@settings(max_examples=40, deadline=None)
def test_good_canaries_rarely_fail_with_every_route_tested(seed: int) -> None:
    # 3 routes x (unexpected + two tail quantiles) + pooled: the split alphas keep each family
    # below 1%, so a failure among 40 draws would be a sign the split is wrong.
    v = replay(DEFAULT_CONFIG, side(seed, rate=20), side(seed + 1, rate=20))
    assert v.result is not Result.FAIL, v.reason


def test_pooled_tests_keep_half_the_alpha_whatever_the_number_of_routes() -> None:
    from canary.counts import split_alpha
    alphas = split_alpha(0.01, [None, "/a", "/b", "/c", "/d"])
    assert alphas[0] == pytest.approx(0.005) and alphas[1:] == pytest.approx([0.00125] * 4)
    assert sum(alphas) == pytest.approx(0.01)
    assert split_alpha(0.01, [None, None]) == pytest.approx([0.005, 0.005])
    assert split_alpha(0.01, ["/a", "/b"]) == pytest.approx([0.005, 0.005])


def test_a_thin_canary_with_suspicious_refusals_is_not_passed_but_watched_longer() -> None:
    # One host's worth of traffic over a short bake: a tenth of the answers are refusals on the
    # canary and none on the baseline; not yet a proof at this alpha, far from clean either.
    route = "/api/posts/{post_id}/like"
    v = judge(DEFAULT_CONFIG, side(1, n=10, rate=10, expected_4xx=0.0),
              side(2, n=10, rate=10, expected_4xx=0.0, bad_route=route, bad_share=0.2), final=True)
    assert v.result in (Result.INCONCLUSIVE, Result.FAIL), v.reason
    if v.result is Result.INCONCLUSIVE:
        assert "watch longer" in v.reason and "unexpected_answers" in v.reason
    clean = judge(DEFAULT_CONFIG, side(1, n=10, rate=10, expected_4xx=0.0), side(2, n=10, rate=10, expected_4xx=0.0),
                  final=True)
    assert clean.result is Result.PASS, clean.reason
