"""Typed analysis configuration in Kayenta's vocabulary (pydantic models), and the defaults.

The models read the YAML vocabulary (camelCase aliases) and refuse anything else; every
constraint raises an error whose text says what is wrong and the fix, so that
``canary.config`` only has to put the field path in front (see ``canary.fields`` for the
checked types). The default understands the series of ``canary.samples``; why each
threshold has its value is said beside it.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .fields import Choice, Count, Flag, Name, Number
from .samples import CPU_SECONDS, ERRORS, HANDLER_CPU_SECONDS, LATENCY_P99, REQUESTS, RSS_BYTES, UNEXPECTED


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


class _Model(BaseModel):
    """Frozen, alias-reading, extra-refusing base of every configuration section."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, validate_default=False)


class EffectSize(_Model):
    """Allowed change as a ratio of means: canary/baseline above allowed_increase is 'high'.

    The critical thresholds are Kayenta's: a critical metric fails the whole canary only when
    its ratio also reaches criticalIncrease (or falls to criticalDecrease); a smaller proven
    change still counts against the score like any failing metric.
    """

    allowed_increase: Annotated[float, Number(1.0, math.inf, "1.2")] = Field(1.0, alias="allowedIncrease")
    allowed_decrease: Annotated[float, Number(0.0, 1.0, "0.8", lo_open=True)] = Field(1.0, alias="allowedDecrease")
    critical_increase: Annotated[float, Number(1.0, math.inf, "2")] = Field(1.0, alias="criticalIncrease")
    critical_decrease: Annotated[float, Number(0.0, 1.0, "0.5", lo_open=True)] = Field(1.0, alias="criticalDecrease")


class Outliers(_Model):
    """IQR outlier removal: values beyond factor x IQR outside the quartiles are dropped."""

    strategy: Annotated[OutlierStrategy, Choice(OutlierStrategy)] = OutlierStrategy.KEEP
    factor: Annotated[float, Number(0.0, math.inf, "3.0", lo_open=True)] = 3.0


def _ratio(value: Any) -> Any:
    """Accept [numerator, denominator] as a pair of series names."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(s, str) and s for s in value):
        return (value[0], value[1])
    raise PydanticCustomError("canary", "{v} is not [numerator, denominator]; use e.g. [errors, requests]",
                              {"v": repr(value)})


class MetricConfig(_Model):
    """One metric: a series (or a ratio of two series) compared canary against baseline."""

    name: Annotated[str, Name("latency_p99")] = Field(
        json_schema_extra={"missing": "give the metric a name, e.g. latency_p99"})
    group: Annotated[str, Name("latency")] = Field(
        json_schema_extra={"missing": "put the metric in a group, e.g. latency"})
    series: Annotated[str, Name("latency_p99_s")] | None = None
    ratio: tuple[str, str] | None = None
    direction: Annotated[Direction, Choice(Direction)] = Direction.EITHER
    critical: Annotated[bool, Flag()] = False
    # Kayenta's mustHaveData: without data a non-critical metric counts as failed in its group.
    must_have_data: Annotated[bool, Flag()] = Field(False, alias="mustHaveData")
    effect_size: EffectSize = Field(default_factory=EffectSize, alias="effectSize")
    nan_strategy: Annotated[NanStrategy, Choice(NanStrategy)] = Field(NanStrategy.REMOVE, alias="nanStrategy")
    outliers: Outliers = Field(default_factory=Outliers)

    _check_ratio = field_validator("ratio", mode="before")(lambda cls, v: None if v is None else _ratio(v))

    @model_validator(mode="after")
    def _one_source(self) -> MetricConfig:
        """Exactly one of series and ratio names the data."""
        if (self.series is None) == (self.ratio is None):
            raise PydanticCustomError("canary", "needs exactly one of series or ratio; use e.g. series: latency_p99_s "
                                      "or ratio: [errors, requests]")
        return self


class ScoreThresholds(_Model):
    """Kayenta's score thresholds: at least pass passes, below marginal fails early."""

    # Kayenta's usual thresholds: with four groups, any failing metric keeps a canary from
    # passing; only a heavy group (errors, latency) failing drops it below marginal mid-bake.
    pass_: Annotated[float, Number(0.0, 100.0, "95")] = Field(95.0, alias="pass")
    marginal: Annotated[float, Number(0.0, 100.0, "75")] = 75.0


# Errors matter most, then latency (both felt by users), then resources.
DEFAULT_WEIGHTS = {"errors": 40.0, "latency": 30.0, "cpu": 15.0, "memory": 15.0}


