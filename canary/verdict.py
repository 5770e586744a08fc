"""What the judge returns: a verdict, one result per metric, and the explanation of each."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .profile_diff import ProfileDiff


class Result(str, Enum):
    """Outcome of a judgement; CONTINUE means 'keep watching' (only before the final call)."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    CONTINUE = "continue"


class Classification(str, Enum):
    """Kayenta's per-metric classes, after the metric's direction is applied."""

    PASS = "pass"
    HIGH = "high"
    LOW = "low"
    NODATA = "nodata"
    # Kayenta's NodataFailMetric: a non-critical metric marked mustHaveData had no data; it
    # counts as a failed metric in its group's score.
    NODATA_FAIL = "nodata-fail"


class Rule(str, Enum):
    """The rule that decided a metric's classification."""

    MANN_WHITNEY = "mann-whitney"
    IDENTICAL = "identical"
    NODATA = "nodata"
    SEQUENTIAL = "sequential-errors"
    TREND = "theil-sen-trend"
    SUCCESS_RATE = "sequential-unexpected-answers"
    LATENCY_TAIL = "sequential-latency-tail"


def _finite(v: float | None) -> float | None:
    """Return v, or None when it is missing or not finite (JSON has no inf/NaN)."""
    if v is None or not math.isfinite(v):
        return None
    return float(v)


@dataclass
class Explanation:
    """Numbers behind one metric's classification (None where a number does not apply)."""

    rule: Rule
    n_baseline: int
    n_canary: int
    baseline_mean: float | None = None
    canary_mean: float | None = None
    estimate: float | None = None
    interval: tuple[float, float] | None = None
    confidence: float | None = None
    effect_size: float | None = None
    threshold: dict[str, float] = field(default_factory=dict)
    p_value: float | None = None
    e_value: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping; infinite or missing numbers become null."""
        return {
            "rule": self.rule.value,
            "n_baseline": self.n_baseline,
            "n_canary": self.n_canary,
            "baseline_mean": _finite(self.baseline_mean),
            "canary_mean": _finite(self.canary_mean),
            "estimate": _finite(self.estimate),
            "interval": None if self.interval is None else [_finite(self.interval[0]), _finite(self.interval[1])],
            "confidence": _finite(self.confidence),
            "effect_size": _finite(self.effect_size),
            "threshold": {k: _finite(v) for k, v in self.threshold.items()},
            "p_value": _finite(self.p_value),
            "e_value": _finite(self.e_value),
            "note": self.note,
        }


@dataclass
class MetricResult:
    """One metric's classification; ``counted`` says whether it enters its group's score.

    ``critical_failure`` is Kayenta's rule: a critical metric fails the whole canary when it
    has no data, or when it is high (low) by at least its criticalIncrease (criticalDecrease).
    ``route`` names the route a per-route result is about.
    """

    name: str
    group: str
    classification: Classification
    critical: bool
    explanation: Explanation
    counted: bool = True
    critical_failure: bool = False
    route: str | None = None

    @property
    def failed(self) -> bool:
        """True when the metric counts against the canary."""
        return self.classification in (Classification.HIGH, Classification.LOW, Classification.NODATA_FAIL)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {
            "name": self.name,
            "group": self.group,
            "classification": self.classification.value,
            "critical": self.critical,
            "critical_failure": self.critical_failure,
            "counted": self.counted,
            "route": self.route,
            "explanation": self.explanation.to_dict(),
        }


@dataclass(frozen=True)
class GroupScore:
    """One group's share of passing metrics (Kayenta's group score) and its weight."""

    name: str
    weight: float
    score: float | None  # None: no metric of the group had data, so it is left out of the summary
    passed: int
    counted: int
    nodata: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {"name": self.name, "weight": self.weight, "score": None if self.score is None else round(self.score, 2),
                "passed": self.passed, "counted": self.counted, "nodata": self.nodata}


@dataclass
class Verdict:
    """The judgement of a canary against its baseline at one moment.

    ``decided_at`` is the index of the interval at which a decision was reached before the
    end of the window (sequential fail, early pass), or None when the whole window was used.
    """

    result: Result
    score: float | None
    reason: str
    metrics: list[MetricResult]
    decided_at: int | None = None
    score_class: str | None = None
    intervals: int = 0
    final: bool = True
    evidence: dict[str, float] = field(default_factory=dict)
    groups: list[GroupScore] = field(default_factory=list)
    # Routes with too little traffic on a side for a per-route decision (they still count pooled).
    thin_routes: list[str] = field(default_factory=list)
    # Where the CPU time went (py-spy, canary vs baseline), attached by the analysis window.
    profile: ProfileDiff | None = None

    @property
    def decided(self) -> bool:
        """True when the verdict is pass or fail (the watch can stop)."""
        return self.result in (Result.PASS, Result.FAIL)

    def metric(self, name: str) -> MetricResult:
        """Return the result of the metric with this name (KeyError if absent)."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping; ``verdict`` is pass, fail, inconclusive or continue."""
        return {
            "verdict": self.result.value,
            "score": None if self.score is None else round(self.score, 2),
            "score_class": self.score_class,
            "decided_at": self.decided_at,
            "reason": self.reason,
            "final": self.final,
            "intervals": self.intervals,
            "evidence": {k: _finite(v) for k, v in self.evidence.items()},
            "groups": [g.to_dict() for g in self.groups],
            "thin_routes": list(self.thin_routes),
            "profile": None if self.profile is None else self.profile.to_dict(),
            "metrics": {m.name: m.to_dict() for m in self.metrics},
        }
