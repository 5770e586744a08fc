"""A feature flag's two variants as a canary and its baseline, PURE: readings in, Samples out.

The app labels its request metrics by the variant of each flag for the request's user:

- ``app_flag_requests_total{flag, variant="on"|"off", route, status}`` (counter)
- ``app_flag_request_duration_seconds_bucket{flag, variant, le}`` (histogram, no route label)

``canary.scrape.parse_exposition`` reads both families into a HostReading; this module turns
two fleet-wide readings (host -> reading at the start and at the end of an interval) into
one interval per variant, and a list of intervals into the (baseline = off, canary = on)
Samples the judge reads, in the series names of ``canary.samples``. Both variants of an
interval are summed over exactly the same hosts and the same seconds, so whatever a host
contributes (or fails to) it contributes to both sides alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .counters import counter_increase, is_server_error, is_unexpected
from .samples import ERRORS, REQUESTS, UNEXPECTED, Samples, bucket_series, route_series

__all__ = [
    "OFF", "ON", "FlagInterval", "FlagReading", "VariantCounters", "flag_counters", "flag_samples", "flags_of",
    "fleet_interval", "variant_totals",
]

ON = "on"
OFF = "off"
VARIANTS = (ON, OFF)

Labels = tuple[tuple[str, str], ...]


class FlagReading(Protocol):
    """What this module reads of one scrape of one host (canary.scrape.HostReading has it)."""

    @property
    def flag_requests(self) -> Mapping[Labels, float]:
        """app_flag_requests_total samples by their labels."""
        ...

    @property
    def flag_buckets(self) -> Mapping[Labels, float]:
        """app_flag_request_duration_seconds_bucket samples by their labels."""
        ...

    @property
    def start_time(self) -> float:
        """process_start_time_seconds, NaN when the page does not have it."""
        ...


@dataclass(frozen=True)
class VariantCounters:
    """One host's cumulative counters for one variant of one flag."""

    # (route, status) -> requests; series that differ only in other labels are summed.
    requests: dict[tuple[str, str], float] = field(default_factory=dict)
    # Upper bound (le, +Inf included) -> cumulative count of requests at most that slow.
    buckets: dict[float, float] = field(default_factory=dict)


def _le(value: str) -> float:
    """Return a bucket bound as a float (NaN when it is not a number, so it is dropped)."""
    try:
        return float(value)
    except ValueError:
        return math.nan


def flag_counters(reading: FlagReading, flag: str) -> dict[str, VariantCounters]:
    """Return the counters of both variants of ``flag`` in one reading (a variant without series is empty)."""
    out = {v: VariantCounters() for v in VARIANTS}
    for labels, value in reading.flag_requests.items():
        d = dict(labels)
        if d.get("flag") != flag or d.get("variant") not in out:
            continue
        key = (d.get("route", ""), d.get("status", ""))
        per = out[d["variant"]].requests
        per[key] = per.get(key, 0.0) + value
    for labels, value in reading.flag_buckets.items():
        d = dict(labels)
        if d.get("flag") != flag or d.get("variant") not in out:
            continue
        le = _le(d.get("le", ""))
        if math.isnan(le):
            continue
        per_le = out[d["variant"]].buckets
        per_le[le] = per_le.get(le, 0.0) + value
    return out


def flags_of(reading: FlagReading) -> list[str]:
    """Return the keys of the flags a reading has series for, sorted."""
    keys = {dict(labels).get("flag", "") for labels in (*reading.flag_requests, *reading.flag_buckets)}
    return sorted(k for k in keys if k)


def _restarted(previous: FlagReading, current: FlagReading) -> bool:
    """True when the host's process restarted between the two readings.

    A changed start time says so even when every counter has grown past its old value; a
    counter that went down says so too, and then every counter of the host restarted from
    zero, not only the ones that happen to be lower now (per series, a busy one would be
    counted as a small increase instead of its whole new value).
    """
    if not math.isnan(previous.start_time) and not math.isnan(current.start_time):
        if previous.start_time != current.start_time:
            return True
    for before, now in ((previous.flag_requests, current.flag_requests),
                        (previous.flag_buckets, current.flag_buckets)):
        if any(value < before.get(key, 0.0) for key, value in now.items()):
            return True
    return False


def _increase(before: float, now: float, restarted: bool) -> float:
    """Return a counter's increase; a series absent before started at zero (prometheus_client's behaviour)."""
    return now if restarted else counter_increase(before, now)


