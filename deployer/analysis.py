"""One bake's analysis: collect samples every interval and ask the canary judge.

The judge is pure and knows nothing of time; this window owns the clock. Samples start
after the warm-up (the first seconds after a restart are not representative), the judge
is asked after every interval, and it may decide early (a sequential fail, or an early
pass backed by enough evidence). When the bake time is over it must decide.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from canary.config import CanaryConfig
from canary.judge import judge
from canary.profile_diff import where_the_time_went
from canary.profiler import ProfileRun
from canary.samples import Samples
from canary.sources import PrometheusSource, ScrapeCollector
from canary.verdict import Classification, Result, Verdict
from deployer.fleet.base import Host

log = logging.getLogger(__name__)


class SampleFeed(Protocol):
    def collect(self, now: float) -> None:
        """Take this interval's measurements (a scrape), if the source works that way."""
        ...

    def samples(self, now: float) -> tuple[Samples, Samples]:
        """Everything collected in this window so far: (baseline, canary)."""
        ...


class ScrapeFeed:
    """Direct scrape of each host's /metrics, counters turned into per-interval values."""

    def __init__(self, *, canary: list[Host], baseline: list[Host], timeout_s: float, interval_s: float) -> None:
        self._collector = ScrapeCollector([h.address for h in canary], [h.address for h in baseline],
                                          timeout=timeout_s, interval_s=interval_s)

    def collect(self, now: float) -> None:
        self._collector.scrape()

    def samples(self, now: float) -> tuple[Samples, Samples]:
        return self._collector.samples()

    def close(self) -> None:
        self._collector.close()


class PrometheusFeed:
    """Range queries against a Prometheus server over the window so far."""

    def __init__(self, *, url: str, canary: list[Host], baseline: list[Host], interval_s: float,
                 wall_clock: Callable[[], float], start_wall: float) -> None:
        self._source = PrometheusSource(url)
        self._canary = [_instance(h) for h in canary]
        self._baseline = [_instance(h) for h in baseline]
        self._interval = interval_s
        self._wall = wall_clock
        self._start = start_wall

    def collect(self, now: float) -> None:
        """Prometheus scrapes on its own; nothing to do."""

    def samples(self, now: float) -> tuple[Samples, Samples]:
        return self._source.fetch(canary=self._canary, baseline=self._baseline, start=self._start,
                                  end=self._wall(), step_s=self._interval)


def _instance(host: Host) -> str:
    """The `instance` label Prometheus gives a scrape target: host:port of its address."""
    return host.address.split("://", 1)[-1].rstrip("/")


PidLookup = Callable[[Host], "int | None"]


def local_pid(host: Host, timeout_s: float = 1.0) -> int | None:
    """Return the pid a host on this machine reports on /version; None for a remote host or no answer.

    py-spy samples a process of this machine by pid, so only loopback hosts qualify; a
    container's pid in its own namespace is not one py-spy can attach to from here.
    """
    if urlsplit(host.address).hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    try:
        pid = httpx.get(f"{host.address.rstrip('/')}/version", timeout=timeout_s).json().get("pid")
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) and pid > 0 else None


def _cpu_failed(verdict: Verdict, groups: tuple[str, ...] = ("cpu",)) -> bool:
    """True when a CPU metric counts against the canary."""
    return any(m.group in groups and (m.failed or m.critical_failure) for m in verdict.metrics)


def _slowness_seen(verdict: Verdict) -> bool:
    """True when latency counts against the canary or a CPU metric reads high, even if not yet decisive."""
    return _cpu_failed(verdict, ("latency",)) or any(
        m.group == "cpu" and m.classification is Classification.HIGH for m in verdict.metrics)


