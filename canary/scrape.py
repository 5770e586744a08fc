"""Pure parsing of the Prometheus text format and the per-interval arithmetic of direct scrapes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from .counters import counter_increase, histogram_quantile, is_server_error, is_unexpected
from .samples import (
    CPU_SECONDS,
    ERRORS,
    HANDLER_CPU_SECONDS,
    LATENCY_P99,
    REQUESTS,
    RSS_BYTES,
    STANDARD_SERIES,
    UNEXPECTED,
    bucket_series,
    route_series,
)

Labels = tuple[tuple[str, str], ...]

REQUESTS_METRIC = "http_requests_total"
BUCKET_METRIC = "http_request_duration_seconds_bucket"
CPU_METRIC = "process_cpu_seconds_total"
RSS_METRIC = "process_resident_memory_bytes"
START_METRIC = "process_start_time_seconds"
HANDLER_CPU_METRIC = "http_request_cpu_seconds_total"
# Request metrics labelled by a feature flag's variant for the request's user (canary.variants).
FLAG_REQUESTS_METRIC = "app_flag_requests_total"
FLAG_BUCKET_METRIC = "app_flag_request_duration_seconds_bucket"
QUANTILE = 0.99


@dataclass(frozen=True)
class HostReading:
    """The values of one scrape of one host that the analysis uses."""

    requests: dict[Labels, float] = field(default_factory=dict)
    buckets: dict[Labels, float] = field(default_factory=dict)
    cpu_seconds: float = math.nan
    rss_bytes: float = math.nan
    start_time: float = math.nan
    handler_cpu: dict[Labels, float] = field(default_factory=dict)
    # The app_flag_* families, raw (labels include flag and variant); read by canary.variants.
    flag_requests: dict[Labels, float] = field(default_factory=dict)
    flag_buckets: dict[Labels, float] = field(default_factory=dict)


def parse_exposition(text: str) -> HostReading:
    """Parse a /metrics page (Prometheus text format); raises ValueError on malformed text."""
    requests: dict[Labels, float] = {}
    buckets: dict[Labels, float] = {}
    handler_cpu: dict[Labels, float] = {}
    flag_requests: dict[Labels, float] = {}
    flag_buckets: dict[Labels, float] = {}
    scalars: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            if sample.name == REQUESTS_METRIC:
                requests[labels] = float(sample.value)
            elif sample.name == BUCKET_METRIC:
                buckets[labels] = float(sample.value)
            elif sample.name == HANDLER_CPU_METRIC:
                handler_cpu[labels] = float(sample.value)
            elif sample.name == FLAG_REQUESTS_METRIC:
                flag_requests[labels] = float(sample.value)
            elif sample.name == FLAG_BUCKET_METRIC:
                flag_buckets[labels] = float(sample.value)
            elif sample.name in (CPU_METRIC, RSS_METRIC, START_METRIC):
                scalars[sample.name] = float(sample.value)
    return HostReading(requests, buckets, scalars.get(CPU_METRIC, math.nan), scalars.get(RSS_METRIC, math.nan),
                       scalars.get(START_METRIC, math.nan), handler_cpu, flag_requests, flag_buckets)


def _is_error(labels: Labels) -> bool:
    """True for a server error (status 5xx); 499 (client went away) is not the server's fault."""
    return is_server_error(dict(labels).get("status", ""))


def _is_unexpected(labels: Labels) -> bool:
    """True for an answer that is neither 2xx nor 3xx; 499 (the client went away) is nobody's answer."""
    return is_unexpected(dict(labels).get("status", ""))


def _increases(previous: dict[Labels, float], current: dict[Labels, float], restarted: bool) -> dict[Labels, float]:
    """Per-series increase between two readings of one host.

    A series absent before started at zero since (prometheus_client creates a labelled
    series at its first increment), so its whole value is new; a restart resets them all.
    """
    out: dict[Labels, float] = {}
    for key, value in current.items():
        before = 0.0 if restarted else previous.get(key, 0.0)
        out[key] = counter_increase(before, value)
    return out


