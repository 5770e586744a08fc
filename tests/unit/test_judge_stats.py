"""The statistical building blocks agree with scipy and keep their promised coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from canary.stats import (
    excess_trend,
    look_alpha,
    mann_whitney_hl,
    mean_ratio,
    rank_sum_p_value,
    remove_outliers,
    signed_rank_hl,
    signed_rank_p_value,
    theil_sen,
    u_critical,
    w_critical,
)

values = st.lists(st.integers(-50, 50).map(lambda v: v / 10), min_size=1, max_size=25)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(values, values)
def test_rank_sum_p_value_is_scipys_mann_whitney(baseline: list[float], canary: list[float]) -> None:
    b, c = np.array(baseline), np.array(canary)
    ours = rank_sum_p_value(b, c)
    if np.ptp(np.concatenate([b, c])) == 0:
        assert ours == 1.0
    else:
        assert ours == pytest.approx(sps.mannwhitneyu(c, b, alternative="two-sided").pvalue, abs=1e-9)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.integers(-100, 100), min_size=3, max_size=30), st.sampled_from([0.9, 0.95, 0.98]))
def test_theil_sen_is_scipys(ys: list[int], confidence: float) -> None:
    y = np.array(ys, dtype=float)
    x = np.arange(len(y), dtype=float) * 2.0
    ref = sps.theilslopes(y, x, alpha=confidence)
    assert theil_sen(y, x, confidence) == pytest.approx((ref.slope, ref.low_slope, ref.high_slope))


def test_exact_critical_values_match_tables() -> None:
    # Hollander & Wolfe: for m = n = 5 the two-sided 0.0159 test rejects at U <= 2, i.e. k = 3.
    assert u_critical(5, 5, 0.0318) == 3
    assert u_critical(5, 5, 0.02) == 2
    assert u_critical(2, 2, 0.02) == 0  # too few values for any 98% interval
    # Large samples: the normal approximation takes over and agrees within a rank.
    exact = u_critical(60, 60, 0.02)
    z = sps.norm.ppf(0.99)
    approx = math.floor(1800 - z * math.sqrt(3600 * 121 / 12))
    assert abs(exact - approx) <= 2


def test_hodges_lehmann_interval_covers_the_true_shift() -> None:
    rng = np.random.default_rng(5)
    covered = 0
    runs = 600
    for _ in range(runs):
        b = rng.lognormal(0, 0.5, 12)
        c = rng.lognormal(0, 0.5, 12) + 0.3
        t = mann_whitney_hl(b, c, 0.9)
        covered += t.lower <= 0.3 <= t.upper
    # Nominal 90% (slightly conservative because U is discrete).
    assert 0.87 <= covered / runs <= 0.97


@settings(max_examples=100, deadline=None, derandomize=True)
@given(values, values)
def test_shift_is_antisymmetric_and_inside_its_interval(baseline: list[float], canary: list[float]) -> None:
    b, c = np.array(baseline), np.array(canary)
    t = mann_whitney_hl(b, c, 0.9)
    back = mann_whitney_hl(c, b, 0.9)
    assert t.estimate == pytest.approx(-back.estimate)
    assert t.lower == pytest.approx(-back.upper) and t.upper == pytest.approx(-back.lower)
    assert t.lower <= t.estimate <= t.upper


def test_empty_side_gives_no_test() -> None:
    t = mann_whitney_hl(np.array([]), np.array([1.0, 2.0]), 0.98)
    assert math.isnan(t.estimate) and t.lower == -math.inf


def test_mean_ratio_handles_zero_baselines() -> None:
    assert mean_ratio(np.zeros(3), np.zeros(3)) == 1.0
    assert mean_ratio(np.zeros(3), np.ones(3)) == math.inf
    assert mean_ratio(np.ones(3) * 2, np.ones(3)) == 0.5


def test_outliers_beyond_the_fences_are_dropped_but_not_with_a_zero_iqr() -> None:
    v = np.array([1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 9.0])
    assert 9.0 not in remove_outliers(v, 3.0)
    zeros = np.array([0.0] * 10 + [0.2, 0.3])
    assert len(remove_outliers(zeros, 3.0)) == 12


def test_trend_is_relative_to_the_baseline() -> None:
    t = np.arange(30)
    base = 100.0 + 0.5 * t  # both grow: warm-up shared by the two processes
    can = 100.0 + 0.5 * t + 2.0 * t  # the canary grows 2 units per interval more
    trend = excess_trend(base, can, 2.0, 0.98)
    assert trend.slope == pytest.approx(60.0)  # per minute
    assert trend.lower <= 60.0 <= trend.upper


def test_look_alpha_spends_exactly_alpha() -> None:
    total = sum(look_alpha(0.02, k, 6) for k in range(6, 100_000))
    assert total == pytest.approx(0.02, rel=1e-4)
    assert look_alpha(0.02, 6, 6) > look_alpha(0.02, 7, 6)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.integers(-60, 60).map(lambda v: v / 10), min_size=1, max_size=25))
def test_signed_rank_p_value_is_scipys_wilcoxon(differences: list[float]) -> None:
    d = np.array(differences)
    ours = signed_rank_p_value(d)
    nonzero = d[d != 0]
    if len(nonzero) == 0:
        assert ours == 1.0
        return
    exact = len(np.unique(np.abs(nonzero))) == len(nonzero) == len(d)
    ref = (sps.wilcoxon(d, method="exact") if exact
           else sps.wilcoxon(d, method="approx", correction=True, zero_method="wilcox"))
    assert ours == pytest.approx(ref.pvalue, abs=1e-9)


def test_signed_rank_critical_values_match_tables() -> None:
    # Hollander & Wolfe: n = 10, two-sided 0.02 rejects at W+ <= 5 (P = 0.0098 per side), so k = 6.
    assert w_critical(10, 0.02) == 6
    assert w_critical(9, 0.002) == 0  # 2^-9 > 0.001: no 99.8% interval from 9 pairs
    assert w_critical(10, 0.002) == 1
    exact = w_critical(60, 0.02)
    approx = math.floor(60 * 61 / 4 - sps.norm.ppf(0.99) * math.sqrt(60 * 61 * 121 / 24))
    assert abs(exact - approx) <= 4  # of 1830 possible values of W+: the approximation is close


def test_signed_rank_interval_covers_the_true_paired_shift() -> None:
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(400):
        d = 0.3 + rng.standard_t(3, 12)
        test = signed_rank_hl(d, 0.9)
        covered += test.lower <= 0.3 <= test.upper
    assert covered / 400 >= 0.87  # promised 90%, distribution-free
