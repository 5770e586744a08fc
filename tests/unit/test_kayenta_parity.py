"""Kayenta's own test cases (MannWhitneySuite, ScorerSuite, MannWhitneyClassifier rules) against this judge.

Where this judge is deliberately stricter than Kayenta the test says why.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canary.config import load_canary_config
from canary.judge import judge
from canary.samples import Samples
from canary.scoring import group_scores, kayenta_summary_score, summary_score
from canary.stats import mann_whitney_hl
from canary.verdict import Classification, Explanation, GroupScore, MetricResult, Result, Rule

INTERVAL = 2.0


def test_mann_whitney_suite_expected_values() -> None:
    # MannWhitneySuite "returns expected values": control 1..4, experiment 10..40, 95%.
    t = mann_whitney_hl(np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 30.0, 40.0]), 0.95)
    assert (t.lower, t.upper) == (6.0, 39.0)
    assert t.estimate == 22.5


def test_tied_data_use_the_hodges_lehmann_median_not_a_root_finder_step() -> None:
    # Kayenta (like R's wilcox.test with ties) finds the estimate and the interval ends with a
    # Brent root finder (tolerance 1e-4) on a step function: on mostly-zero data the root is any
    # point of a flat step, an artefact of the solver. The order statistics used here are the
    # exact Hodges-Lehmann values, so only their defining property is checked.
    rng = np.random.default_rng(3)
    control = np.where(rng.random(200) < 0.08, rng.uniform(1.3, 3.2, 200), 0.0)
    experiment = np.where(rng.random(200) < 0.3, rng.uniform(1.2, 5.6, 200), 0.0)
    t = mann_whitney_hl(control, experiment, 0.95)
    diffs = np.subtract.outer(experiment, control).ravel()
    assert t.estimate == float(np.median(diffs))
    assert t.lower <= t.estimate <= t.upper
    assert np.isin([t.lower, t.upper], diffs).all()


def _row(cls: str, group: str = "g", critical: bool = False) -> MetricResult:
    c = Classification(cls)
    return MetricResult(f"m-{cls}-{group}", group, c, critical, Explanation(Rule.MANN_WHITNEY, 1, 1),
                        critical_failure=critical and c is not Classification.PASS)


def _config(weights: dict[str, float]):
    metrics = [{"name": f"x{i}", "series": "x", "group": g} for i, g in enumerate(weights)]
    return load_canary_config({"metrics": metrics, "classifier": {"groupWeights": weights},
                               "memoryTrend": {"enabled": False}})


@pytest.mark.parametrize(("weights", "rows", "expected"), [
    ({"g": 100}, [("pass", "g")], 100.0),                                             # Single Metric Pass
    ({"g": 100}, [("high", "g")], 0.0),                                               # Single Metric Fail
    ({"g": 100}, [("pass", "g"), ("high", "g")], 50.0),                               # One Group, Two Metrics
    ({"g": 100}, [("pass", "g"), ("high", "g"), ("low", "g")], 100 / 3),              # One Group, Three Metrics
    ({"group-1": 75, "group-2": 25}, [("pass", "group-1"), ("pass", "group-1"), ("high", "group-2")], 75.0),
    ({"group-1": 50, "group-2": 50}, [("pass", "group-1"), ("high", "group-1"), ("high", "group-2")], 25.0),
])
def test_scorer_suite_summary_scores(weights: dict[str, float], rows: list[tuple[str, str]], expected: float) -> None:
    groups = group_scores(_config(weights), [_row(c, g) for c, g in rows])
    assert summary_score(groups) == pytest.approx(expected, abs=1e-2)
    assert kayenta_summary_score(groups) == pytest.approx(expected, abs=1e-2)


def test_nodata_fail_metric_counts_as_failed_in_its_group() -> None:
    groups = group_scores(_config({"g": 100}), [_row("pass"), _row("nodata-fail"), _row("nodata")])
    assert (groups[0].passed, groups[0].counted, groups[0].nodata) == (1, 2, 1)
    assert summary_score(groups) == 50.0


@given(st.lists(st.tuples(st.floats(0, 100), st.one_of(st.none(), st.floats(0, 100))), min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_a_group_without_data_never_scores_higher_than_in_kayenta(groups: list[tuple[float, float | None]]) -> None:
    # Kayenta scores a group without data as 100 with its full weight; here it is left out.
    scores = [GroupScore(f"g{i}", w, s, 0, 0, 0) for i, (w, s) in enumerate(groups)]
    ours = summary_score(scores)
    if ours is not None:
        assert ours <= kayenta_summary_score(scores) + 1e-9


def _samples(values: dict[str, list[float]]) -> Samples:
    return Samples(INTERVAL, values)


def _pair(n: int, shift: float, **extra: list[float]) -> tuple[Samples, Samples]:
    rng = np.random.default_rng(5)
    req = [20.0] * n
    b = {"requests": req, "x": list(1.0 + 0.05 * rng.standard_normal(n)), "y": list(1.0 + 0.05 * rng.standard_normal(n))}
    c = {"requests": req, "x": list(1.0 + shift + 0.05 * rng.standard_normal(n)),
         "y": list(1.0 + 0.05 * rng.standard_normal(n))}
    c.update(extra)
    return _samples(b), _samples(c)


def _kayenta_config(**metric: object):
    return load_canary_config({
        "metrics": [{"name": "x", "series": "x", "group": "a", "direction": "increase", **metric},
                    {"name": "y", "series": "y", "group": "b"}],
        "classifier": {"groupWeights": {"a": 50, "b": 50}},
        "memoryTrend": {"enabled": False}, "sequential": {"enabled": False}, "successRate": {"enabled": False},
        "latencyTail": {"enabled": False}, "minimumEvidence": {"requests": 0},
    })


def test_a_critical_metric_without_data_fails_the_canary() -> None:
    b, c = _pair(12, 0.0)
    del c.series["x"]
    v = judge(_kayenta_config(critical=True), b, c, final=True)
    assert v.result is Result.FAIL and "critical" in v.reason and "x nodata" in v.reason
    assert v.metric("x").critical_failure
    # Mid-bake the data may still come: no early fail on a missing critical metric.
    assert judge(_kayenta_config(critical=True), b, c, final=False).result is Result.CONTINUE


def test_critical_threshold_decides_between_failing_the_canary_and_lowering_the_score() -> None:
    b, c = _pair(12, 0.3)  # x is 1.3 times the baseline
    below = judge(_kayenta_config(critical=True, effectSize={"criticalIncrease": 2.0}), b, c, final=True)
    assert below.metric("x").classification is Classification.HIGH and not below.metric("x").critical_failure
    assert "score" in below.reason and below.score == 50.0
    beyond = judge(_kayenta_config(critical=True, effectSize={"criticalIncrease": 1.2}), b, c, final=True)
    assert beyond.metric("x").critical_failure and beyond.reason.startswith("critical metric failed")


def test_must_have_data_turns_missing_data_into_a_failed_metric() -> None:
    b, c = _pair(12, 0.0)
    del c.series["x"]
    plain = judge(_kayenta_config(), b, c, final=True)
    required = judge(_kayenta_config(mustHaveData=True), b, c, final=True)
    assert plain.metric("x").classification is Classification.NODATA
    assert required.metric("x").classification is Classification.NODATA_FAIL
    assert required.result is Result.FAIL and required.score == 50.0


def test_the_verdict_reports_per_group_scores() -> None:
    b, c = _pair(12, 0.3)
    v = judge(_kayenta_config(), b, c, final=True).to_dict()
    assert [(g["name"], g["score"], g["weight"]) for g in v["groups"]] == [("a", 0.0, 50.0), ("b", 100.0, 50.0)]
