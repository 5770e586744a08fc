"""The post-deploy watch's decision, pure: is the live release hurting the fleet after it succeeded?

A canary proves a release is fine for the minutes of its bake; some faults show later
(a crash after an hour, a cache that fills, a slow leak of connections). After a release
reaches the whole fleet the watch keeps measuring it:

* for `watch_s` after it succeeded, at a *strict* sensitivity, and
* forever after, at a *relaxed* one (only clear, sustained harm acts),

and compares it with the figures the previous good release had while it was live.
It rolls back on:

* crashes: a host of the release stopped (went down, or restarted without the platform
  asking) `max_crashes` times within `crash_window_s` (one crash is restarted in place;
  a crash loop is a bad version);
* an error-rate regression: the fleet's error rate above both `error_ratio` times and
  `error_increase` (absolute) above the previous release's, in `bad_windows` consecutive
  windows with at least `min_requests` each;
* a latency regression: the p99 above `latency_ratio` times the previous release's and at
  least `latency_increase_s` more, in `bad_windows` consecutive windows.

No I/O, no clock: times are seconds passed in by the caller. Every decision carries its
evidence, which the controller writes to the audit log and onto the release.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Sensitivity(str, Enum):
    STRICT = "strict"      # inside the watch period after the release succeeded
    RELAXED = "relaxed"    # afterwards, for as long as the release is live


@dataclass(frozen=True)
class Thresholds:
    """What counts as harm at one sensitivity."""

    max_crashes: int = 2
    crash_window_s: float = 600.0
    error_ratio: float = 2.0
    error_increase: float = 0.02
    latency_ratio: float = 2.0
    latency_increase_s: float = 0.1
    bad_windows: int = 3
    min_requests: int = 20

    def __post_init__(self) -> None:
        if self.max_crashes < 1 or self.bad_windows < 1 or self.min_requests < 1:
            raise ValueError("max_crashes, bad_windows and min_requests must be at least 1")
        if self.error_ratio < 1 or self.latency_ratio < 1:
            raise ValueError("error_ratio and latency_ratio must be at least 1")


@dataclass(frozen=True)
class Policy:
    watch_s: float = 600.0
    strict: Thresholds = Thresholds()
    relaxed: Thresholds = Thresholds(max_crashes=3, crash_window_s=600.0, error_ratio=4.0, error_increase=0.1,
                                     latency_ratio=3.0, latency_increase_s=0.25, bad_windows=6, min_requests=50)

    def thresholds(self, since_success_s: float) -> tuple[Sensitivity, Thresholds]:
        """The sensitivity in force `since_success_s` after the release succeeded."""
        if since_success_s < self.watch_s:
            return Sensitivity.STRICT, self.strict
        return Sensitivity.RELAXED, self.relaxed


@dataclass(frozen=True)
class Window:
    """The whole fleet over one watch interval: requests, server errors and the p99 latency (s)."""

    requests: float
    errors: float
    p99_s: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests > 0 else math.nan


@dataclass(frozen=True)
class Figures:
    """A release's typical figures while it was live (medians over its healthy windows)."""

    windows: int
    error_rate: float
    p99_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"windows": self.windows, "error_rate": _finite(self.error_rate), "p99_s": _finite(self.p99_s)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figures:
        return cls(windows=int(data.get("windows", 0)), error_rate=_nan(data.get("error_rate")),
                   p99_s=_nan(data.get("p99_s")))


@dataclass(frozen=True)
class Crash:
    """A host of the live release stopped without the platform asking, `at` seconds (caller's clock)."""

    host: str
    at: float
    detail: str = ""


@dataclass(frozen=True)
class Decision:
    rollback: bool
    sensitivity: Sensitivity
    reasons: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)


def decide(*, policy: Policy, since_success_s: float, now: float, crashes: Sequence[Crash],
           windows: Sequence[Window], previous: Figures | None) -> Decision:
    """Roll back or not, with the reasons and the figures behind them.

    `windows` are the live release's complete windows, oldest first; `previous` is the
    previous good release's figures (None when nothing was recorded: then only the
    absolute parts of the thresholds apply, as if that release had no errors).
    """
    sensitivity, limits = policy.thresholds(since_success_s)
    reasons: list[str] = []
    recent = [c for c in crashes if now - c.at <= limits.crash_window_s]
    if len(recent) >= limits.max_crashes:
        hosts = sorted({c.host for c in recent})
        reasons.append(f"{len(recent)} crash(es) in {limits.crash_window_s:g}s on {', '.join(hosts)} "
                       f"(limit {limits.max_crashes})")
    tail = list(windows[-limits.bad_windows:])
    full = len(tail) == limits.bad_windows and all(w.requests >= limits.min_requests for w in tail)
    base_rate = previous.error_rate if previous is not None and not math.isnan(previous.error_rate) else 0.0
    error_limit = max(base_rate * limits.error_ratio, base_rate + limits.error_increase)
    if full and all(w.error_rate > error_limit for w in tail):
        rates = ", ".join(f"{w.error_rate:.1%}" for w in tail)
        reasons.append(f"error rate {rates} in {len(tail)} consecutive windows, above {error_limit:.1%} "
                       f"(previous release {base_rate:.1%})")
    base_p99 = previous.p99_s if previous is not None else math.nan
    if full and not math.isnan(base_p99):
        latency_limit = max(base_p99 * limits.latency_ratio, base_p99 + limits.latency_increase_s)
        if all(not math.isnan(w.p99_s) and w.p99_s > latency_limit for w in tail):
            p99s = ", ".join(f"{w.p99_s * 1000:.0f}ms" for w in tail)
            reasons.append(f"p99 latency {p99s} in {len(tail)} consecutive windows, above "
                           f"{latency_limit * 1000:.0f}ms (previous release {base_p99 * 1000:.0f}ms)")
    evidence: dict[str, Any] = {
        "sensitivity": sensitivity.value,
        "since_success_s": round(since_success_s, 1),
        "crashes": [{"host": c.host, "seconds_ago": round(now - c.at, 1), "detail": c.detail} for c in recent],
        "windows": [{"requests": w.requests, "errors": w.errors, "error_rate": _finite(w.error_rate),
                     "p99_s": _finite(w.p99_s)} for w in tail],
        "previous": previous.to_dict() if previous is not None else None,
        "limits": {"max_crashes": limits.max_crashes, "error_rate": round(error_limit, 4),
                   "latency_ratio": limits.latency_ratio, "bad_windows": limits.bad_windows},
    }
    return Decision(rollback=bool(reasons), sensitivity=sensitivity, reasons=reasons, evidence=evidence)


def figures_of(windows: Sequence[Window], *, min_requests: int) -> Figures | None:
    """A release's typical figures from its windows with enough traffic (medians); None without any."""
    usable = [w for w in windows if w.requests >= min_requests]
    if not usable:
        return None
    latencies = [w.p99_s for w in usable if not math.isnan(w.p99_s)]
    return Figures(windows=len(usable), error_rate=_median([w.error_rate for w in usable]),
                   p99_s=_median(latencies) if latencies else math.nan)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _finite(value: float) -> float | None:
    """JSON has no NaN: a missing figure is null."""
    return None if math.isnan(value) else round(value, 6)


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)
