"""A flag's on-variant judged against its off-variant: parsing, fleet intervals, Samples, and the verdicts."""

from __future__ import annotations

import math

import pytest

from canary.config_model import DEFAULT_CONFIG, CanaryConfig, Sequential
from canary.counts import count_tests
from canary.flag_judge import false_fail_bound, flag_config, judge_flag
from canary.samples import ERRORS, REQUESTS, UNEXPECTED, bucket_series, route_series
from canary.scrape import HostReading, parse_exposition
from canary.variants import FlagInterval, flag_counters, flag_samples, flags_of, fleet_interval, variant_totals
from canary.verdict import Result
from tests.flag_support import FLAG, FlagFleet

INTERVAL_S = 10.0


def page(*, on_ok: float, on_500: float, off_ok: float, off_404: float = 0.0, start: float = 1000.0,
         on_fast: float | None = None, on_slow: float = 0.0) -> str:
    """A /metrics page with both app_flag families and one unrelated family."""
    on_fast = on_ok + on_500 if on_fast is None else on_fast
    off_total = off_ok + off_404
    lines = [
        "# TYPE http_requests_total counter",
        'http_requests_total{method="GET",route="/api/feed",status="200"} 50.0',
        "# TYPE app_flag_requests_total counter",
        f'app_flag_requests_total{{flag="f",variant="on",route="/api/feed",status="200"}} {on_ok}',
        f'app_flag_requests_total{{flag="f",variant="on",route="/api/feed",status="500"}} {on_500}',
        f'app_flag_requests_total{{flag="f",variant="off",route="/api/feed",status="200"}} {off_ok}',
        f'app_flag_requests_total{{flag="f",variant="off",route="/api/feed",status="404"}} {off_404}',
        'app_flag_requests_total{flag="f",variant="off",route="/api/feed",status="499"} 2.0',
        'app_flag_requests_total{flag="other",variant="on",route="/api/feed",status="200"} 7.0',
        'app_flag_requests_total{flag="f",variant="control",route="/api/feed",status="200"} 9.0',
        "# TYPE app_flag_request_duration_seconds histogram",
    ]
    for le, on_c, off_c in (("0.1", on_fast, off_total + 2), ("1.0", on_fast, off_total + 2),
                            ("2.5", on_fast + on_slow, off_total + 2), ("+Inf", on_fast + on_slow, off_total + 2)):
        lines.append(f'app_flag_request_duration_seconds_bucket{{flag="f",variant="on",le="{le}"}} {on_c}')
        lines.append(f'app_flag_request_duration_seconds_bucket{{flag="f",variant="off",le="{le}"}} {off_c}')
    lines += ['app_flag_request_duration_seconds_count{flag="f",variant="on"} 1.0',
              "# TYPE process_start_time_seconds gauge", f"process_start_time_seconds {start}"]
    return "\n".join(lines) + "\n"


# --- parsing --------------------------------------------------------------------------------------------------


def test_parse_keeps_both_flag_families_and_everything_else() -> None:
    r = parse_exposition(page(on_ok=10, on_500=1, off_ok=100))
    assert sum(r.requests.values()) == 50  # the existing families read as before
    assert len(r.flag_requests) == 7 and len(r.flag_buckets) == 8
    assert flags_of(r) == ["f", "other"]
    c = flag_counters(r, "f")
    assert c["on"].requests == {("/api/feed", "200"): 10.0, ("/api/feed", "500"): 1.0}
    assert c["off"].requests[("/api/feed", "499")] == 2.0
    assert c["on"].buckets == {0.1: 11.0, 1.0: 11.0, 2.5: 11.0, math.inf: 11.0}
    # A variant other than on/off, and another flag, are not this flag's on or off users.
    assert set(c) == {"on", "off"}
    assert flag_counters(r, "other")["off"].requests == {}


def test_a_page_without_flag_families_has_no_flags() -> None:
    r = parse_exposition('# TYPE http_requests_total counter\nhttp_requests_total{route="/",status="200"} 1\n')
    assert r.flag_requests == {} and flags_of(r) == []
    assert flag_counters(r, "f")["on"].requests == {}


