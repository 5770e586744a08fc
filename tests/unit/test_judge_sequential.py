"""The anytime-valid error test: false fails stay below alpha over a whole watch; clear regressions fail fast."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canary.config import DEFAULT_CONFIG
from canary.judge import replay
from canary.samples import Samples
from canary.sequential import (
    ErrorCounts,
    absolute_pass_evalues,
    fail_evalues,
    first_crossing,
    ratio_pass_evalues,
)

ALPHA = 0.01


def simulate(rng: np.random.Generator, intervals: int, rate: float, p_base: float, ratio: float,
             share: float = 0.5) -> ErrorCounts:
    """Per-interval counts: canary errors at ratio x the baseline's rate, traffic split by share."""
    total = rng.poisson(2 * rate, intervals)
    nc = rng.binomial(total, share)
    nb = total - nc
    c = rng.binomial(nc, min(1.0, p_base * ratio))
    b = rng.binomial(nb, p_base)
    return ErrorCounts.from_values(c.tolist(), nc.tolist(), b.tolist(), nb.tolist())


def test_false_fail_rate_over_a_whole_watch_stays_below_alpha() -> None:
    # 4000 seeded no-regression watches of 60 looks each, over the traffic and error rates
    # a canary meets: from the demo's 5 requests per interval to 2000, from no errors to 5%,
    # with uneven traffic splits. Ville's inequality promises P(any crossing) <= alpha.
    rng = np.random.default_rng(20240501)
    runs = 4000
    fails = 0
    for i in range(runs):
        rate = float(np.exp(rng.uniform(np.log(5), np.log(2000))))
        p_base = 0.0 if i % 5 == 0 else float(np.exp(rng.uniform(np.log(1e-3), np.log(0.05))))
        counts = simulate(rng, 60, rate, p_base, 1.0, share=float(rng.uniform(0.3, 0.7)))
        if first_crossing(fail_evalues(counts, 1.0), 1 / ALPHA) is not None:
            fails += 1
    rate_observed = fails / runs
    # The bound is alpha itself; with 4000 runs the observed rate is within ~0.3% of the truth.
    assert rate_observed <= ALPHA, rate_observed


def test_allowed_increase_is_not_a_regression() -> None:
    rng = np.random.default_rng(7)
    fails = sum(
        first_crossing(fail_evalues(simulate(rng, 60, 500, 0.02, 1.5), 1.5), 1 / ALPHA) is not None
        for _ in range(1000)
    )
    assert fails / 1000 <= ALPHA


@pytest.mark.parametrize(("rate", "max_median_intervals"), [(10, 10), (20, 5), (50, 3)])
def test_half_of_likes_failing_is_caught_in_a_few_intervals(rate: float, max_median_intervals: int) -> None:
    # Likes are 20% of traffic and half of them fail: the canary's error rate is 10%, the baseline's 0.
    rng = np.random.default_rng(3)
    needed = []
    for _ in range(200):
        total = rng.poisson(2 * rate, 30)
        nc = rng.binomial(total, 0.5)
        nb = total - nc
        counts = ErrorCounts.from_values(rng.binomial(nc, 0.1).tolist(), nc.tolist(), [0] * 30, nb.tolist())
        crossed = first_crossing(fail_evalues(counts, 1.0), 1 / ALPHA)
        needed.append(31 if crossed is None else crossed + 1)
    assert float(np.median(needed)) <= max_median_intervals
    assert max(needed) <= 30


def test_no_errors_anywhere_gives_no_evidence() -> None:
    counts = ErrorCounts.from_values([0] * 10, [50] * 10, [0] * 10, [50] * 10)
    assert np.allclose(fail_evalues(counts, 1.0), 1.0)
    assert np.allclose(ratio_pass_evalues(counts, 1.5), 1.0)


def test_errors_only_on_the_canary_with_a_silent_baseline() -> None:
    counts = ErrorCounts.from_values([3] * 5, [30] * 5, [0] * 5, [30] * 5)
    e = fail_evalues(counts, 1.0)
    assert first_crossing(e, 1 / ALPHA) is not None
    assert np.all(np.diff(e) > 0)