@dataclass(frozen=True)
class HostInterval:
    """One host's values over one interval."""

    requests: float
    errors: float
    cpu_seconds: float
    rss_bytes: float
    buckets: dict[float, float]  # increase per upper bound (le), summed over routes
    # Per-route counts: route -> series name -> increase (requests, errors, unexpected, le:..., cpu).
    routes: dict[str, dict[str, float]] = field(default_factory=dict)
    handler_cpu: float = math.nan


def _add(d: dict[str, float], key: str, value: float) -> None:
    """Accumulate value under key."""
    d[key] = d.get(key, 0.0) + value


def host_interval(previous: HostReading, current: HostReading) -> HostInterval:
    """Return one host's requests, errors, CPU seconds, bucket increases (by le), RSS and per-route counts."""
    # A changed start time is a restart even when every counter has already grown past its old value.
    restarted = (
        not math.isnan(previous.start_time)
        and not math.isnan(current.start_time)
        and previous.start_time != current.start_time
    )
    req = _increases(previous.requests, current.requests, restarted)
    routes: dict[str, dict[str, float]] = {}
    for labels, inc in req.items():
        per = routes.setdefault(dict(labels).get("route", ""), {})
        _add(per, REQUESTS, inc)
        _add(per, ERRORS, inc if _is_error(labels) else 0.0)
        _add(per, UNEXPECTED, inc if _is_unexpected(labels) else 0.0)
    buckets: dict[float, float] = {}
    for labels, inc in _increases(previous.buckets, current.buckets, restarted).items():
        d = dict(labels)
        le = float(d.get("le", "nan"))
        buckets[le] = buckets.get(le, 0.0) + inc
        _add(routes.setdefault(d.get("route", ""), {}), bucket_series(le), inc)
    cpu_inc = _increases(previous.handler_cpu, current.handler_cpu, restarted)
    for labels, inc in cpu_inc.items():
        _add(routes.setdefault(dict(labels).get("route", ""), {}), HANDLER_CPU_SECONDS, inc)
    cpu = current.cpu_seconds if restarted else counter_increase(previous.cpu_seconds, current.cpu_seconds)
    return HostInterval(
        requests=sum(req.values()),
        errors=sum(v for k, v in req.items() if _is_error(k)),
        cpu_seconds=cpu,
        rss_bytes=current.rss_bytes,
        buckets=buckets,
        routes=routes,
        handler_cpu=float(sum(cpu_inc.values())) if cpu_inc else math.nan,
    )


def role_interval(pairs: list[tuple[HostReading | None, HostReading | None]]) -> dict[str, float]:
    """Aggregate one interval over a role's hosts from (previous, current) readings.

    Counts and CPU are summed over hosts, RSS is averaged, p99 comes from the merged bucket
    increases as histogram_quantile would compute it. Beside the standard series come the
    unexpected answers, the cumulative buckets (``le:...``) and every series per route. If
    any host lacks either reading the role's interval is missing (NaN): a partial sum would
    look like a drop in traffic.
    """
    hosts = [host_interval(p, c) for p, c in pairs if p is not None and c is not None]
    if not pairs or len(hosts) < len(pairs):
        return {name: math.nan for name in STANDARD_SERIES}
    merged: dict[float, float] = {}
    for h in hosts:
        for le, inc in h.buckets.items():
            merged[le] = merged.get(le, 0.0) + inc
    requests = float(sum(h.requests for h in hosts))
    p99 = histogram_quantile(QUANTILE, list(merged.items())) if requests > 0 else math.nan
    out = {
        REQUESTS: requests,
        ERRORS: float(sum(h.errors for h in hosts)),
        LATENCY_P99: p99,
        CPU_SECONDS: float(sum(h.cpu_seconds for h in hosts)),
        RSS_BYTES: float(sum(h.rss_bytes for h in hosts)) / len(hosts),
        UNEXPECTED: float(sum(h.routes[r].get(UNEXPECTED, 0.0) for h in hosts for r in h.routes)),
    }
    if all(not math.isnan(h.handler_cpu) for h in hosts):
        out[HANDLER_CPU_SECONDS] = float(sum(h.handler_cpu for h in hosts))
    for le, count in merged.items():
        out[bucket_series(le)] = count
    for h in hosts:
        for route, values in h.routes.items():
            for name, value in values.items():
                _add(out, route_series(route, name), value)
    return out
