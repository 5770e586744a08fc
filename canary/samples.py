"""The sample structure every source produces and the judge consumes: one value per interval."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .exceptions import InvalidSamples

# The series the default configuration understands (see canary.config.DEFAULT_CONFIG).
REQUESTS = "requests"
ERRORS = "errors"
LATENCY_P99 = "latency_p99_s"
CPU_SECONDS = "cpu_seconds"
RSS_BYTES = "rss_bytes"
STANDARD_SERIES = (REQUESTS, ERRORS, LATENCY_P99, CPU_SECONDS, RSS_BYTES)
# Answers that are neither 2xx nor 3xx (4xx and 5xx; 499, the client going away, is not counted).
UNEXPECTED = "unexpected"
# Seconds of CPU spent inside request handlers (thread CPU time, microsecond resolution).
HANDLER_CPU_SECONDS = "handler_cpu_seconds"
# Requests per latency bucket, cumulative like Prometheus' ``le`` buckets: "le:0.5" counts
# the interval's requests that took at most 0.5 s, "le:+Inf" all of them.
BUCKET_PREFIX = "le:"
# Per-route series: "route:/api/feed|requests", "route:/api/feed|le:0.5".
ROUTE_PREFIX = "route:"
ROUTE_SEPARATOR = "|"


def bucket_series(le: float) -> str:
    """Return the name of the cumulative bucket series with upper bound le."""
    return f"{BUCKET_PREFIX}{'+Inf' if math.isinf(le) else format(le, 'g')}"


def route_series(route: str, name: str) -> str:
    """Return the name of series ``name`` restricted to one route template."""
    return f"{ROUTE_PREFIX}{route}{ROUTE_SEPARATOR}{name}"


def split_route_series(name: str) -> tuple[str, str] | None:
    """Return (route, series) for a per-route series name, else None."""
    if not name.startswith(ROUTE_PREFIX) or ROUTE_SEPARATOR not in name:
        return None
    route, _, series = name[len(ROUTE_PREFIX):].rpartition(ROUTE_SEPARATOR)
    return route, series


def bucket_bounds(names: object, prefix: str = "") -> list[tuple[float, str]]:
    """Return (le, series name) of every cumulative bucket series among names with this prefix, by le."""
    out: list[tuple[float, str]] = []
    start = prefix + BUCKET_PREFIX
    for name in names:  # type: ignore[attr-defined]
        if isinstance(name, str) and name.startswith(start):
            try:
                out.append((float(name[len(start):]), name))
            except ValueError:
                continue
    return sorted(out)


def _as_value(value: object, where: str) -> float:
    """Return value as a float (None means missing, NaN), or raise naming where it is."""
    if value is None:
        return math.nan
    # bool is an int in Python, but true/false in a samples file is a mistake, not a count.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidSamples(where, f"{value!r} is not a number; use a number or null for a missing value")
    return float(value)


@dataclass
class Samples:
    """Per-interval values of named series for one role (canary or baseline).

    ``series[name][i]`` is the value over interval ``i`` (counts per interval, or a gauge at
    its end); NaN marks a missing value. ``problems`` lists what went wrong while collecting
    (a failed scrape, a query without data): the judge never passes on samples with problems.
    """

    interval_s: float
    series: dict[str, list[float]]
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Validate shape: positive interval, numeric values, every series of one length."""
        if isinstance(self.interval_s, bool) or not isinstance(self.interval_s, (int, float)):
            raise InvalidSamples("interval_s", f"{self.interval_s!r} is not a number of seconds; use e.g. 2")
        if not math.isfinite(self.interval_s) or self.interval_s <= 0:
            raise InvalidSamples("interval_s", f"{self.interval_s!r} must be a positive number of seconds; use e.g. 2")
        if not isinstance(self.series, dict):
            raise InvalidSamples("series", "must be an object mapping series names to lists of values")
        clean: dict[str, list[float]] = {}
        length: int | None = None
        first = ""
        for name, values in self.series.items():
            if not isinstance(name, str) or not name:
                raise InvalidSamples("series", f"{name!r} is not a series name; use a non-empty string")
            if not isinstance(values, (list, tuple)):
                raise InvalidSamples(f"series.{name}", "must be a list of values, one per interval")
            clean[name] = [_as_value(v, f"series.{name}[{i}]") for i, v in enumerate(values)]
            if length is None:
                length, first = len(values), name
            elif len(values) != length:
                raise InvalidSamples(
                    f"series.{name}",
                    f"has {len(values)} values but series.{first} has {length}; "
                    "every series needs one value per interval",
                )
        self.series = clean
        self.interval_s = float(self.interval_s)
        self.problems = [str(p) for p in self.problems]

    def __len__(self) -> int:
        """Return the number of intervals."""
        return len(next(iter(self.series.values()), []))

    def get(self, name: str) -> list[float] | None:
        """Return the values of a series, or None when it is absent."""
        return self.series.get(name)

    @classmethod
    def _trusted(cls, interval_s: float, series: dict[str, list[float]], problems: list[str]) -> Samples:
        """Build without validation from parts of an already validated instance (slicing is hot in replays)."""
        obj = cls.__new__(cls)
        obj.interval_s, obj.series, obj.problems = interval_s, series, problems
        return obj

    def head(self, count: int) -> Samples:
        """Return the first ``count`` intervals (what was known at that time)."""
        return Samples._trusted(self.interval_s, {k: v[:count] for k, v in self.series.items()}, list(self.problems))

    def tail(self, start: int) -> Samples:
        """Return the intervals from index ``start`` on (e.g. after a warm-up)."""
        return Samples._trusted(self.interval_s, {k: v[start:] for k, v in self.series.items()}, list(self.problems))

    @classmethod
    def from_json(cls, obj: Any) -> Samples:
        """Build from the file format ``{"interval_s": s, "series": {name: [v0, ...]}}``."""
        if not isinstance(obj, dict):
            raise InvalidSamples("(top level)", 'must be an object like {"interval_s": 2, "series": {...}}')
        unknown = sorted(set(obj) - {"interval_s", "series", "problems"})
        if unknown:
            raise InvalidSamples(unknown[0], "is not a known field; expected interval_s, series "
                                 "(and optional problems)")
        if "interval_s" not in obj:
            raise InvalidSamples("interval_s", "is missing; give the length of one interval in seconds, e.g. 2")
        if "series" not in obj:
            raise InvalidSamples("series", 'is missing; give e.g. {"requests": [10, 12], "errors": [0, 1]}')
        problems = obj.get("problems", [])
        if not isinstance(problems, list) or not all(isinstance(p, str) for p in problems):
            raise InvalidSamples("problems", "must be a list of strings")
        return cls(obj["interval_s"], obj["series"], problems)

    def to_json(self) -> dict[str, Any]:
        """Return the file format; missing values become null."""
        out: dict[str, Any] = {
            "interval_s": self.interval_s,
            "series": {k: [None if math.isnan(v) else v for v in vs] for k, vs in self.series.items()},
        }
        if self.problems:
            out["problems"] = list(self.problems)
        return out
