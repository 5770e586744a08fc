"""Analysis configuration: defaults, the Kayenta vocabulary, and errors that name field, value and fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canary.config import (
    DEFAULT_CONFIG,
    Direction,
    NanStrategy,
    OutlierStrategy,
    load_canary_config,
    load_canary_config_file,
)
from canary.exceptions import CanaryConfigError


def test_none_and_empty_give_the_defaults() -> None:
    assert load_canary_config(None) is DEFAULT_CONFIG
    assert load_canary_config({}) == DEFAULT_CONFIG


def test_defaults_understand_the_standard_series() -> None:
    used = set()
    for m in DEFAULT_CONFIG.metrics:
        used.update(m.ratio or (m.series,))
    used.add(DEFAULT_CONFIG.memory_trend.series)
    assert used == {"requests", "errors", "latency_p99_s", "cpu_seconds", "handler_cpu_seconds", "rss_bytes"}
    assert DEFAULT_CONFIG.confidence == 0.98
    assert DEFAULT_CONFIG.sequential.alpha == 0.01
    assert sum(DEFAULT_CONFIG.classifier.group_weights.values()) == 100


def test_round_trip_through_the_yaml_vocabulary() -> None:
    assert load_canary_config(DEFAULT_CONFIG.to_dict()) == DEFAULT_CONFIG


def test_kayenta_vocabulary_is_read() -> None:
    config = load_canary_config({
        "metrics": [
            {"name": "errors", "ratio": ["errors", "requests"], "group": "e", "direction": "increase",
             "critical": True, "effectSize": {"allowedIncrease": 1.1}, "nanStrategy": "replace"},
            {"name": "lat", "series": "latency_p99_s", "group": "l", "direction": "Either",
             "effectSize": {"allowedIncrease": 1.5, "allowedDecrease": 0.5},
             "outliers": {"strategy": "remove", "factor": 2}},
        ],
        "classifier": {"groupWeights": {"e": 70, "l": 30, "memory": 0},
                       "scoreThresholds": {"pass": 90, "marginal": 60}},
        "confidence": 0.95,
        "sequential": {"alpha": 0.005},
        "minimumEvidence": {"requests": 200, "intervals": 10},
        "memoryTrend": {"allowedGrowthPercentPerMinute": 1.5},
    })
    errors, lat = config.metrics
    assert errors.ratio == ("errors", "requests") and errors.critical and errors.nan_strategy is NanStrategy.REPLACE
    assert lat.direction is Direction.EITHER and lat.outliers.strategy is OutlierStrategy.REMOVE
    assert lat.effect_size.allowed_decrease == 0.5
    assert config.classifier.pass_score == 90 and config.classifier.marginal_score == 60
    assert config.confidence == 0.95 and config.sequential.alpha == 0.005
    assert config.sequential.allowed_increase == DEFAULT_CONFIG.sequential.allowed_increase  # merged
    assert config.minimum_evidence.requests == 200
    assert config.memory_trend.allowed_growth_percent_per_minute == 1.5


def test_custom_metrics_without_weights_weigh_groups_equally() -> None:
    config = load_canary_config({"metrics": [{"name": "a", "series": "x", "group": "g1"},
                                             {"name": "b", "series": "y", "group": "g2"}],
                                 "memoryTrend": {"enabled": False}})
    assert config.classifier.group_weights == {"g1": 50.0, "g2": 50.0}


@pytest.mark.parametrize(("data", "message"), [
    ({"classifier": {"scoreThresholds": {"pass": 120}}},
     "analysis.classifier.scoreThresholds.pass: 120 is not between 0 and 100; use e.g. 95"),
    ({"classifier": {"scoreThresholds": {"pass": 80, "marginal": 90}}},
     "analysis.classifier.scoreThresholds.marginal: 90 is above pass (80)"),
    ({"metrcs": []}, "analysis.metrcs: is not a known field; did you mean 'metrics'?"),
    ({"confidence": "high"}, "analysis.confidence: 'high' is not a number; use e.g. 0.98"),
    ({"confidence": 1.0}, "analysis.confidence: 1 is not in (0.5, 1); use e.g. 0.98"),
    ({"sequential": {"alpha": 0}}, "analysis.sequential.alpha: 0 is not in (0, 0.5]; use e.g. 0.01"),
    ({"minimumEvidence": {"intervals": 1}}, "analysis.minimumEvidence.intervals: 1 is not a whole number"),
    ({"memoryTrend": {"enabled": "yes"}}, "analysis.memoryTrend.enabled: 'yes' is not true or false"),
    ({"metrics": []}, "analysis.metrics: [] is not a non-empty list of metrics"),
    ({"metrics": [{"name": "a", "group": "g"}]}, "analysis.metrics[0]: needs exactly one of series or ratio"),
    ({"metrics": [{"name": "a", "group": "g", "ratio": ["x"]}]},
     "analysis.metrics[0].ratio: ['x'] is not [numerator, denominator]"),
    ({"metrics": [{"name": "a", "series": "x", "group": "g", "direction": "up"}]},
     "analysis.metrics[0].direction: 'up' is not one of increase, decrease, either"),
    ({"metrics": [{"name": "a", "series": "x", "group": "g", "effectSize": {"allowedIncrease": 0.5}}]},
     "analysis.metrics[0].effectSize.allowedIncrease: 0.5 is below 1; use e.g. 1.2"),
    ({"metrics": [{"name": "a", "series": "x", "group": "g", "effectSize": {"allowedDecrease": 1.5}}]},
     "analysis.metrics[0].effectSize.allowedDecrease: 1.5 is not in (0, 1]"),
    ({"metrics": [{"name": "a", "series": "x", "group": "g", "critcal": True}]},
     "analysis.metrics[0].critcal: is not a known field; did you mean 'critical'?"),
    ({"metrics": [{"name": "a", "series": "x", "group": "g"}, {"name": "a", "series": "y", "group": "g"}]},
     "analysis.metrics[1].name: 'a' is used twice"),
    ({"metrics": [{"series": "x", "group": "g"}]}, "analysis.metrics[0].name: is missing"),
    ({"classifier": {"groupWeights": {"errors": 100}}},
     "analysis.classifier.groupWeights: has no weight for group 'latency'; add e.g. latency: 25"),
    ({"classifier": {"groupWeights": {"errors": 0, "latency": 0, "cpu": 0, "memory": 0}}},
     "gives every group weight 0"),
])
def test_errors_name_the_field_the_value_and_the_fix(data: dict, message: str) -> None:
    with pytest.raises(CanaryConfigError) as info:
        load_canary_config(data)
    assert message in str(info.value), str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(CanaryConfigError) as info:
        load_canary_config({"confidence": 2, "sequential": {"alpha": -1}}, where="canary.analysis")
    assert len(info.value.problems) == 2
    assert all(p.startswith("canary.analysis.") for p in info.value.problems)


def test_yaml_file_with_or_without_an_analysis_key(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("confidence: 0.95\n")
    wrapped = tmp_path / "wrapped.yaml"
    wrapped.write_text("analysis:\n  confidence: 0.9\n")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_canary_config_file(plain).confidence == 0.95
    assert load_canary_config_file(wrapped).confidence == 0.9
    assert load_canary_config_file(empty) is DEFAULT_CONFIG


@pytest.mark.parametrize(("text", "message"), [
    ("a: [", "is not valid YAML at line"),
    ("- 1\n- 2\n", "(top level): [1, 2] is not a mapping"),
    ("sequential: {alpah: 0.1}\n", "sequential.alpah: is not a known field; did you mean 'alpha'?"),
])
def test_bad_yaml_files_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(CanaryConfigError) as info:
        load_canary_config_file(f)
    assert str(info.value).startswith(str(f)) and message in str(info.value)


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(CanaryConfigError, match="cannot read the file"):
        load_canary_config_file(tmp_path / "nope.yaml")


@pytest.mark.parametrize(("data", "message"), [
    ({"metrics": [{"name": "a", "series": "x", "group": "g", "effectSize": {"criticalIncrease": 0.9}}]},
     "analysis.metrics[0].effectSize.criticalIncrease: 0.9 is below 1; use e.g. 2"),
    ({"metrics": [{"name": "a", "series": "x", "group": "g", "mustHaveData": "yes"}]},
     "analysis.metrics[0].mustHaveData: 'yes' is not true or false"),
    ({"successRate": {"alpha": 0.9}}, "analysis.successRate.alpha: 0.9 is not in (0, 0.5]; use e.g. 0.01"),
    ({"successRate": {"alowedIncrease": 2}}, "analysis.successRate.alowedIncrease: is not a known field; "
                                             "did you mean 'allowedIncrease'?"),
    ({"routes": {"minRequests": 0}}, "analysis.routes.minRequests: 0 is not a whole number of at least 1"),
    ({"latencyTail": {"quantiles": [0.99, 1.5]}}, "analysis.latencyTail.quantiles[1]: 1.5 is not in (0.5, 1)"),
    ({"latencyTail": {"quantiles": 0.99}}, "analysis.latencyTail.quantiles: 0.99 is not a list"),
    ({"classifier": "heavy"}, "analysis.classifier: 'heavy' is not a mapping; use keys like groupWeights"),
])
def test_new_sections_keep_the_error_style(data: dict, message: str) -> None:
    with pytest.raises(CanaryConfigError) as info:
        load_canary_config(data)
    assert message in str(info.value), str(info.value)


def test_kayenta_critical_thresholds_and_must_have_data_are_read() -> None:
    config = load_canary_config({"metrics": [
        {"name": "a", "series": "x", "group": "g", "critical": True, "mustHaveData": True,
         "effectSize": {"allowedIncrease": 1.1, "criticalIncrease": 2.0, "criticalDecrease": 0.5}}],
        "memoryTrend": {"enabled": False}})
    (m,) = config.metrics
    assert m.must_have_data and m.effect_size.critical_increase == 2.0 and m.effect_size.critical_decrease == 0.5
    assert load_canary_config(config.to_dict()) == config


_finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(confidence=st.floats(0.51, 0.999), alpha=st.floats(0.001, 0.5), tail=st.lists(
    st.floats(0.51, 0.999), min_size=1, max_size=3).map(tuple), min_requests=st.integers(1, 10_000),
    allowed=st.floats(1.0, 10.0))
@settings(max_examples=60, deadline=None)
def test_any_valid_configuration_round_trips(confidence: float, alpha: float, tail: tuple[float, ...],
                                             min_requests: int, allowed: float) -> None:
    config = load_canary_config({"confidence": confidence, "successRate": {"alpha": alpha, "allowedIncrease": allowed},
                                 "latencyTail": {"quantiles": list(tail)}, "routes": {"minRequests": min_requests}})
    assert load_canary_config(config.to_dict()) == config


@given(value=st.one_of(_finite, st.text(max_size=5), st.booleans(), st.none()))
@settings(max_examples=80, deadline=None)
def test_any_bad_confidence_names_the_field_and_never_escapes_as_another_error(value: object) -> None:
    try:
        load_canary_config({"confidence": value})
    except CanaryConfigError as exc:
        assert all(p.startswith("analysis.confidence: ") and "; use" in p for p in exc.problems), exc.problems
    else:
        assert isinstance(value, float) and 0.5 < value < 1.0