@dataclass(frozen=True)
class FlagInterval:
    """One interval of one flag over the fleet: per variant, series name -> increase.

    ``hosts`` were read at both ends and are summed into both variants; ``missing`` had no
    reading at one end and are left out of both (their share of the interval is unknown,
    and leaving a host out of both sides keeps the comparison fair). ``restarted`` hosts
    count what they served since their restart.
    """

    flag: str
    on: dict[str, float]
    off: dict[str, float]
    hosts: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()

    @property
    def measured(self) -> bool:
        """True when at least one host was read at both ends."""
        return bool(self.hosts)


def _add(d: dict[str, float], key: str, value: float) -> None:
    """Accumulate value under key."""
    d[key] = d.get(key, 0.0) + value


def _variant_increase(before: VariantCounters, now: VariantCounters, restarted: bool, out: dict[str, float]) -> None:
    """Add one host's increases for one variant to ``out`` in the judge's series names."""
    for (route, status), value in now.requests.items():
        inc = _increase(before.requests.get((route, status), 0.0), value, restarted)
        err = inc if is_server_error(status) else 0.0
        bad = inc if is_unexpected(status) else 0.0
        _add(out, REQUESTS, inc)
        _add(out, ERRORS, err)
        _add(out, UNEXPECTED, bad)
        if route:
            _add(out, route_series(route, REQUESTS), inc)
            _add(out, route_series(route, ERRORS), err)
            _add(out, route_series(route, UNEXPECTED), bad)
    for le, value in now.buckets.items():
        _add(out, bucket_series(le), _increase(before.buckets.get(le, 0.0), value, restarted))


def fleet_interval(flag: str, previous: Mapping[str, FlagReading | None],
                   current: Mapping[str, FlagReading | None]) -> FlagInterval:
    """Return the on and off variants' increases between two fleet readings (host -> reading, None: failed).

    A host read at both ends adds its increases, reset-handled like Prometheus' rate() (a
    restart counts the new values whole). A host without a reading at either end (new to
    the list, scrape failed, removed) is left out of both variants for this interval: its
    counters since an unknown moment would mix in traffic from before the interval, when
    the flag may have had another percentage.
    """
    on: dict[str, float] = {REQUESTS: 0.0, ERRORS: 0.0, UNEXPECTED: 0.0}
    off: dict[str, float] = {REQUESTS: 0.0, ERRORS: 0.0, UNEXPECTED: 0.0}
    hosts: list[str] = []
    missing: list[str] = []
    restarted: list[str] = []
    for host in sorted(set(previous) | set(current)):
        before, now = previous.get(host), current.get(host)
        if before is None or now is None:
            missing.append(host)
            continue
        hosts.append(host)
        reset = _restarted(before, now)
        if reset:
            restarted.append(host)
        b, c = flag_counters(before, flag), flag_counters(now, flag)
        _variant_increase(b[ON], c[ON], reset, on)
        _variant_increase(b[OFF], c[OFF], reset, off)
    return FlagInterval(flag, on, off, tuple(hosts), tuple(missing), tuple(restarted))


def flag_samples(intervals: Sequence[FlagInterval], interval_s: float) -> tuple[Samples, Samples]:
    """Return (baseline, canary) = (off, on) Samples from consecutive intervals of one flag.

    Every series seen on either side in any interval is present on both, as 0 where it did
    not grow (a labelled counter exists only from its first increment, and the tests need
    the same buckets on both sides); an interval without any host measured is missing
    (NaN) on both sides and recorded as a problem, as is one that left hosts out.
    """
    names = sorted({name for iv in intervals for side in (iv.on, iv.off) for name in side})
    off: dict[str, list[float]] = {name: [] for name in names}
    on: dict[str, list[float]] = {name: [] for name in names}
    problems: list[str] = []
    for i, iv in enumerate(intervals):
        if not iv.measured:
            problems.append(f"interval {i}: no host read at both ends ({', '.join(iv.missing) or 'no hosts'})")
        elif iv.missing:
            problems.append(f"interval {i}: no reading of {', '.join(iv.missing)} at one end; "
                            "left out of both variants")
        for name in names:
            off[name].append(iv.off.get(name, 0.0) if iv.measured else math.nan)
            on[name].append(iv.on.get(name, 0.0) if iv.measured else math.nan)
    return Samples(interval_s, off, list(problems)), Samples(interval_s, on, list(problems))


def variant_totals(intervals: Sequence[FlagInterval]) -> tuple[int, int]:
    """Return the (on, off) requests counted over the intervals."""
    on = sum(iv.on.get(REQUESTS, 0.0) for iv in intervals if iv.measured)
    off = sum(iv.off.get(REQUESTS, 0.0) for iv in intervals if iv.measured)
    return int(round(on)), int(round(off))