# --- one interval over the fleet ------------------------------------------------------------------------------


def test_interval_sums_hosts_and_classifies_statuses_per_route() -> None:
    a0 = parse_exposition(page(on_ok=10, on_500=0, off_ok=100))
    a1 = parse_exposition(page(on_ok=15, on_500=2, off_ok=180, off_404=4))
    b0 = parse_exposition(page(on_ok=0, on_500=0, off_ok=0))
    b1 = parse_exposition(page(on_ok=5, on_500=1, off_ok=50))
    iv = fleet_interval("f", {"a": a0, "b": b0}, {"a": a1, "b": b1})
    assert iv.hosts == ("a", "b") and iv.missing == () and iv.restarted == ()
    assert iv.on[REQUESTS] == 5 + 2 + 5 + 1 and iv.on[ERRORS] == 3 and iv.on[UNEXPECTED] == 3
    # 404 is unexpected but not a server error; 499 (client went away) is neither, and did not grow.
    assert iv.off[REQUESTS] == 80 + 4 + 50 and iv.off[ERRORS] == 0 and iv.off[UNEXPECTED] == 4
    assert iv.on[route_series("/api/feed", ERRORS)] == 3
    assert iv.off[route_series("/api/feed", UNEXPECTED)] == 4
    assert iv.on[bucket_series(math.inf)] == 13 and iv.off[bucket_series(0.1)] == 134


def test_restart_counts_the_new_values_whole_even_where_a_counter_grew_past_its_old_value() -> None:
    before = parse_exposition(page(on_ok=5, on_500=0, off_ok=900, start=1000.0))
    # The process restarted: on grew past its old 5, off went down; every counter began at zero.
    after = parse_exposition(page(on_ok=8, on_500=1, off_ok=40, start=1000.0))
    iv = fleet_interval("f", {"a": before}, {"a": after})
    assert iv.restarted == ("a",)
    assert iv.on[REQUESTS] == 9 and iv.off[REQUESTS] == 42  # 40 ok + 2 client-closed, all new
    # A changed start time is a restart even when every counter grew.
    grown = parse_exposition(page(on_ok=50, on_500=0, off_ok=1000, start=2000.0))
    iv = fleet_interval("f", {"a": before}, {"a": grown})
    assert iv.restarted == ("a",) and iv.on[REQUESTS] == 50 and iv.off[REQUESTS] == 1002


def test_a_host_without_a_reading_at_either_end_is_left_out_of_both_variants() -> None:
    r0 = parse_exposition(page(on_ok=1, on_500=0, off_ok=10))
    r1 = parse_exposition(page(on_ok=3, on_500=0, off_ok=30))
    iv = fleet_interval("f", {"a": r0, "b": None}, {"a": r1, "b": r1, "c": r1})
    assert iv.hosts == ("a",) and iv.missing == ("b", "c")
    assert iv.on[REQUESTS] == 2 and iv.off[REQUESTS] == 20
    nothing = fleet_interval("f", {"a": None}, {"a": r1})
    assert not nothing.measured and nothing.on[REQUESTS] == 0


def test_a_series_that_appears_counts_from_zero() -> None:
    before = parse_exposition(page(on_ok=0, on_500=0, off_ok=10))
    stripped = HostReading(flag_requests={k: v for k, v in before.flag_requests.items()
                                          if dict(k)["variant"] != "on"}, start_time=1000.0)
    after = parse_exposition(page(on_ok=4, on_500=1, off_ok=10))
    iv = fleet_interval("f", {"a": stripped}, {"a": after})
    assert iv.on[REQUESTS] == 5 and iv.on[ERRORS] == 1 and iv.restarted == ()


# --- Samples --------------------------------------------------------------------------------------------------


