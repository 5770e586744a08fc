"""The judge on pinned cases: classifications, scores, critical metrics, nodata, evidence, early decisions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from canary.config import DEFAULT_CONFIG, CanaryConfig, load_canary_config
from canary.judge import judge, replay
from canary.samples import Samples
from canary.verdict import Classification, Result, Rule

INTERVAL = 2.0


def series(n: int = 15, *, seed: int = 0, req: float = 20.0, err_rate: float = 0.0, p99: float = 0.02,
           cpu_per_req: float = 0.003, rss: float = 60e6, leak_pct_min: float = 0.0) -> dict[str, list[float]]:
    """Per-interval series of one role with mild, seeded noise."""
    rng = np.random.default_rng(seed)
    requests = rng.poisson(req, n).astype(float)
    errors = rng.binomial(requests.astype(int), err_rate).astype(float)
    minutes = np.arange(n) * INTERVAL / 60.0
    return {
        "requests": requests.tolist(),
        "errors": errors.tolist(),
        "latency_p99_s": (p99 * rng.lognormal(0.0, 0.15, n)).tolist(),
        "cpu_seconds": (requests * cpu_per_req * rng.lognormal(0.0, 0.1, n)).tolist(),
        "handler_cpu_seconds": (requests * cpu_per_req * 0.8 * rng.lognormal(0.0, 0.03, n)).tolist(),
        "rss_bytes": (rss * (1 + 0.001 * rng.standard_normal(n) + leak_pct_min / 100 * minutes)).tolist(),
    }


def pair(n: int = 15, *, canary: dict[str, float] | None = None, baseline: dict[str, float] | None = None,
         seed: int = 1) -> tuple[Samples, Samples]:
    """A (baseline, canary) pair with independent noise; keyword overrides change one side."""
    b = Samples(INTERVAL, series(n, seed=seed, **(baseline or {})))
    c = Samples(INTERVAL, series(n, seed=seed + 1000, **(canary or {})))
    return b, c


def test_identical_samples_pass() -> None:
    b, _ = pair()
    v = judge(DEFAULT_CONFIG, b, b, final=True)
    assert v.result is Result.PASS
    assert v.score == 100.0
    for m in v.metrics:
        if m.counted:
            assert m.classification is Classification.PASS
    assert v.metric("latency_p99").explanation.rule is Rule.IDENTICAL


def test_independent_noise_without_change_passes() -> None:
    b, c = pair()
    v = judge(DEFAULT_CONFIG, b, c, final=True)
    assert v.result is Result.PASS, v.reason
    lat = v.metric("latency_p99").explanation
    assert lat.rule is Rule.MANN_WHITNEY
    assert lat.interval is not None and lat.interval[0] <= 0 <= lat.interval[1]


def test_clear_increase_is_high_and_fails() -> None:
    b, c = pair(canary={"p99": 0.2})
    v = judge(DEFAULT_CONFIG, b, c, final=True)
    lat = v.metric("latency_p99")
    assert lat.classification is Classification.HIGH
    assert v.result is Result.FAIL
    e = lat.explanation
    assert e.n_baseline == e.n_canary == 15
    assert e.interval is not None and e.interval[0] > 0
    assert e.effect_size is not None and e.effect_size > 5
    assert e.p_value is not None and e.p_value < 0.001
    assert e.threshold["allowedIncrease"] == 1.3


def test_clear_decrease_is_low_for_a_metric_that_must_not_drop() -> None:
    config = load_canary_config({
        "metrics": [{"name": "throughput", "series": "requests", "group": "traffic", "direction": "decrease",
                     "effectSize": {"allowedDecrease": 0.8}}],
        "memoryTrend": {"enabled": False},
        "sequential": {"enabled": False},
    })
    b, c = pair(canary={"req": 5.0}, baseline={"req": 40.0})
    v = judge(config, b, c, final=True)
    assert v.metric("throughput").classification is Classification.LOW
    assert v.result is Result.FAIL


@pytest.mark.parametrize("direction", ["increase", "decrease", "either"])
def test_direction_forgives_only_harmless_changes(direction: str) -> None:
    config = load_canary_config({
        "metrics": [{"name": "lat", "series": "latency_p99_s", "group": "g", "direction": direction,
                     "effectSize": {"allowedIncrease": 1.2, "allowedDecrease": 0.8}}],
        "memoryTrend": {"enabled": False},
    })
    b, c = pair(canary={"p99": 0.005})  # four times faster
    cls = judge(config, b, c, final=True).metric("lat").classification
    assert cls is (Classification.PASS if direction == "increase" else Classification.LOW)


def test_shift_in_allowed_direction_passes() -> None:
    b, c = pair(canary={"p99": 0.005, "cpu_per_req": 0.001})
    v = judge(DEFAULT_CONFIG, b, c, final=True)
    assert v.result is Result.PASS
    assert "allowed direction" in v.metric("latency_p99").explanation.note


def test_small_shift_within_allowance_passes() -> None:
    b, c = pair(canary={"p99": 0.022})  # +10%, allowed is x1.3
    assert judge(DEFAULT_CONFIG, b, c, final=True).metric("latency_p99").classification is Classification.PASS


def test_missing_series_is_nodata() -> None:
    b, c = pair()
    del c.series["latency_p99_s"]
    v = judge(DEFAULT_CONFIG, b, c, final=True)
    assert v.metric("latency_p99").classification is Classification.NODATA
    assert v.metric("latency_p99").explanation.rule is Rule.NODATA
    # One of four metrics without data: the others still decide.
    assert v.result is Result.PASS


def test_all_nan_values_are_nodata_with_remove_and_zero_with_replace() -> None:
    b, c = pair()
    c.series["latency_p99_s"] = [math.nan] * len(c)
    assert judge(DEFAULT_CONFIG, b, c, final=True).metric("latency_p99").classification is Classification.NODATA
    config = load_canary_config({
        "metrics": [{"name": "lat", "series": "latency_p99_s", "group": "g", "nanStrategy": "replace"}],
        "memoryTrend": {"enabled": False},
    })
    # Replaced by zeros, the canary now looks (much) faster: data, not nodata.
    assert judge(config, b, c, final=True).metric("lat").classification is not Classification.NODATA


def test_half_or_more_metrics_without_data_fails() -> None:
    b, c = pair()
    for name in ("latency_p99_s", "rss_bytes", "handler_cpu_seconds"):  # 3 of the 5 metrics
        del c.series[name]
    v = judge(DEFAULT_CONFIG, b, c, final=True)
    assert v.result is Result.FAIL
    assert "no data" in v.reason


def test_critical_metric_fails_whatever_the_score() -> None:
    metrics = [{"name": f"m{i}", "series": "latency_p99_s", "group": "g"} for i in range(9)]
    metrics.append({"name": "cpu", "series": "cpu_seconds", "group": "g", "critical": True, "direction": "increase"})
    config = load_canary_config({"metrics": metrics, "memoryTrend": {"enabled": False},
                                 "classifier": {"scoreThresholds": {"pass": 80, "marginal": 50}}})
    b, c = pair(canary={"cpu_per_req": 0.03})
    v = judge(config, b, c, final=True)
    assert v.score == pytest.approx(90.0)
    assert v.result is Result.FAIL
    assert "critical" in v.reason and "cpu" in v.reason


def _scored_config(pass_score: float, marginal: float) -> CanaryConfig:
    return load_canary_config({
        "metrics": [
            {"name": "lat", "series": "latency_p99_s", "group": "a", "direction": "increase"},
            {"name": "cpu", "series": "cpu_seconds", "group": "a", "direction": "increase"},
            {"name": "rss", "series": "rss_bytes", "group": "b", "direction": "increase"},
        ],
        "classifier": {"groupWeights": {"a": 60, "b": 40}, "scoreThresholds": {"pass": pass_score,
                                                                                "marginal": marginal}},
        "memoryTrend": {"enabled": False},
        "sequential": {"enabled": False},
    })


@pytest.mark.parametrize(("pass_score", "marginal", "score_class"), [
    (70, 50, "pass"), (95, 70, "marginal"), (95, 75, "fail"),
])
def test_score_is_weighted_passes_over_counted_metrics(pass_score: float, marginal: float, score_class: str) -> None:
    b, c = pair(canary={"p99": 0.2})  # group a: 1 of 2 passes -> 50; group b: 100
    v = judge(_scored_config(pass_score, marginal), b, c, final=True)
    assert v.score == pytest.approx(0.6 * 50 + 0.4 * 100)
    assert v.score_class == score_class
    assert v.result is (Result.PASS if score_class == "pass" else Result.FAIL)


def test_group_without_data_drops_out_of_the_weights() -> None:
    b, c = pair(canary={"p99": 0.2})
    del c.series["rss_bytes"]
    v = judge(_scored_config(95, 75), b, c, final=True)
    assert v.score == pytest.approx(50.0)


def test_too_few_intervals_or_requests_is_inconclusive_never_pass() -> None:
    b, c = pair(n=4)
    v = judge(DEFAULT_CONFIG, b, c, final=True)
    assert v.result is Result.INCONCLUSIVE
    assert "4 intervals < 6" in v.reason
    b, c = pair(n=10, canary={"req": 2.0}, baseline={"req": 2.0})
    v = judge(DEFAULT_CONFIG, b, c, final=True)
    assert v.result is Result.INCONCLUSIVE and "requests <" in v.reason
    assert judge(DEFAULT_CONFIG, b, c, final=False).result is Result.CONTINUE


def test_source_problems_make_the_verdict_inconclusive() -> None:
    b, c = pair()
    c.problems.append("scrape of http://127.0.0.1:1/metrics failed: ConnectError")
    v = judge(DEFAULT_CONFIG, b, c, final=True)
    assert v.result is Result.INCONCLUSIVE
    assert "ConnectError" in v.reason


def test_source_problems_do_not_hide_a_proven_error_regression() -> None:
    b, c = pair(canary={"err_rate": 0.3})
    c.problems.append("scrape 9 failed")
    assert judge(DEFAULT_CONFIG, b, c, final=True).result is Result.FAIL


def test_interim_judgement_keeps_watching_a_good_canary() -> None:
    b, c = pair(n=8)
    v = judge(DEFAULT_CONFIG, b, c, final=False)
    assert v.result is Result.CONTINUE
    assert not v.decided


def test_error_spike_fails_early_with_decided_at() -> None:
    b, c = pair(n=20, canary={"err_rate": 0.25})
    v = replay(DEFAULT_CONFIG, b, c)
    assert v.result is Result.FAIL
    assert v.decided_at is not None and v.decided_at <= 3
    seq = v.metric("errors_sequential")
    assert seq.classification is Classification.HIGH
    assert seq.explanation.e_value is not None and seq.explanation.e_value >= 100
    assert "sequential" in v.reason


def test_latency_regression_fails_before_the_end_of_the_window() -> None:
    b, c = pair(n=20, canary={"p99": 0.17})
    v = replay(DEFAULT_CONFIG, b, c)
    assert v.result is Result.FAIL
    assert v.decided_at is not None and v.decided_at < 19


def test_memory_leak_fails_while_levels_still_overlap() -> None:
    b, c = pair(n=20, canary={"leak_pct_min": 20.0})
    v = judge(DEFAULT_CONFIG, b, c, final=True)
    assert v.metric("rss").classification is Classification.PASS  # levels: +6% at most
    trend = v.metric("rss_bytes_trend")
    assert trend.classification is Classification.HIGH
    assert trend.explanation.interval is not None and trend.explanation.interval[0] > 5.0
    assert v.result is Result.FAIL


def test_memory_noise_is_not_a_leak() -> None:
    b, c = pair(n=20)
    assert judge(DEFAULT_CONFIG, b, c, final=True).metric("rss_bytes_trend").classification is Classification.PASS


def test_early_pass_needs_strong_evidence() -> None:
    busy = {"req": 3000.0, "err_rate": 0.0}
    b, c = pair(n=20, canary=busy, baseline=busy)
    config = load_canary_config({"memoryTrend": {"enabled": False}})
    v = replay(config, b, c)
    assert v.result is Result.PASS
    assert v.decided_at is not None and v.decided_at < 19
    assert "early pass" in v.reason
    # The same traffic with the early pass switched off waits for the end of the window.
    off = config.model_copy(update={"early_pass": False})
    assert replay(off, b, c).decided_at is None


def test_no_early_pass_at_low_traffic() -> None:
    b, c = pair(n=20, canary={"req": 10.0}, baseline={"req": 10.0})
    v = replay(DEFAULT_CONFIG, b, c)
    assert v.result is Result.PASS and v.decided_at is None


def test_warmup_intervals_are_left_out() -> None:
    b, c = pair(n=16)
    c.series["latency_p99_s"][:3] = [1.0, 1.0, 1.0]  # a slow first few seconds on the canary only
    config = load_canary_config({"warmupSeconds": 6})
    v = judge(config, b, c, final=True)
    assert v.intervals == 13
    assert v.metric("latency_p99").explanation.n_canary == 13


def test_replay_returns_the_final_verdict_when_nothing_decides_early() -> None:
    b, c = pair()
    v = replay(DEFAULT_CONFIG, b, c)
    assert v.final and v.decided_at is None
    assert v.to_dict() == judge(DEFAULT_CONFIG, b, c, final=True).to_dict()


def test_verdict_is_strict_json() -> None:
    b, c = pair(canary={"err_rate": 0.3})
    b.series["errors"] = [0.0] * len(b)  # canary/baseline ratio is infinite
    d = replay(DEFAULT_CONFIG, b, c).to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["verdict"] == "fail"
    assert set(d) >= {"verdict", "score", "decided_at", "metrics", "reason"}
    for m in d["metrics"].values():
        assert {"classification", "explanation"} <= set(m)
        assert {"n_baseline", "n_canary", "estimate", "interval", "threshold", "p_value", "e_value",
                "rule"} <= set(m["explanation"])


def test_different_intervals_are_refused() -> None:
    b, c = pair()
    with pytest.raises(Exception, match="interval_s"):
        judge(DEFAULT_CONFIG, b, Samples(1.0, c.series), final=True)
