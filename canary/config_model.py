"""Typed analysis configuration in Kayenta's vocabulary, and the defaults.

The default understands the series ``requests``, ``errors``, ``latency_p99_s``,
``cpu_seconds`` and ``rss_bytes``; why each threshold has its value is said beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .samples import CPU_SECONDS, ERRORS, LATENCY_P99, REQUESTS, RSS_BYTES


class Direction(str, Enum):
    """Which change of a metric counts against the canary."""

    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"


class NanStrategy(str, Enum):
    """What to do with missing values: drop them, or count them as zero (Kayenta's choices)."""

    REMOVE = "remove"
    REPLACE = "replace"


class OutlierStrategy(str, Enum):
    """Whether to drop values beyond the IQR fences before testing."""

    KEEP = "keep"
    REMOVE = "remove"


@dataclass(frozen=True)
class EffectSize:
    """Allowed change as a ratio of means: canary/baseline above allowed_increase is 'high'."""

    allowed_increase: float = 1.0
    allowed_decrease: float = 1.0


@dataclass(frozen=True)
class Outliers:
    """IQR outlier removal: values beyond factor x IQR outside the quartiles are dropped."""

    strategy: OutlierStrategy = OutlierStrategy.KEEP
    factor: float = 3.0


@dataclass(frozen=True)
class MetricConfig:
    """One metric: a series (or a ratio of two series) compared canary against baseline."""

    name: str
    group: str
    series: str | None = None
    ratio: tuple[str, str] | None = None
    direction: Direction = Direction.EITHER
    critical: bool = False
    effect_size: EffectSize = field(default_factory=EffectSize)
    nan_strategy: NanStrategy = NanStrategy.REMOVE
    outliers: Outliers = field(default_factory=Outliers)


@dataclass(frozen=True)
class Classifier:
    """Group weights and the score thresholds that classify the weighted score."""

    group_weights: dict[str, float]
    # Kayenta's usual thresholds: with four groups, any failing metric keeps a canary from
    # passing; only a heavy group (errors, latency) failing drops it below marginal mid-bake.
    pass_score: float = 95.0
    marginal_score: float = 75.0


@dataclass(frozen=True)
class Sequential:
    """The anytime-valid test on error counts (see canary.sequential)."""

    enabled: bool = True
    # Chance, over the whole watch however long, of failing a canary whose errors are not worse.
    alpha: float = 0.01
    errors: str = ERRORS
    requests: str = REQUESTS
    # H0 is "canary error rate <= allowed_increase x baseline's": 1 means any proven increase fails.
    # Proof takes about 8 canary errors against none on the baseline at an even split.
    allowed_increase: float = 1.0
    # Early pass without errors on either side needs the canary's own rate shown below this
    # (about 4,000 clean canary requests at 0.1%): busy services can pass early, the demo cannot.
    tolerated_error_rate: float = 0.001


@dataclass(frozen=True)
class MinimumEvidence:
    """Below these amounts of data the verdict is inconclusive, never pass."""

    # Per side. At the demo's 5 requests/s per host and 2 s intervals both are met after 12 s;
    # 50 clean requests already make "10% of requests fail" unlikely to go unseen (0.9^50 = 0.5%),
    # and 6 intervals per side are the fewest for which a 98% rank interval is informative.
    requests: int = 50
    intervals: int = 6
    series: str = REQUESTS


@dataclass(frozen=True)
class MemoryTrend:
    """Leak test: the canary's growth relative to the baseline, as % of the baseline level per minute."""

    enabled: bool = True
    series: str = RSS_BYTES
    group: str = "memory"
    # Critical so that a clear leak stops the bake early instead of only lowering the final score.
    critical: bool = True
    # A process growing 5% of its size a minute doubles in a quarter of an hour. Slower growth
    # cannot be told apart, within a bake of seconds, from warm-up differences and allocator
    # steps between two fresh processes; the longer analysis between waves can use a lower value.
    allowed_growth_percent_per_minute: float = 5.0
    min_intervals: int = 8


@dataclass(frozen=True)
class CanaryConfig:
    """Everything the judge needs to know, typed and validated."""

    metrics: tuple[MetricConfig, ...]
    classifier: Classifier
    confidence: float = 0.98  # Kayenta's default for the rank-test intervals
    early_pass: bool = True
    # Intervals at the start of the samples left out (Kayenta's beginCanaryAnalysisAfterMins);
    # 0 because the collector starts after the hosts report healthy.
    warmup_s: float = 0.0
    sequential: Sequential = field(default_factory=Sequential)
    minimum_evidence: MinimumEvidence = field(default_factory=MinimumEvidence)
    memory_trend: MemoryTrend = field(default_factory=MemoryTrend)

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration in its YAML vocabulary (what load_canary_config reads)."""
        return {
            "confidence": self.confidence,
            "earlyPass": self.early_pass,
            "warmupSeconds": self.warmup_s,
            "metrics": [_metric_to_dict(m) for m in self.metrics],
            "classifier": {
                "groupWeights": dict(self.classifier.group_weights),
                "scoreThresholds": {"pass": self.classifier.pass_score, "marginal": self.classifier.marginal_score},
            },
            "sequential": {
                "enabled": self.sequential.enabled,
                "alpha": self.sequential.alpha,
                "errors": self.sequential.errors,
                "requests": self.sequential.requests,
                "allowedIncrease": self.sequential.allowed_increase,
                "toleratedErrorRate": self.sequential.tolerated_error_rate,
            },
            "minimumEvidence": {
                "requests": self.minimum_evidence.requests,
                "intervals": self.minimum_evidence.intervals,
                "series": self.minimum_evidence.series,
            },
            "memoryTrend": {
                "enabled": self.memory_trend.enabled,
                "series": self.memory_trend.series,
                "group": self.memory_trend.group,
                "critical": self.memory_trend.critical,
                "allowedGrowthPercentPerMinute": self.memory_trend.allowed_growth_percent_per_minute,
                "minIntervals": self.memory_trend.min_intervals,
            },
        }

    def groups(self) -> list[str]:
        """Return the groups that hold at least one metric (or the memory trend), in order."""
        names = [m.group for m in self.metrics]
        if self.memory_trend.enabled:
            names.append(self.memory_trend.group)
        return list(dict.fromkeys(names))


def _metric_to_dict(m: MetricConfig) -> dict[str, Any]:
    """Return one metric in the YAML vocabulary."""
    out: dict[str, Any] = {"name": m.name}
    if m.ratio is not None:
        out["ratio"] = list(m.ratio)
    else:
        out["series"] = m.series
    out.update({
        "group": m.group,
        "direction": m.direction.value,
        "critical": m.critical,
        "effectSize": {"allowedIncrease": m.effect_size.allowed_increase,
                       "allowedDecrease": m.effect_size.allowed_decrease},
        "nanStrategy": m.nan_strategy.value,
        "outliers": {"strategy": m.outliers.strategy.value, "factor": m.outliers.factor},
    })
    return out


DEFAULT_METRICS = (
    # Kayenta's view of errors. Critical: any error regression it can show fails the canary.
    # x1.5 because per-interval error ratios are mostly zeros and their ratio of means is
    # noisy; the sequential test on counts is what fails a bad canary fast and precisely.
    MetricConfig("error_rate", "errors", ratio=(ERRORS, REQUESTS), direction=Direction.INCREASE,
                 critical=True, effect_size=EffectSize(allowed_increase=1.5)),
    # p99 over a short interval is close to the slowest request in it, so one GC pause moves
    # it a lot: drop such outlying intervals (Tukey fences, IQR x3). x1.3 must be *shown*
    # (the interval clears it), so bucket-boundary noise passes and +150 ms or x2 fails.
    MetricConfig("latency_p99", "latency", series=LATENCY_P99, direction=Direction.INCREASE,
                 effect_size=EffectSize(allowed_increase=1.3),
                 outliers=Outliers(OutlierStrategy.REMOVE, 3.0)),
    # CPU per request, not per interval: an uneven traffic split (a few percent either way)
    # would otherwise look like a CPU change. x1.2: hosts differ by a few percent, a release
    # that burns 20% more CPU per request is worth stopping.
    MetricConfig("cpu_per_request", "cpu", ratio=(CPU_SECONDS, REQUESTS), direction=Direction.INCREASE,
                 effect_size=EffectSize(allowed_increase=1.2)),
    # Resident memory level; growth is judged separately by the memory trend.
    MetricConfig("rss", "memory", series=RSS_BYTES, direction=Direction.INCREASE,
                 effect_size=EffectSize(allowed_increase=1.2)),
)

DEFAULT_CONFIG = CanaryConfig(
    metrics=DEFAULT_METRICS,
    # Errors matter most, then latency (both felt by users), then resources.
    classifier=Classifier(group_weights={"errors": 40.0, "latency": 30.0, "cpu": 15.0, "memory": 15.0}),
)