def test_samples_have_the_judges_series_on_both_sides() -> None:
    fleet = FlagFleet(seed=1)
    previous = fleet.step()
    intervals = []
    for _ in range(6):
        current = fleet.step()
        intervals.append(fleet_interval(FLAG, previous, current))
        previous = current
    baseline, canary = flag_samples(intervals, INTERVAL_S)
    assert len(baseline) == len(canary) == 6 and baseline.problems == []
    assert set(baseline.series) == set(canary.series)
    for name in (REQUESTS, ERRORS, UNEXPECTED, bucket_series(0.25), bucket_series(math.inf),
                 route_series("/api/feed", REQUESTS), route_series("/api/feed", UNEXPECTED)):
        assert name in canary.series, name
    # Durations have no route label: no per-route buckets, so the latency tail is pooled only.
    assert not any(n.startswith("route:") and "|le:" in n for n in canary.series)
    on, off = variant_totals(intervals)
    assert on == sum(canary.series[REQUESTS]) and off == sum(baseline.series[REQUESTS])
    assert 0.03 < on / (on + off) < 0.07
    config = flag_config()
    rows = {r.name for r in count_tests(config, baseline, canary).rows}
    assert {"unexpected_answers", "unexpected_answers@/api/feed", "latency_tail_p95"} <= rows


def test_zeros_where_a_side_did_not_grow_and_nan_where_nothing_was_measured() -> None:
    one = FlagInterval(FLAG, {REQUESTS: 3.0, ERRORS: 0.0, UNEXPECTED: 0.0},
                       {REQUESTS: 90.0, ERRORS: 1.0, UNEXPECTED: 1.0, route_series("/x", REQUESTS): 90.0}, ("a",))
    none = FlagInterval(FLAG, {REQUESTS: 0.0}, {REQUESTS: 0.0}, (), ("a",))
    partial = FlagInterval(FLAG, {REQUESTS: 1.0}, {REQUESTS: 40.0}, ("a",), ("b",))
    baseline, canary = flag_samples([one, none, partial], INTERVAL_S)
    assert canary.series[route_series("/x", REQUESTS)][0] == 0.0
    assert math.isnan(canary.series[REQUESTS][1]) and math.isnan(baseline.series[ERRORS][1])
    assert baseline.series[ERRORS][2] == 0.0
    assert len(canary.problems) == 2 and "no host read" in canary.problems[0] and "b" in canary.problems[1]
    assert variant_totals([one, none, partial]) == (4, 130)


# --- the configuration ----------------------------------------------------------------------------------------


def test_flag_config_keeps_only_the_users_vs_users_signals() -> None:
    config = flag_config()
    assert [m.name for m in config.metrics] == ["error_rate"]
    assert not config.memory_trend.enabled and not config.profile.enabled
    assert config.sequential.enabled and config.success_rate.enabled and config.latency_tail.enabled
    assert config.routes.enabled and config.minimum_evidence.requests >= 1
    assert list(config.classifier.group_weights) == ["errors"]
    # The base's alphas and allowances carry over; a base that allows no minimum still waits for traffic.
    base = CanaryConfig(sequential=Sequential(alpha=0.001),
                        minimumEvidence={"requests": 0, "intervals": 3})  # type: ignore[arg-type]
    derived = flag_config(base)
    assert derived.sequential.alpha == 0.001 and derived.minimum_evidence.requests == 1
    assert derived.minimum_evidence.intervals == 3
    assert false_fail_bound(flag_config()) == pytest.approx(0.05)
    assert false_fail_bound(DEFAULT_CONFIG) == pytest.approx(0.05)


# --- verdicts on a synthetic fleet ----------------------------------------------------------------------------


def watch(fleet: FlagFleet, intervals: int, config: CanaryConfig | None = None) -> tuple[Result, int, str, set[Result]]:
    """Look after every interval like the watch does; return the first FAIL (or the last result), its look, reason."""
    config = config or flag_config()
    previous = fleet.step()
    collected = []
    seen: set[Result] = set()
    verdict = None
    for k in range(intervals):
        current = fleet.step()
        collected.append(fleet_interval(fleet.flag, previous, current))
        previous = current
        baseline, canary = flag_samples(collected, INTERVAL_S)
        verdict = judge_flag(config, baseline, canary, flag=fleet.flag)
        seen.add(verdict.result)
        if verdict.result is Result.FAIL:
            return verdict.result, k, verdict.reason, seen
    assert verdict is not None
    return verdict.result, intervals - 1, verdict.reason, seen


