"""The benchmark check's verdict on seeded rounds: noise passes, a real slowdown of one route fails, named."""

from __future__ import annotations

import numpy as np
import pytest

from deployer.benchcheck import compare

ROUTES = {"home": 10.0, "feed": 14.0, "post": 11.0}


def rounds(rng: np.random.Generator, slow: dict[str, float] | None = None, n: int = 10,
           noise: float = 0.05) -> dict[str, dict[str, list[float]]]:
    slow = slow or {}
    out = {}
    for route, base in ROUTES.items():
        factor = 1.0 + slow.get(route, 0.0)
        out[route] = {m: list(base * factor * rng.lognormal(0.0, noise, n)) for m in ("cpu_ms", "latency_ms")}
    return out


def test_an_unchanged_commit_passes() -> None:
    rng = np.random.default_rng(1)
    verdict = compare(rounds(rng), rounds(rng))
    assert verdict.passed and "no route is shown worse than 10%" in verdict.summary
    assert {c.route for c in verdict.changes} == set(ROUTES)


def test_a_30_percent_slower_route_fails_and_is_named_with_its_interval() -> None:
    rng = np.random.default_rng(2)
    verdict = compare(rounds(rng), rounds(rng, {"feed": 0.30}))
    assert not verdict.passed
    assert verdict.summary.startswith("route feed:") and "10% allowance" in verdict.summary
    assert "%" in verdict.summary and " to " in verdict.summary  # the change and its interval
    failed = [c for c in verdict.changes if c.failed]
    assert {c.route for c in failed} == {"feed"}
    assert all(0.15 < c.change < 0.45 and c.lower > 0 for c in failed)


def test_a_small_real_change_under_the_allowance_passes() -> None:
    rng = np.random.default_rng(3)
    verdict = compare(rounds(rng, noise=0.01), rounds(rng, {"post": 0.04}, noise=0.01))
    assert verdict.passed
    post = [c for c in verdict.changes if c.route == "post"]
    assert all(c.lower > 0 for c in post)  # shown, but smaller than the allowance


def test_false_fail_rate_on_unchanged_runs_is_low() -> None:
    rng = np.random.default_rng(4)
    fails = sum(not compare(rounds(rng, noise=0.15), rounds(rng, noise=0.15)).passed for _ in range(200))
    assert fails <= 4  # <= 2%


def test_faster_is_never_a_failure() -> None:
    rng = np.random.default_rng(5)
    assert compare(rounds(rng), rounds(rng, {"home": -0.4})).passed


@pytest.mark.parametrize("candidate", [{}, {"home": {"cpu_ms": [1.0, 2.0]}}])
def test_nothing_comparable_is_not_a_pass(candidate: dict[str, dict[str, list[float]]]) -> None:
    verdict = compare(rounds(np.random.default_rng(6)), candidate)
    assert not verdict.passed and "no route could be compared" in verdict.summary


def drifting_pairs(rng: np.random.Generator, slow: float, n: int = 12) -> tuple[dict, dict]:
    """Rounds measured in pairs while the machine's load swings from round to round (x0.6 to x1.8)."""
    load = rng.uniform(0.6, 1.8, n)
    base = {r: {m: list(v * load * rng.lognormal(0, 0.04, n)) for m in ("cpu_ms", "latency_ms")}
            for r, v in ROUTES.items()}
    cand = {r: {m: list(v * (1 + (slow if r == "feed" else 0)) * load * rng.lognormal(0, 0.04, n))
                for m in ("cpu_ms", "latency_ms")} for r, v in ROUTES.items()}
    return base, cand


def test_paired_rounds_show_a_slowdown_through_a_swinging_load() -> None:
    rng = np.random.default_rng(7)
    caught = sum(not compare(*drifting_pairs(rng, 0.30)).passed for _ in range(20))
    assert caught >= 19  # the load swings far more than 30%, but both rounds of a pair share it
    false = sum(not compare(*drifting_pairs(rng, 0.0)).passed for _ in range(100))
    assert false <= 2


def test_too_few_rounds_for_any_interval_is_not_a_pass() -> None:
    rng = np.random.default_rng(8)
    verdict = compare(rounds(rng, n=5), rounds(rng, {"feed": 0.5}, n=5))
    assert not verdict.passed and "too few" in verdict.summary and "gate.bench_rounds" in verdict.summary


def test_two_runs_join_pair_by_pair() -> None:
    from deployer.check_jobs import join_runs
    first = {"feed": {"cpu_ms": [1.0, 2.0], "latency_ms": [3.0]}}
    second = {"feed": {"cpu_ms": [5.0], "latency_ms": [6.0, 7.0]}, "home": {"cpu_ms": [9.0]}}
    assert join_runs(first, second) == {"feed": {"cpu_ms": [1.0, 2.0, 5.0], "latency_ms": [3.0, 6.0, 7.0]}}