class AnalysisWindow:
    """Samples every `interval_s` from `start` (after warm-up) and judges until `end`.

    With a profiler, canary and baseline are sampled with py-spy over the first seconds of
    the window; the comparison is attached to every verdict once ready, and a CPU fail waits
    for it (at most the profile's length) so that it says where the time went.
    """

    def __init__(self, *, config: CanaryConfig, feed: SampleFeed, interval_s: float, start: float,
                 bake_s: float, profiler: Callable[[], ProfileRun | None] | None = None) -> None:
        self.config = config
        self.feed = feed
        self.interval_s = interval_s
        self.start = start
        self.end = start + bake_s
        self._next = start
        self.intervals = 0
        self.troubled = False
        self.last: Verdict | None = None
        self.last_samples: tuple[Samples, Samples] | None = None
        self._profiler_factory = profiler
        self.profile_run: ProfileRun | None = None

    def due(self, now: float) -> bool:
        """Whether an interval has passed since the last look."""
        return now >= self._next

    def extend(self, seconds: float) -> None:
        """Bake longer on the same window (after an inconclusive verdict)."""
        self.end = max(self.end, self._next) + seconds

    def step(self, now: float) -> Verdict | None:
        """Collect this interval and ask the judge (final once the bake time is over).

        None until there is a first interval to judge.
        """
        first = self.intervals == 0 and self._next == self.start
        if first and self._profiler_factory is not None:
            self.profile_run = self._profiler_factory()
        self.feed.collect(now)
        # Keep the cadence even if a tick was late, without bunching up the next looks.
        self._next = max(self._next + self.interval_s, now + self.interval_s / 2)
        baseline, canary = self.feed.samples(now)
        self.intervals = len(canary)
        self.troubled = bool(baseline.problems or canary.problems)
        final = now >= self.end
        if first and not final:
            return None
        self.last_samples = (baseline, canary)
        self.last = self._explain(judge(self.config, baseline, canary, final=final), final)
        return self.last

    def _explain(self, verdict: Verdict, final: bool) -> Verdict:
        """Attach the profile comparison; hold a CPU fail until it can say where the time went."""
        run = self.profile_run
        if run is None:
            return verdict
        diff = run.result()
        if diff is None:
            if verdict.result is Result.FAIL and _cpu_failed(verdict) and not final:
                return dataclasses.replace(verdict, result=Result.CONTINUE, decided_at=None,
                                           reason=f"{verdict.reason}; waiting for the CPU profile "
                                                  f"({run.seconds:g}s) to say where the time went")
            return verdict
        verdict.profile = diff
        if verdict.result is Result.FAIL and _cpu_failed(verdict):
            verdict.reason = f"{verdict.reason}; {where_the_time_went(diff)}"
        elif verdict.result is Result.FAIL and diff.grown and _slowness_seen(verdict):
            # A latency fail decided before the CPU metrics could be: when the profile shows lines
            # whose CPU share grew, they are most likely where the time went.
            verdict.reason = f"{verdict.reason}; {where_the_time_went(diff)}"
        return verdict

    def close(self) -> None:
        """Stop a profile still running."""
        if self.profile_run is not None:
            self.profile_run.close()


WindowFactory = Callable[..., AnalysisWindow]


def window_factory(*, config: CanaryConfig, source: str, interval_s: float, warmup_s: float,
                   scrape_timeout_s: float, prometheus_url: str,
                   wall_clock: Callable[[], float], pid_of: PidLookup = local_pid) -> WindowFactory:
    """A function that opens an analysis window for given canary and baseline hosts."""

    def profiler_for(canary: list[Host], baseline: list[Host]) -> Callable[[], ProfileRun | None] | None:
        if not config.profile.enabled:
            return None

        def start() -> ProfileRun | None:
            c = [p for p in (pid_of(h) for h in canary) if p is not None]
            b = [p for p in (pid_of(h) for h in baseline) if p is not None]
            if not c or not b:
                log.info("no local pids to profile canary=%s baseline=%s", canary, baseline)
                return None
            return ProfileRun(canary_pids=c, baseline_pids=b, seconds=config.profile.seconds,
                              top=config.profile.top).start()

        return start

    def open_window(*, canary: list[Host], baseline: list[Host], bake_s: float, now: float) -> AnalysisWindow:
        feed: SampleFeed
        if source == "prometheus":
            feed = PrometheusFeed(url=prometheus_url, canary=canary, baseline=baseline, interval_s=interval_s,
                                  wall_clock=wall_clock, start_wall=wall_clock() + warmup_s)
        else:
            feed = ScrapeFeed(canary=canary, baseline=baseline, timeout_s=scrape_timeout_s, interval_s=interval_s)
        return AnalysisWindow(config=config, feed=feed, interval_s=interval_s, start=now + warmup_s, bake_s=bake_s,
                              profiler=profiler_for(canary, baseline))

    return open_window


def _clean(values: list[float]) -> list[float | None]:
    return [None if v is None or not math.isfinite(v) else round(float(v), 6) for v in values]


def metric_series(config: CanaryConfig, baseline: Samples, canary: Samples) -> dict[str, dict[str, list[float | None]]]:
    """Per-interval values of each judged metric, canary and baseline, for the dashboard's charts."""

    def values(samples: Samples, series: str | None, ratio: tuple[str, str] | None) -> list[float | None]:
        if series is not None:
            return _clean(samples.series.get(series, []))
        if ratio is not None:
            num, den = samples.series.get(ratio[0], []), samples.series.get(ratio[1], [])
            return _clean([n / d if d else math.nan for n, d in zip(num, den)])
        return []

    out: dict[str, dict[str, list[float | None]]] = {}
    for metric in config.metrics:
        out[metric.name] = {"canary": values(canary, metric.series, metric.ratio),
                            "baseline": values(baseline, metric.series, metric.ratio)}
    for name in canary.series:
        out.setdefault(name, {"canary": _clean(canary.series[name]),
                              "baseline": _clean(baseline.series.get(name, []))})
    return out