@pytest.mark.parametrize("seed", range(10))
def test_five_times_the_server_errors_fail_within_five_intervals_at_a_five_percent_share(seed: int) -> None:
    # About 300 on-variant requests per interval, 0.5% of the off-variant's are 5xx: the median is 2 looks.
    result, at, reason, _ = watch(FlagFleet(seed, share=0.05, p_err=0.005, err_mult=5.0), 20)
    assert result is Result.FAIL and at <= 4, (at, reason)
    assert "error" in reason


@pytest.mark.parametrize("seed", range(10))
def test_a_slow_tail_on_ten_percent_of_on_requests_fails(seed: int) -> None:
    # 10% of users have the flag; 10% of their requests take 1-2 s more.
    result, at, reason, _ = watch(FlagFleet(seed, share=0.10, slow_frac=0.10), 20)
    # The tail's bound is learned on the off-variant's first 4 intervals: index 4 is the first testable one.
    assert result is Result.FAIL and at <= 6, (at, reason)
    assert "latency tail" in reason


@pytest.mark.slow
def test_identical_variants_fail_at_most_alpha_of_the_time_over_many_looks() -> None:
    config = flag_config()
    runs = 200
    fails = passed = 0
    for seed in range(runs):
        result, _, _, seen = watch(FlagFleet(1000 + seed, share=0.05), 20, config)
        fails += result is Result.FAIL
        passed += Result.PASS in seen
    # Each run looks 20 times; the e-processes bound the chance of ever failing by their alphas.
    assert fails / runs <= config.sequential.alpha <= false_fail_bound(config)
    assert passed >= 0.9 * runs  # and a harmless flag is, nearly always, free to advance


def test_thin_on_variant_traffic_keeps_waiting() -> None:
    # One user in a thousand has the flag: a few on-variant requests per interval.
    for seed in range(5):
        result, _, reason, seen = watch(FlagFleet(seed, rate=300, share=0.002), 20)
        assert seen == {Result.CONTINUE}, seen
        assert "on-variant" in reason and "requests <" in reason


def test_a_host_unread_now_makes_the_look_inconclusive_and_nothing_measured_too() -> None:
    config = flag_config()
    fleet = FlagFleet(3)
    previous = fleet.step()
    collected = []
    for _ in range(8):
        current = fleet.step()
        collected.append(fleet_interval(FLAG, previous, current))
        previous = current
    baseline, canary = flag_samples(collected, INTERVAL_S)
    assert judge_flag(config, baseline, canary, flag=FLAG).result is Result.PASS
    down = judge_flag(config, baseline, canary, flag=FLAG, current_problems=["h1: ConnectError"])
    assert down.result is Result.INCONCLUSIVE and "h1" in down.reason and "h1: ConnectError" in down.problems
    empty_b, empty_c = flag_samples([], INTERVAL_S)
    assert judge_flag(config, empty_b, empty_c, flag=FLAG).result is Result.INCONCLUSIVE


def test_the_evidence_text_is_the_judges_report() -> None:
    fleet = FlagFleet(5, err_mult=10.0)
    previous = fleet.step()
    collected = []
    for _ in range(3):
        current = fleet.step()
        collected.append(fleet_interval(FLAG, previous, current))
        previous = current
    baseline, canary = flag_samples(collected, INTERVAL_S)
    v = judge_flag(flag_config(), baseline, canary, flag=FLAG)
    assert v.result is Result.FAIL
    assert v.explanation.startswith(f"flag {FLAG}: FAIL: on-variant worse")
    assert "errors_sequential" in v.explanation and "FAIL (score" in v.explanation
    assert v.to_dict()["judge"]["verdict"] == "fail" and v.on_requests > 0 and v.off_requests > v.on_requests