class Classifier(_Model):
    """Group weights and the score thresholds that classify the weighted score."""

    group_weights: dict[str, Annotated[float, Number(0.0, math.inf, "25")]] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS), alias="groupWeights")
    score_thresholds: ScoreThresholds = Field(ScoreThresholds(), alias="scoreThresholds")

    @property
    def pass_score(self) -> float:
        """The score at or above which the canary passes."""
        return self.score_thresholds.pass_

    @property
    def marginal_score(self) -> float:
        """The score below which the canary fails even before the end of the bake."""
        return self.score_thresholds.marginal


class Sequential(_Model):
    """The anytime-valid test on error counts (see canary.sequential)."""

    enabled: Annotated[bool, Flag()] = True
    # Chance, over the whole watch however long, of failing a canary whose errors are not worse.
    alpha: Annotated[float, Number(0.0, 0.5, "0.01", lo_open=True)] = 0.01
    errors: Annotated[str, Name("errors")] = ERRORS
    requests: Annotated[str, Name("requests")] = REQUESTS
    # H0 is "canary error rate <= allowed_increase x baseline's": 1 means any proven increase fails.
    # Proof takes about 8 canary errors against none on the baseline at an even split.
    allowed_increase: Annotated[float, Number(1.0, math.inf, "1.0")] = Field(1.0, alias="allowedIncrease")
    # Early pass without errors on either side needs the canary's own rate shown below this
    # (about 4,000 clean canary requests at 0.1%): busy services can pass early, the demo cannot.
    tolerated_error_rate: Annotated[float, Number(0.0, 1.0, "0.001", hi_open=True)] = Field(
        0.001, alias="toleratedErrorRate")


class SuccessRate(_Model):
    """Answers with a status the baseline does not give as often (any non-2xx/3xx), pooled and per route."""

    enabled: Annotated[bool, Flag()] = True
    # Shared by the pooled test (half) and every route's (the other half, split evenly): weighted
    # Bonferroni, so the chance of failing a canary whose answers are as good as the baseline's
    # stays below it with any number of routes.
    alpha: Annotated[float, Number(0.0, 0.5, "0.01", lo_open=True)] = 0.01
    unexpected: Annotated[str, Name("unexpected")] = UNEXPECTED
    requests: Annotated[str, Name("requests")] = REQUESTS
    # Expected 4xx (a stale link's 404) are answered by the baseline too, so comparing rates
    # keeps them expected; x1.2 forgives a route whose mix of users differs a little by side.
    allowed_increase: Annotated[float, Number(1.0, math.inf, "1.2")] = Field(1.2, alias="allowedIncrease")


class Routes(_Model):
    """Per-route comparisons: errors, unexpected answers and the latency tail of every route."""

    enabled: Annotated[bool, Flag()] = True
    # Below this many requests on a side a route cannot show anything but a total break; the
    # report says so instead of passing it silently (the route still counts in the pooled tests).
    min_requests: Annotated[int, Count(1, "30")] = Field(30, alias="minRequests")


class LatencyTail(_Model):
    """Request-level tail: the share of requests slower than the baseline's p95/p99, pooled over the bake."""

    enabled: Annotated[bool, Flag()] = True
    quantiles: tuple[Annotated[float, Number(0.5, 1.0, "0.99", lo_open=True, hi_open=True)], ...] = (0.95, 0.99)
    # Split over the quantiles (and the routes when per-route); see SuccessRate.alpha.
    alpha: Annotated[float, Number(0.0, 0.5, "0.01", lo_open=True)] = 0.01
    # Thresholds fall on bucket bounds and fresh hosts differ by a few percent in speed, so the
    # share above a bound can differ by a third without any regression; a tail regression that
    # hurts users doubles it or more.
    allowed_increase: Annotated[float, Number(1.0, math.inf, "1.5")] = Field(1.5, alias="allowedIncrease")
    # Also test the share slower than this multiple of the baseline's highest quantile (the next
    # bucket bound up): a good canary sends almost nothing there, so a few percent of requests
    # a second slower stand out even when each route serves a handful per interval. 0: off.
    far_multiple: Annotated[float, Number(0.0, 100.0, "2")] = Field(2.0, alias="farMultiple")
    # The baseline's quantiles are learned on its first intervals and both sides are tested on the
    # rest only (a bound learned on the data it tests would be biased). Fewer learning intervals
    # leave more of a short bake to test; the bound sits on a histogram bucket, so a rough
    # estimate costs little.
    learn_intervals: Annotated[int, Count(2, "4")] = Field(4, alias="learnIntervals")
    group: Annotated[str, Name("latency")] = "latency"


