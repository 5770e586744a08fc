"""A synthetic fleet whose hosts label requests by a flag's variant, as the sample app's /metrics will.

Each host keeps cumulative ``app_flag_*`` counters; ``step()`` serves one interval of seeded
traffic (a share of it with the flag on) and returns the readings, ``exposition(host)`` the
Prometheus text a real host would serve. The on-variant can be given more server errors or
a slow tail to play a regression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import lognorm

from canary.scrape import HostReading

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, math.inf)
ROUTES = ("/api/feed", "/api/posts/{post_id}", "/api/posts/{post_id}/like")
MIX = (0.6, 0.3, 0.1)
FLAG = "new-feed"
# Fast requests: log-normal around 30 ms (p99 about 120 ms), placed in the app's buckets.
_CDF = lognorm(s=0.6, scale=0.03).cdf(np.array(BOUNDS[:-1]))
P_BUCKET = np.diff(np.concatenate([[0.0], _CDF, [1.0]]))
SLOW_BUCKET = BOUNDS.index(2.5)  # 1-2 s extra on top of tens of ms lands in (1, 2.5]

Labels = tuple[tuple[str, str], ...]


def _le(le: float) -> str:
    return "+Inf" if math.isinf(le) else repr(le)


@dataclass
class FlagFleet:
    """Seeded traffic on a few hosts; ``share`` of requests have the flag on."""

    seed: int
    hosts: int = 3
    rate: float = 2000.0  # requests per host per interval
    share: float = 0.05
    p_err: float = 0.005
    p_404: float = 0.02
    err_mult: float = 1.0  # on-variant 5xx rate = p_err * err_mult
    slow_frac: float = 0.0  # share of on-variant requests made 1-2 s slower
    flag: str = FLAG
    start_time: float = 1000.0
    rng: np.random.Generator = field(init=False)
    requests: dict[str, dict[Labels, float]] = field(init=False)
    buckets: dict[str, dict[Labels, float]] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.requests = {h: {} for h in self.names}
        self.buckets = {h: {} for h in self.names}
        self.starts = {h: self.start_time for h in self.names}

    @property
    def names(self) -> list[str]:
        return [f"h{i}" for i in range(self.hosts)]

    def restart(self, host: str, at: float) -> None:
        """The host's process restarts: its counters begin again at zero."""
        self.requests[host], self.buckets[host], self.starts[host] = {}, {}, at

    def serve(self) -> None:
        """Serve one interval of traffic on every host."""
        for h in self.names:
            n = int(self.rng.poisson(self.rate))
            n_on = int(self.rng.binomial(n, self.share))
            for variant, k in (("on", n_on), ("off", n - n_on)):
                pe = self.p_err * (self.err_mult if variant == "on" else 1.0)
                for route, kr in zip(ROUTES, self.rng.multinomial(k, MIX), strict=True):
                    counts = self.rng.multinomial(kr, [pe, self.p_404, 1 - pe - self.p_404])
                    for status, c in zip(("500", "404", "200"), counts, strict=True):
                        key = (("flag", self.flag), ("route", route), ("status", status), ("variant", variant))
                        self.requests[h][key] = self.requests[h].get(key, 0.0) + float(c)
                slow = int(self.rng.binomial(k, self.slow_frac)) if variant == "on" else 0
                per_bucket = self.rng.multinomial(k - slow, P_BUCKET).astype(float)
                per_bucket[SLOW_BUCKET] += slow
                for le, c in zip(BOUNDS, np.cumsum(per_bucket), strict=True):
                    key = (("flag", self.flag), ("le", _le(le)), ("variant", variant))
                    self.buckets[h][key] = self.buckets[h].get(key, 0.0) + float(c)

    def readings(self) -> dict[str, HostReading]:
        """Return every host's reading now (what parse_exposition would make of its page)."""
        return {h: HostReading(start_time=self.starts[h], flag_requests=dict(self.requests[h]),
                               flag_buckets=dict(self.buckets[h])) for h in self.names}

    def step(self) -> dict[str, HostReading]:
        """Serve one interval, then read every host."""
        self.serve()
        return self.readings()

    def exposition(self, host: str) -> str:
        """Return the host's /metrics page in the Prometheus text format."""
        lines = ["# HELP app_flag_requests_total Requests by flag variant.", "# TYPE app_flag_requests_total counter"]
        for labels, value in sorted(self.requests[host].items()):
            lines.append(f"app_flag_requests_total{{{_labels(labels)}}} {value}")
        lines += ["# HELP app_flag_request_duration_seconds Latency by flag variant.",
                  "# TYPE app_flag_request_duration_seconds histogram"]
        for labels, value in sorted(self.buckets[host].items(), key=lambda kv: (kv[0][2], float(kv[0][1][1]))):
            lines.append(f"app_flag_request_duration_seconds_bucket{{{_labels(labels)}}} {value}")
        for variant in ("off", "on"):
            inf = [v for k, v in self.buckets[host].items() if dict(k)["variant"] == variant and dict(k)["le"] == "+Inf"]
            if inf:
                lines.append(f'app_flag_request_duration_seconds_count{{flag="{self.flag}",variant="{variant}"}} '
                             f"{inf[0]}")
                lines.append(f'app_flag_request_duration_seconds_sum{{flag="{self.flag}",variant="{variant}"}} '
                             f"{inf[0] * 0.03}")
        lines += ["# TYPE process_start_time_seconds gauge", f"process_start_time_seconds {self.starts[host]}"]
        return "\n".join(lines) + "\n"


def _labels(labels: Labels) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels)
