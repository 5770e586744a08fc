"""The post-deploy watch's decision: crashes, crash loops, error and latency regressions, two sensitivities."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deployer.post_deploy import Crash, Figures, Policy, Sensitivity, Thresholds, Window, decide, figures_of

POLICY = Policy(watch_s=600.0,
                strict=Thresholds(max_crashes=2, crash_window_s=300.0, error_ratio=2.0, error_increase=0.02,
                                  latency_ratio=1.5, latency_increase_s=0.05, bad_windows=2, min_requests=20),
                relaxed=Thresholds(max_crashes=3, crash_window_s=300.0, error_ratio=4.0, error_increase=0.1,
                                   latency_ratio=3.0, latency_increase_s=0.2, bad_windows=3, min_requests=50))
GOOD = Figures(windows=10, error_rate=0.01, p99_s=0.1)


def ok(requests: float = 100.0, errors: float = 1.0, p99: float = 0.1) -> Window:
    return Window(requests=requests, errors=errors, p99_s=p99)


def run(*, since: float = 10.0, now: float = 1000.0, crashes: list[Crash] | None = None,
        windows: list[Window] | None = None, previous: Figures | None = GOOD):
    return decide(policy=POLICY, since_success_s=since, now=now, crashes=crashes or [], windows=windows or [],
                  previous=previous)


def test_a_healthy_release_stays() -> None:
    decision = run(windows=[ok()] * 5)
    assert not decision.rollback and decision.reasons == []
    assert decision.sensitivity is Sensitivity.STRICT


def test_the_watch_period_decides_the_sensitivity() -> None:
    assert run(since=599.9).sensitivity is Sensitivity.STRICT
    assert run(since=600.0).sensitivity is Sensitivity.RELAXED


def test_one_crash_is_restarted_in_place_not_rolled_back() -> None:
    assert not run(crashes=[Crash("host-1", 990.0)]).rollback


def test_a_crash_loop_rolls_back_with_the_hosts_named() -> None:
    decision = run(crashes=[Crash("host-1", 950.0), Crash("host-2", 990.0)])
    assert decision.rollback
    assert "2 crash(es)" in decision.reasons[0] and "host-1, host-2" in decision.reasons[0]
    assert [c["host"] for c in decision.evidence["crashes"]] == ["host-1", "host-2"]


def test_crashes_older_than_the_window_are_forgotten() -> None:
    assert not run(crashes=[Crash("host-1", 600.0), Crash("host-1", 990.0)]).rollback


def test_after_the_watch_period_a_crash_loop_needs_more_crashes() -> None:
    two = [Crash("host-1", 950.0), Crash("host-1", 990.0)]
    assert not run(since=3600.0, crashes=two).rollback
    assert run(since=3600.0, crashes=[*two, Crash("host-1", 995.0)]).rollback


def test_an_error_rate_regression_in_consecutive_windows_rolls_back() -> None:
    bad = ok(errors=10.0)  # 10% against 1%: above max(2%, 3%)
    decision = run(windows=[ok(), bad, bad])
    assert decision.rollback and "error rate 10.0%, 10.0%" in decision.reasons[0]
    assert decision.evidence["previous"] == GOOD.to_dict()
    assert decision.evidence["limits"]["error_rate"] == pytest.approx(0.03)


def test_one_bad_window_is_noise() -> None:
    assert not run(windows=[ok(), ok(), ok(errors=50.0)]).rollback
    assert not run(windows=[ok(errors=50.0), ok()]).rollback


def test_windows_with_too_little_traffic_decide_nothing() -> None:
    assert not run(windows=[ok(requests=10, errors=5)] * 3).rollback


def test_the_error_limit_is_relative_and_absolute() -> None:
    # Previous 10%: the limit is max(20%, 12%) = 20%; 15% is not a regression.
    noisy = Figures(windows=5, error_rate=0.10, p99_s=0.1)
    assert not run(windows=[ok(errors=15.0)] * 2, previous=noisy).rollback
    assert run(windows=[ok(errors=25.0)] * 2, previous=noisy).rollback
    # Previous 0%: a ratio alone would make any error a regression; the absolute margin prevents it.
    clean = Figures(windows=5, error_rate=0.0, p99_s=0.1)
    assert not run(windows=[ok(errors=1.0)] * 2, previous=clean).rollback
    assert run(windows=[ok(errors=3.0)] * 2, previous=clean).rollback


def test_the_relaxed_sensitivity_tolerates_more() -> None:
    windows = [ok(errors=10.0)] * 3  # 10%: a strict regression, not a relaxed one (limit max(4%, 11%))
    assert run(since=10.0, windows=windows).rollback
    assert not run(since=3600.0, windows=windows).rollback
    assert run(since=3600.0, windows=[ok(errors=20.0)] * 3).rollback


def test_a_latency_regression_rolls_back() -> None:
    decision = run(windows=[ok(p99=0.4), ok(p99=0.5)])
    assert decision.rollback and "p99 latency 400ms, 500ms" in decision.reasons[0]


def test_a_small_absolute_latency_change_is_not_a_regression() -> None:
    fast = Figures(windows=5, error_rate=0.0, p99_s=0.004)
    assert not run(windows=[ok(errors=0, p99=0.012)] * 2, previous=fast).rollback


def test_without_previous_figures_only_absolute_limits_apply() -> None:
    assert not run(windows=[ok(p99=5.0)] * 2, previous=None).rollback  # no yardstick for latency
    assert run(windows=[ok(errors=10.0)] * 2, previous=None).rollback  # 10% > 2% absolute
    assert run(previous=None).evidence["previous"] is None


def test_missing_latency_is_not_a_regression() -> None:
    assert not run(windows=[ok(p99=math.nan)] * 2).rollback


def test_several_reasons_are_all_given() -> None:
    decision = run(crashes=[Crash("h", 999.0), Crash("h", 999.5)], windows=[ok(errors=30.0, p99=1.0)] * 2)
    assert len(decision.reasons) == 3


def test_figures_are_medians_of_windows_with_enough_traffic() -> None:
    windows = [ok(errors=1.0, p99=0.1), ok(errors=3.0, p99=0.3), ok(errors=2.0, p99=0.2), ok(requests=5, errors=5)]
    figures = figures_of(windows, min_requests=20)
    assert figures == Figures(windows=3, error_rate=0.02, p99_s=0.2)
    assert figures_of([ok(requests=1)], min_requests=20) is None
    assert Figures.from_dict(figures.to_dict()) == figures


def test_figures_without_latency_survive_json() -> None:
    figures = figures_of([ok(p99=math.nan)], min_requests=20)
    assert figures is not None and math.isnan(figures.p99_s)
    assert figures.to_dict()["p99_s"] is None and math.isnan(Figures.from_dict(figures.to_dict()).p99_s)


def test_thresholds_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        Thresholds(max_crashes=0)
    with pytest.raises(ValueError):
        Thresholds(error_ratio=0.5)


@given(st.lists(st.tuples(st.integers(0, 500), st.floats(0.0, 1.0), st.floats(0.001, 0.1)), max_size=6),
       st.floats(0, 5000))
def test_a_window_never_worse_than_the_previous_release_never_rolls_back(
        raw: list[tuple[int, float, float]], since: float) -> None:
    # At most the previous release's error rate (1%) and p99 (100ms), whatever the traffic.
    windows = [Window(requests=r, errors=r * 0.01 * share, p99_s=p) for r, share, p in raw]
    assert not run(since=since, windows=windows).rollback


@given(st.integers(2, 6), st.floats(0.2, 1.0))
def test_sustained_total_failure_always_rolls_back(count: int, rate: float) -> None:
    assert run(windows=[Window(requests=200, errors=200 * rate, p99_s=0.1)] * count).rollback