class Profile(_Model):
    """CPU by function: py-spy samples of canary and baseline over the same seconds (canary.profiler)."""

    enabled: Annotated[bool, Flag()] = True
    # 10 s at 100 samples/s gives a thousand samples a side: a line taking 20% more of the
    # CPU shows with a narrow interval, and a CPU fail waits at most this long for it.
    seconds: Annotated[float, Number(1.0, 300.0, "10")] = 10.0
    top: Annotated[int, Count(1, "5")] = 5


class MinimumEvidence(_Model):
    """Below these amounts of data the verdict is inconclusive, never pass."""

    # Per side. At the demo's 5 requests/s per host and 2 s intervals both are met after 12 s;
    # 50 clean requests already make "10% of requests fail" unlikely to go unseen (0.9^50 = 0.5%),
    # and 6 intervals per side are the fewest for which a 98% rank interval is informative.
    requests: Annotated[int, Count(0, "50")] = 50
    intervals: Annotated[int, Count(2, "6")] = 6
    series: Annotated[str, Name("requests")] = REQUESTS


class MemoryTrend(_Model):
    """Leak test: the canary's growth relative to the baseline, as % of the baseline level per minute."""

    enabled: Annotated[bool, Flag()] = True
    series: Annotated[str, Name("rss_bytes")] = RSS_BYTES
    group: Annotated[str, Name("memory")] = "memory"
    # Critical so that a clear leak stops the bake early instead of only lowering the final score.
    critical: Annotated[bool, Flag()] = True
    # A process growing 5% of its size a minute doubles in a quarter of an hour. Slower growth
    # cannot be told apart, within a bake of seconds, from warm-up differences and allocator
    # steps between two fresh processes; the longer analysis between waves can use a lower value.
    allowed_growth_percent_per_minute: Annotated[float, Number(0.0, math.inf, "2")] = Field(
        5.0, alias="allowedGrowthPercentPerMinute")
    min_intervals: Annotated[int, Count(3, "8")] = Field(8, alias="minIntervals")


DEFAULT_METRICS: tuple[MetricConfig, ...] = (
    # Kayenta's view of errors. Critical: any error regression it can show fails the canary.
    # x1.5 because per-interval error ratios are mostly zeros and their ratio of means is
    # noisy; the sequential test on counts is what fails a bad canary fast and precisely.
    MetricConfig(name="error_rate", group="errors", ratio=(ERRORS, REQUESTS), direction=Direction.INCREASE,
                 critical=True, effect_size=EffectSize(allowed_increase=1.5)),
    # p99 over a short interval is close to the slowest request in it, so one GC pause moves
    # it a lot: drop such outlying intervals (Tukey fences, IQR x3). x1.3 must be *shown*
    # (the interval clears it), so bucket-boundary noise passes and +150 ms or x2 fails.
    # The request-level tail (LatencyTail) sees what these per-interval values cannot.
    MetricConfig(name="latency_p99", group="latency", series=LATENCY_P99, direction=Direction.INCREASE,
                 effect_size=EffectSize(allowed_increase=1.3),
                 outliers=Outliers(strategy=OutlierStrategy.REMOVE, factor=3.0)),
    # CPU per request, not per interval: an uneven traffic split (a few percent either way)
    # would otherwise look like a CPU change. x1.2: hosts differ by a few percent, a release
    # that burns 20% more CPU per request is worth stopping.
    MetricConfig(name="cpu_per_request", group="cpu", ratio=(CPU_SECONDS, REQUESTS), direction=Direction.INCREASE,
                 effect_size=EffectSize(allowed_increase=1.2)),
    # The same question at fine resolution: thread CPU time inside the request handlers (a
    # nanosecond clock), free of the host's background work and of 10 ms ticks, so 10-20 ms
    # more per request shows within a bake. The process view above stays: it sees work done
    # outside the handlers (serialisation, background threads).
    MetricConfig(name="handler_cpu_per_request", group="cpu", ratio=(HANDLER_CPU_SECONDS, REQUESTS),
                 direction=Direction.INCREASE, effect_size=EffectSize(allowed_increase=1.2)),
    # Resident memory level; growth is judged separately by the memory trend.
    MetricConfig(name="rss", group="memory", series=RSS_BYTES, direction=Direction.INCREASE,
                 effect_size=EffectSize(allowed_increase=1.2)),
)

