"""Where samples come from: direct scrapes of each host's /metrics, or a Prometheus server.

Both produce the same pair of ``Samples`` (baseline, canary) with the series ``requests``,
``errors``, ``latency_p99_s``, ``cpu_seconds`` and ``rss_bytes``. A source that fails or
returns nothing records a problem in the samples; the judge then never passes the canary.
This is the only module that imports prometheus_api_client.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from .samples import (
    CPU_SECONDS,
    ERRORS,
    HANDLER_CPU_SECONDS,
    LATENCY_P99,
    REQUESTS,
    RSS_BYTES,
    STANDARD_SERIES,
    UNEXPECTED,
    Samples,
)
from .scrape import HostReading, parse_exposition, role_interval

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_QUERIES", "PrometheusSource", "ScrapeCollector", "selector"]


def _metrics_url(url: str) -> str:
    """Return the /metrics URL of a host given either its base URL or the metrics URL itself."""
    url = url.rstrip("/")
    return url if url.endswith("/metrics") else f"{url}/metrics"



def fetch_reading(client: httpx.Client, url: str) -> HostReading | str:
    """Fetch and parse one host's /metrics; return the reading, or the reason it failed."""
    try:
        response = client.get(url)
        response.raise_for_status()
        return parse_exposition(response.text)
    except (httpx.HTTPError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"

class ScrapeCollector:
    """Scrapes every canary and baseline host once per interval and keeps per-interval values.

    Call ``scrape()`` once per interval (the first call only sets the starting point), then
    ``samples()`` for the (baseline, canary) pair so far. Counters become per-interval
    increases per series, with restarts handled like Prometheus' rate(); a series that
    appears between two scrapes counts from zero (the first 500 of a route is an error,
    even though rate() would miss it). A failed scrape makes that interval missing for the
    host's role and is recorded as a problem, so the verdict cannot pass.
    """

    def __init__(self, canary_urls: Sequence[str], baseline_urls: Sequence[str], *, timeout: float = 2.0,
                 interval_s: float = 2.0, client: httpx.Client | None = None) -> None:
        """Prepare to scrape the given hosts (base URLs or /metrics URLs)."""
        if not canary_urls or not baseline_urls:
            raise ValueError("ScrapeCollector needs at least one canary and one baseline URL")
        self.interval_s = interval_s
        self._roles = {"canary": [_metrics_url(u) for u in canary_urls],
                       "baseline": [_metrics_url(u) for u in baseline_urls]}
        self._client = client or httpx.Client(timeout=timeout)
        self._owns_client = client is None
        # Keyed by role too: the same host may be listed on both sides (e.g. comparing a host to itself).
        self._previous: dict[tuple[str, str], HostReading | None] = {
            (r, u): None for r, urls in self._roles.items() for u in urls}
        self._series: dict[str, dict[str, list[float]]] = {r: {s: [] for s in STANDARD_SERIES} for r in self._roles}
        self._problems: dict[str, list[str]] = {r: [] for r in self._roles}
        self._scrapes = 0

    def _fetch(self, url: str) -> HostReading | str:
        return fetch_reading(self._client, url)

    def scrape(self) -> None:
        """Scrape every host now and append one interval per role (none on the first call)."""
        urls = list(dict.fromkeys(u for urls in self._roles.values() for u in urls))
        with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
            results = dict(zip(urls, pool.map(self._fetch, urls), strict=True))
        first = self._scrapes == 0
        self._scrapes += 1
        for role, role_urls in self._roles.items():
            pairs: list[tuple[HostReading | None, HostReading | None]] = []
            for url in role_urls:
                result = results[url]
                if isinstance(result, str):
                    logger.warning("scrape failed host=%s role=%s reason=%s", url, role, result)
                    self._problems[role].append(f"scrape {self._scrapes} of {url} failed: {result}")
                    # The next reading must not be differenced across the gap.
                    pairs.append((self._previous[role, url], None))
                    self._previous[role, url] = None
                else:
                    pairs.append((self._previous[role, url], result))
                    self._previous[role, url] = result
            if first:
                continue
            values = role_interval(pairs)
            self._append(role, values)

    def _append(self, role: str, values: dict[str, float]) -> None:
        """Append one interval; a series seen for the first time counted zero before (its counter did not exist)."""
        series = self._series[role]
        done = len(series[STANDARD_SERIES[0]])
        missing = any(math.isnan(values.get(name, math.nan)) for name in (REQUESTS,))
        for name, value in values.items():
            if name not in series:
                series[name] = [0.0] * done
            series[name].append(value)
        for name, past in series.items():
            if len(past) == done:
                # Known series absent from this interval: no new requests there, or no data at all.
                past.append(math.nan if missing else 0.0)

    def samples(self) -> tuple[Samples, Samples]:
        """Return (baseline, canary) samples collected so far."""
        def build(role: str) -> Samples:
            problems = list(self._problems[role])
            if self._scrapes < 2:
                problems.append("fewer than two scrapes: no interval measured yet")
            return Samples(self.interval_s, {k: list(v) for k, v in self._series[role].items()}, problems)
        return build("baseline"), build("canary")

    def close(self) -> None:
        """Close the HTTP client if this collector created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> ScrapeCollector:
        """Use as a context manager that closes the client."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the client."""
        self.close()


# PromQL per series; {sel} is the label selector of one role, {w} the range (one step).
DEFAULT_QUERIES: dict[str, str] = {
    REQUESTS: "sum(increase(http_requests_total{{{sel}}}[{w}]))",
    # "or 0 * requests": a role that served requests but never failed has no 5xx series at all.
    ERRORS: ('sum(increase(http_requests_total{{{sel},status=~"5.."}}[{w}])) '
             "or (0 * sum(increase(http_requests_total{{{sel}}}[{w}])))"),
    LATENCY_P99: "histogram_quantile(0.99, sum by (le) (increase(http_request_duration_seconds_bucket{{{sel}}}[{w}])))",
    CPU_SECONDS: "sum(increase(process_cpu_seconds_total{{{sel}}}[{w}]))",
    HANDLER_CPU_SECONDS: "sum(increase(http_request_cpu_seconds_total{{{sel}}}[{w}]))",
    # Answers neither 2xx nor 3xx (499, the client going away, is nobody's answer).
    UNEXPECTED: ('sum(increase(http_requests_total{{{sel},status!~"[23]..|499"}}[{w}])) '
                 "or (0 * sum(increase(http_requests_total{{{sel}}}[{w}])))"),
    RSS_BYTES: "avg(process_resident_memory_bytes{{{sel}}})",
}


def selector(instances: Sequence[str], labels: dict[str, str] | None = None) -> str:
    """Return the PromQL label matchers for these scrape targets (instance label), plus exact labels."""
    pattern = "|".join(re.escape(i) for i in instances)
    parts = ['instance=~"' + pattern.replace("\\", "\\\\") + '"']
    for key, value in sorted((labels or {}).items()):
        parts.append(f'{key}="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return ",".join(parts)


def _as_datetime(t: float | datetime) -> datetime:
    """Return t as an aware datetime (unix seconds accepted)."""
    return t if isinstance(t, datetime) else datetime.fromtimestamp(t, tz=UTC)


class PrometheusSource:
    """Reads per-interval samples of canary and baseline hosts from a Prometheus server (range queries)."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, queries: dict[str, str] | None = None,
                 window_s: float | None = None) -> None:
        """Connect to the Prometheus server at url; queries override DEFAULT_QUERIES per series.

        ``window_s`` is the range of increase() (default: one step). It must hold at least two
        scrapes of each target, so with a scrape interval above half the step, give a larger one
        (neighbouring intervals then overlap and are smoothed, but none is empty).
        """
        self.url = url
        self.timeout_s = timeout_s
        self.window_s = window_s
        self.queries = {**DEFAULT_QUERIES, **(queries or {})}
        # One quick retry on a busy server; the client's default (3 retries, 1 s backoff) turns
        # a Prometheus that is down into a minute of waiting before the verdict can say so.
        retry = Retry(total=1, backoff_factor=0.2, status_forcelist=(502, 503, 504))
        self._prom = PrometheusConnect(url=url, disable_ssl=True, timeout=timeout_s, retry=retry)

    def _series(self, query: str, start: datetime, count: int, step_s: float) -> list[float] | None:
        """Run one range query; return one value per interval (NaN where missing), None if empty."""
        # The value at t covers (t - step, t], so interval i is evaluated at start + (i+1) * step;
        # the client sends whole seconds, so the grid is anchored on a whole second too.
        first = float(round(start.timestamp() + step_s))
        end = first + (count - 1) * step_s
        result = self._prom.custom_query_range(query, start_time=_as_datetime(first), end_time=_as_datetime(end),
                                               step=f"{step_s:g}s", timeout=self.timeout_s)
        if not result:
            return None
        values = [math.nan] * count
        for ts, raw in result[0].get("values", []):
            i = round((float(ts) - first) / step_s)
            if 0 <= i < count:
                values[i] = float(raw)
        return values

    def fetch(self, *, canary: Sequence[str], baseline: Sequence[str], start: float | datetime,
              end: float | datetime, step_s: float, canary_labels: dict[str, str] | None = None,
              baseline_labels: dict[str, str] | None = None) -> tuple[Samples, Samples]:
        """Return (baseline, canary) samples for [start, end) in intervals of step_s seconds.

        ``canary`` and ``baseline`` are the scrape targets' instance labels (e.g.
        ``127.0.0.1:8101``); optional labels (e.g. ``{"role": "canary"}``) narrow the selection.
        """
        t0, t1 = _as_datetime(start), _as_datetime(end)
        count = int((t1.timestamp() - t0.timestamp()) // step_s)
        down: str | None = None
        out: list[Samples] = []
        for role, hosts, labels in (("baseline", baseline, baseline_labels), ("canary", canary, canary_labels)):
            sel = selector(hosts, labels)
            series: dict[str, list[float]] = {}
            problems: list[str] = []
            if count < 1:
                problems.append(f"window {t0.isoformat()}..{t1.isoformat()} is shorter than one step of {step_s:g}s")
            for name, template in self.queries.items():
                if count < 1:
                    break
                if down is not None:
                    problems.append(down)
                    break
                query = template.format(sel=sel, w=f"{self.window_s or step_s:g}s")
                try:
                    values = self._series(query, t0, count, step_s)
                except (requests.ConnectionError, requests.Timeout) as exc:
                    down = f"prometheus at {self.url} is unreachable: {type(exc).__name__}"
                    logger.warning("prometheus unreachable url=%s reason=%s", self.url, exc)
                    problems.append(down)
                    break
                except Exception as exc:  # the client raises its own errors for bad answers
                    logger.warning("prometheus query failed url=%s role=%s series=%s reason=%s", self.url, role,
                                   name, exc)
                    problems.append(f"prometheus query for {name} failed: {type(exc).__name__}: {exc}")
                    continue
                if values is None:
                    if name == REQUESTS:
                        problems.append(f"prometheus returned no data for {name} of {role} ({sel})")
                    continue
                series[name] = values
            if count >= 1 and not series and not problems:
                problems.append(f"prometheus returned nothing for {role} ({sel})")
            out.append(Samples(step_s, series, problems))
        return out[0], out[1]
