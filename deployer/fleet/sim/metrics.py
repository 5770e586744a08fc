"""Per-host metrics of simulated hosts, read by the real analysis window and the real judge.

Every host serves `rate` requests a second; a version's error rate and latency factor
(default: healthy) decide what its hosts report. Counts are summed over a role's hosts
and gauges averaged, as the direct scrape does, so the judge sees the same shapes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from canary.config import CanaryConfig
from canary.samples import CPU_SECONDS, ERRORS, LATENCY_P99, REQUESTS, RSS_BYTES, Samples
from deployer.analysis import AnalysisWindow, WindowFactory
from deployer.fleet.base import Host
from deployer.fleet.sim.runtime import SimRuntime


@dataclass(frozen=True)
class Quality:
    """How a version behaves on a host: share of failed requests, and latency relative to normal."""

    error_rate: float = 0.002
    latency_factor: float = 1.0


@dataclass
class SimMetrics:
    """Per-host traffic figures of a simulated fleet; `quality` sets a version's behaviour (tests mark bad ones)."""

    runtime: SimRuntime
    rate: float = 20.0
    latency_s: float = 0.05
    quality: dict[str, Quality] = field(default_factory=dict)
    seed: int = 1

    def reading(self, host: Host, interval_s: float, index: int) -> dict[str, float]:
        """One interval of one host: counts over it, gauges at its end (NaN when the host is down)."""
        version = self.runtime.version_of(host.name)
        if version is None:
            return {REQUESTS: 0.0, ERRORS: 0.0, LATENCY_P99: math.nan, CPU_SECONDS: 0.0, RSS_BYTES: math.nan}
        rng = random.Random(f"{self.seed}:{host.name}:{version}:{index}")
        quality = self.quality.get(version, Quality())
        mean = self.rate * interval_s
        requests = max(0.0, round(rng.gauss(mean, math.sqrt(mean))))
        errors = float(sum(1 for _ in range(int(requests)) if rng.random() < quality.error_rate))
        latency = self.latency_s * quality.latency_factor * rng.lognormvariate(0.0, 0.1)
        return {REQUESTS: requests, ERRORS: errors, LATENCY_P99: latency,
                CPU_SECONDS: requests * 0.002 * quality.latency_factor * rng.lognormvariate(0.0, 0.1),
                RSS_BYTES: 80e6 * rng.lognormvariate(0.0, 0.02)}


class SimFeed:
    """A SampleFeed over simulated hosts: one reading per host per interval, summed per role."""

    def __init__(self, metrics: SimMetrics, *, canary: list[Host], baseline: list[Host], interval_s: float) -> None:
        self.metrics = metrics
        self.canary, self.baseline = canary, baseline
        self.interval_s = interval_s
        self._series: dict[str, dict[str, list[float]]] = {"canary": {}, "baseline": {}}
        self._index = 0

    def collect(self, now: float) -> None:
        for role, hosts in (("canary", self.canary), ("baseline", self.baseline)):
            readings = [self.metrics.reading(h, self.interval_s, self._index) for h in hosts]
            series = self._series[role]
            for name in (REQUESTS, ERRORS, CPU_SECONDS):
                series.setdefault(name, []).append(sum(r[name] for r in readings))
            for name in (LATENCY_P99, RSS_BYTES):
                values = [r[name] for r in readings if not math.isnan(r[name])]
                series.setdefault(name, []).append(sum(values) / len(values) if values else math.nan)
        self._index += 1

    def samples(self, now: float) -> tuple[Samples, Samples]:
        return (Samples(self.interval_s, {k: list(v) for k, v in self._series["baseline"].items()}),
                Samples(self.interval_s, {k: list(v) for k, v in self._series["canary"].items()}))


def sim_window_factory(*, config: CanaryConfig, metrics: SimMetrics, interval_s: float,
                       warmup_s: float) -> WindowFactory:
    """Analysis windows over simulated hosts, judged by the real judge."""

    def open_window(*, canary: list[Host], baseline: list[Host], bake_s: float, now: float) -> AnalysisWindow:
        feed = SimFeed(metrics, canary=canary, baseline=baseline, interval_s=interval_s)
        return AnalysisWindow(config=config, feed=feed, interval_s=interval_s, start=now + warmup_s, bake_s=bake_s)

    return open_window