def _metrics(value: Any) -> Any:
    """Refuse an empty or non-list metrics section with an example."""
    if not isinstance(value, (list, tuple)) or not value:
        raise PydanticCustomError("canary", "{v} is not a non-empty list of metrics; use e.g. [{{name: latency_p99, "
                                  "series: latency_p99_s, group: latency}}]", {"v": repr(value)})
    return value


class CanaryConfig(_Model):
    """Everything the judge needs to know, typed and validated."""

    metrics: tuple[MetricConfig, ...] = DEFAULT_METRICS
    classifier: Classifier = Classifier()
    confidence: Annotated[float, Number(0.5, 1.0, "0.98", lo_open=True, hi_open=True)] = 0.98  # Kayenta's default
    early_pass: Annotated[bool, Flag()] = Field(True, alias="earlyPass")
    # Intervals at the start of the samples left out (Kayenta's beginCanaryAnalysisAfterMins);
    # 0 because the collector starts after the hosts report healthy.
    warmup_s: Annotated[float, Number(0.0, math.inf, "10")] = Field(0.0, alias="warmupSeconds")
    sequential: Sequential = Sequential()
    success_rate: SuccessRate = Field(SuccessRate(), alias="successRate")
    routes: Routes = Routes()
    latency_tail: LatencyTail = Field(LatencyTail(), alias="latencyTail")
    profile: Profile = Profile()
    minimum_evidence: MinimumEvidence = Field(MinimumEvidence(), alias="minimumEvidence")
    memory_trend: MemoryTrend = Field(MemoryTrend(), alias="memoryTrend")

    _check_metrics = field_validator("metrics", mode="before")(lambda cls, v: _metrics(v))

    @model_validator(mode="before")
    @classmethod
    def _default_weights(cls, data: Any) -> Any:
        """Custom metrics without weights: every group in use counts the same."""
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), (list, tuple)):
            return data
        classifier = data.get("classifier", {})
        if isinstance(classifier, dict) and "groupWeights" not in classifier and "group_weights" not in classifier:
            groups = [m.get("group") for m in data["metrics"] if isinstance(m, dict)]
            trend = data.get("memoryTrend", {})
            if not (isinstance(trend, dict) and trend.get("enabled") is False):
                groups.append(trend.get("group", "memory") if isinstance(trend, dict) else "memory")
            names = [g for g in dict.fromkeys(groups) if isinstance(g, str) and g]
            if names:
                data = {**data, "classifier": {**classifier, "groupWeights": {g: 100.0 / len(names) for g in names}}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> CanaryConfig:
        """Metric names are unique, every group in use has a weight, marginal <= pass."""
        problems: list[tuple[str, str]] = []
        seen: set[str] = set()
        for i, m in enumerate(self.metrics):
            if m.name in seen:
                problems.append((f"metrics[{i}].name", f"{m.name!r} is used twice; give each metric its own name"))
            seen.add(m.name)
        weights = self.classifier.group_weights
        for g in self.groups():
            if g not in weights:
                used_by = "" if any(m.group == g for m in self.metrics) else (
                    " (used by memoryTrend; or set memoryTrend.enabled: false)")
                problems.append(("classifier.groupWeights", f"has no weight for group {g!r}{used_by}; add e.g. {g}: 25"))
        groups = self.groups()
        if groups and all(g in weights for g in groups) and all(weights[g] == 0.0 for g in groups):
            problems.append(("classifier.groupWeights",
                             "gives every group weight 0; give at least one group a positive weight"))
        c = self.classifier
        if c.marginal_score > c.pass_score:
            problems.append(("classifier.scoreThresholds.marginal",
                             f"{_fmt(c.marginal_score)} is above pass ({_fmt(c.pass_score)}); use a value at most "
                             f"{_fmt(c.pass_score)}, e.g. 75"))
        if problems:
            raise PydanticCustomError("canary_many", "{problems}", {"problems": problems})
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration in its YAML vocabulary (what load_canary_config reads)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def groups(self) -> list[str]:
        """Return the groups that hold at least one metric (or the memory trend), in order."""
        names = [m.group for m in self.metrics]
        if self.memory_trend.enabled:
            names.append(self.memory_trend.group)
        return list(dict.fromkeys(names))


def _fmt(v: float) -> str:
    """Format a number without a needless '.0'."""
    return str(int(v)) if float(v).is_integer() else str(v)


DEFAULT_CONFIG = CanaryConfig()
