"""Judge a feature flag's on-variant against its off-variant, PURE: the configuration and the step verdict.

Both variants run on the same hosts over the same seconds, so what differs between them is
the users' experience of the flag's code path: server errors, unexpected answers and the
latency tail. Per-host signals (CPU, memory, process metrics, the per-interval p99 of a
handful of requests) say nothing about one variant against the other and are left out.
The tests are the deploy canary's own anytime-valid ones, so the chance of ever turning off
a flag that does no harm stays bounded however often the watch looks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config_model import (
    DEFAULT_CONFIG,
    CanaryConfig,
    Classifier,
    Direction,
    EffectSize,
    MemoryTrend,
    MetricConfig,
    MinimumEvidence,
    Profile,
)
from .judge import doubts, judge
from .report import explain_text
from .samples import ERRORS, REQUESTS, Samples
from .verdict import Result, Verdict

__all__ = ["FlagVerdict", "false_fail_bound", "flag_config", "judge_flag"]

ERROR_GROUP = "errors"


def _error_metric(base: CanaryConfig) -> MetricConfig:
    """Return the base configuration's error-rate metric, or the default one."""
    for m in (*base.metrics, *DEFAULT_CONFIG.metrics):
        if m.ratio == (ERRORS, REQUESTS):
            return m.model_copy(update={"group": ERROR_GROUP})
    return MetricConfig(name="error_rate", group=ERROR_GROUP, ratio=(ERRORS, REQUESTS), direction=Direction.INCREASE,
                        critical=True, effect_size=EffectSize(allowed_increase=1.5))


def flag_config(base: CanaryConfig = DEFAULT_CONFIG) -> CanaryConfig:
    """Return the configuration for on-vs-off: the base's error, unexpected-answer and latency-tail tests only.

    Alphas, allowances, routes and the minimum evidence come from ``base``; CPU, memory, the
    per-interval p99 and the CPU profile are dropped (both variants share every host); the
    memory trend is off. The minimum evidence counts requests, so a thin on-variant keeps
    the verdict waiting.
    """
    me = base.minimum_evidence
    return CanaryConfig(
        metrics=(_error_metric(base),),
        classifier=Classifier(group_weights={ERROR_GROUP: 100.0},
                              score_thresholds=base.classifier.score_thresholds),
        confidence=base.confidence,
        early_pass=base.early_pass,
        # The watch starts measuring a step after the flag changed; there is no process warm-up.
        warmup_s=0.0,
        sequential=base.sequential.model_copy(update={"enabled": True, "errors": ERRORS, "requests": REQUESTS}),
        success_rate=base.success_rate.model_copy(update={"enabled": True}),
        routes=base.routes,
        latency_tail=base.latency_tail.model_copy(update={"enabled": True}),
        profile=Profile(enabled=False),
        # Never zero requests: too little on-variant traffic must mean "keep waiting".
        minimum_evidence=MinimumEvidence(requests=max(me.requests, 1), intervals=me.intervals, series=REQUESTS),
        memory_trend=MemoryTrend(enabled=False),
    )


def false_fail_bound(config: CanaryConfig) -> float:
    """Return the union bound on ever failing a harmless flag: the tests' alphas summed.

    The rank test's interim looks spend 1 - confidence in total (canary.stats.look_alpha);
    each e-process family (errors, unexpected answers, latency tail) spends its own alpha.
    """
    total = 1.0 - config.confidence
    if config.sequential.enabled:
        total += config.sequential.alpha
    if config.success_rate.enabled:
        total += config.success_rate.alpha
    if config.latency_tail.enabled:
        total += config.latency_tail.alpha
    return total


@dataclass
class FlagVerdict:
    """What one look says about a flag's step, with the judge's verdict behind it.

    ``result`` is FAIL when a regression is proven (turn the flag off), PASS when no
    regression is shown on at least the minimum evidence, from every host read now and
    without a test half-way to failing (the ramp may advance once its own time and traffic
    minimums are met), INCONCLUSIVE when the metrics cannot be trusted right now (a host
    unread, nothing measured yet), CONTINUE otherwise (keep watching).
    """

    flag: str
    result: Result
    reason: str
    verdict: Verdict
    on_requests: int
    off_requests: int
    intervals: int
    explanation: str
    problems: list[str]

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready mapping (the judge's verdict under ``judge``)."""
        return {"flag": self.flag, "result": self.result.value, "reason": self.reason,
                "on_requests": self.on_requests, "off_requests": self.off_requests, "intervals": self.intervals,
                "problems": list(self.problems), "judge": self.verdict.to_dict()}


def _total(samples: Samples) -> int:
    """Return the requests of a side, missing intervals left out."""
    values = samples.get(REQUESTS) or []
    return int(round(sum(v for v in values if not math.isnan(v))))


def judge_flag(config: CanaryConfig, baseline: Samples, canary: Samples, *, flag: str,
               current_problems: list[str] | None = None) -> FlagVerdict:
    """Judge the on-variant (canary) against the off-variant (baseline) at an interim look.

    ``current_problems`` are what went wrong at the latest look (a host that did not answer):
    while there are any the verdict cannot be PASS. Earlier intervals that left a host out
    left it out of both variants, so they stay comparable and count.
    """
    verdict = judge(config, baseline, canary, final=False)
    on, off = _total(canary), _total(baseline)
    now = list(current_problems or [])
    n = min(len(baseline), len(canary))

    def out(result: Result, reason: str) -> FlagVerdict:
        text = f"flag {flag}: {result.value.upper()}: {reason}\n{explain_text(verdict)}"
        return FlagVerdict(flag, result, reason, verdict, on, off, n, text, now + list(canary.problems))

    if verdict.result is Result.FAIL:
        return out(Result.FAIL, f"on-variant worse than off-variant: {verdict.reason}")
    if now:
        return out(Result.INCONCLUSIVE, "metrics source problems now: " + "; ".join(now))
    if n == 0:
        return out(Result.INCONCLUSIVE, "no interval measured yet")
    me = config.minimum_evidence
    short = []
    if n < me.intervals:
        short.append(f"{n} intervals < {me.intervals}")
    for side, total in (("on-variant", on), ("off-variant", off)):
        if total < me.requests:
            short.append(f"{side} {total} requests < {me.requests}")
    if short:
        return out(Result.CONTINUE, "too little evidence: " + "; ".join(short))
    half_way = doubts(verdict.metrics)
    if half_way:
        return out(Result.CONTINUE, "not shown worse, but not clean either: " + "; ".join(half_way) + "; watch longer")
    return out(Result.PASS, f"no regression shown on {on} on-variant and {off} off-variant requests over {n} "
                            f"intervals (judge: {verdict.result.value}, {verdict.reason})")
