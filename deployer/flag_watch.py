"""The I/O edge of a guarded flag rollout: scrape the fleet, keep a step's intervals, ask the judge.

A caller (the controller, with the flag store) calls ``look(flag, step)`` once per interval;
each look reads every host's /metrics once and returns canary.flag_judge's verdict on the
intervals since the step began, with the on-variant requests that deployer.guarded.decide
needs. No database and no flag storage here; no sleeping either: the caller's clock paces it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from canary.config_model import CanaryConfig
from canary.flag_judge import FlagVerdict, flag_config, judge_flag
from canary.scrape import HostReading
from canary.sources import fetch_reading
from canary.variants import FlagInterval, flag_samples, fleet_interval

logger = logging.getLogger(__name__)

__all__ = ["FlagWatch"]


def _metrics_url(url: str) -> str:
    """Return the /metrics URL of a host given its base URL (or the metrics URL itself)."""
    url = url.rstrip("/")
    return url if url.endswith("/metrics") else f"{url}/metrics"


@dataclass
class _Step:
    """What is kept for one flag: the step being measured, its intervals, the readings they end on."""

    step: int
    previous: dict[str, HostReading | None]
    intervals: list[FlagInterval] = field(default_factory=list)


class FlagWatch:
    """Judges flags' on-variant users against their off-variant users across the given hosts."""

    def __init__(self, hosts: Sequence[str], client: httpx.Client, *, interval_s: float,
                 config: CanaryConfig | None = None, max_workers: int = 8) -> None:
        """Watch these hosts (base URLs) through client; looks are about interval_s apart."""
        if not hosts:
            raise ValueError("hosts: [] has no host to scrape; pass the base URLs of the app's hosts, "
                             "e.g. ['http://127.0.0.1:8101']")
        self.hosts = [_metrics_url(h) for h in dict.fromkeys(hosts)]
        self.interval_s = interval_s
        self.config = config or flag_config()
        self._client = client
        self._workers = max(1, min(max_workers, len(self.hosts)))
        self._steps: dict[str, _Step] = {}

    def _fetch(self, url: str) -> HostReading | str:
        return fetch_reading(self._client, url)

    def _scrape(self) -> tuple[dict[str, HostReading | None], list[str]]:
        """Read every host once, in parallel; return host -> reading (None: failed) and the failures."""
        if self._workers == 1:
            results = [self._fetch(u) for u in self.hosts]
        else:
            with ThreadPoolExecutor(max_workers=self._workers) as pool:
                results = list(pool.map(self._fetch, self.hosts))
        readings: dict[str, HostReading | None] = {}
        problems: list[str] = []
        for url, result in zip(self.hosts, results, strict=True):
            if isinstance(result, str):
                logger.warning("flag scrape failed host=%s reason=%s", url, result)
                problems.append(f"scrape of {url} failed: {result}")
                readings[url] = None
            else:
                readings[url] = result
        return readings, problems

    def look(self, flag: str, step: int) -> FlagVerdict:
        """Scrape once and judge ``flag`` at ``step``; a step other than the last look's starts afresh."""
        return self.look_many({flag: step})[flag]

    def look_many(self, steps: Mapping[str, int]) -> dict[str, FlagVerdict]:
        """Scrape once and judge every flag given (flag key -> its current step index)."""
        readings, problems = self._scrape()
        out: dict[str, FlagVerdict] = {}
        for flag, step in steps.items():
            kept = self._steps.get(flag)
            if kept is None or kept.step != step:
                # The interval that straddles a change of percentage belongs to neither step.
                kept = self._steps[flag] = _Step(step, readings)
            else:
                kept.intervals.append(fleet_interval(flag, kept.previous, readings))
                kept.previous = readings
            baseline, canary = flag_samples(kept.intervals, self.interval_s)
            verdict = judge_flag(self.config, baseline, canary, flag=flag, current_problems=problems)
            logger.info("flag look flag=%s step=%s result=%s on_requests=%s off_requests=%s intervals=%s",
                        flag, step, verdict.result.value, verdict.on_requests, verdict.off_requests,
                        verdict.intervals)
            out[flag] = verdict
        return out

    def forget(self, flag: str) -> None:
        """Drop what is kept for a flag (its rollout ended)."""
        self._steps.pop(flag, None)