def test_intervals_with_a_missing_value_carry_no_evidence() -> None:
    nan = float("nan")
    with_gap = ErrorCounts.from_values([5, nan, 5], [50, 50, 50], [0, 0, 0], [50, 50, nan])
    without = ErrorCounts.from_values([5, 0, 5], [50, 0, 50], [0, 0, 0], [50, 0, 0])
    assert fail_evalues(with_gap, 1.0)[1] == pytest.approx(fail_evalues(with_gap, 1.0)[0])
    assert fail_evalues(without, 1.0)[-1] == pytest.approx(fail_evalues(with_gap, 1.0)[-1])


def test_a_canary_without_errors_is_shown_below_the_tolerated_rate_given_enough_requests() -> None:
    few = ErrorCounts.from_values([0] * 5, [100] * 5, [0] * 5, [100] * 5)
    many = ErrorCounts.from_values([0] * 5, [3000] * 5, [0] * 5, [3000] * 5)
    assert absolute_pass_evalues(few, 0.001).max() < 50
    assert absolute_pass_evalues(many, 0.001).max() >= 50
    one_error = ErrorCounts.from_values([1] + [0] * 4, [3000] * 5, [0] * 5, [3000] * 5)
    assert absolute_pass_evalues(one_error, 0.001).max() < absolute_pass_evalues(many, 0.001).max()


counts_strategy = st.integers(min_value=1, max_value=12).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 40), min_size=n, max_size=n),
        st.lists(st.integers(0, 40), min_size=n, max_size=n),
        st.lists(st.integers(1, 200), min_size=n, max_size=n),
        st.lists(st.integers(1, 200), min_size=n, max_size=n),
    )
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(counts_strategy, st.integers(0, 11))
def test_more_canary_errors_never_lower_the_evidence(data: tuple[list[int], ...], at: int) -> None:
    c, b, nc, nb = data
    at %= len(c)
    base = fail_evalues(ErrorCounts.from_values(c, nc, b, nb), 1.0)
    worse_c = list(c)
    worse_c[at] += 1
    nc2 = list(nc)
    nc2[at] = max(nc2[at], worse_c[at])
    worse = fail_evalues(ErrorCounts.from_values(worse_c, nc2, b, nb), 1.0)
    if nc2[at] == nc[at]:
        assert worse[-1] >= base[-1] * (1 - 1e-9)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(counts_strategy)
def test_a_canary_without_errors_never_fails(data: tuple[list[int], ...]) -> None:
    _, b, nc, nb = data
    e = fail_evalues(ErrorCounts.from_values([0] * len(b), nc, b, nb), 1.0)
    assert np.all(e > 0) and np.all(e <= 1.0 + 1e-12)


def test_judge_level_false_fail_rate_on_seeded_no_regression_watches() -> None:
    # Whole watches through the judge (every rule, every look), demo-scale traffic with noise.
    rng = np.random.default_rng(11)
    fails = 0
    runs = 80
    for _ in range(runs):
        p = float(rng.choice([0.0, 0.002, 0.02]))
        rate = float(rng.uniform(8, 60))

        def side(rate: float = rate, p: float = p) -> dict[str, list[float]]:
            req = rng.poisson(rate, 20).astype(float)
            return {
                "requests": req.tolist(),
                "errors": rng.binomial(req.astype(int), p).astype(float).tolist(),
                "latency_p99_s": (0.03 * rng.lognormal(0, 0.3, 20)).tolist(),
                "cpu_seconds": (req * 0.003 * rng.lognormal(0, 0.15, 20)).tolist(),
                "rss_bytes": (70e6 * (1 + 0.002 * rng.standard_normal(20))).tolist(),
            }

        v = replay(DEFAULT_CONFIG, Samples(2.0, side()), Samples(2.0, side()))
        fails += v.result.value == "fail"
    assert fails <= 1
