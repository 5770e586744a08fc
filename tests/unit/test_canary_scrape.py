"""Direct scrapes: exposition parsing, counters into per-interval values (resets like rate()), failures."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from canary.config import DEFAULT_CONFIG
from canary.counters import counter_increase, histogram_quantile
from canary.judge import judge
from canary.scrape import HostReading, host_interval, parse_exposition, role_interval
from canary.sources import ScrapeCollector, selector
from canary.verdict import Result

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)


def exposition(*, ok: float, err: float, fast: float, slow: float, cpu: float, rss: float = 5e7,
               start: float = 1000.0, extra: str = "") -> str:
    """A /metrics page like the sample app's: `fast` requests at ~3 ms and `slow` at ~200 ms."""
    lines = [
        "# HELP http_requests_total HTTP requests handled.",
        "# TYPE http_requests_total counter",
        f'http_requests_total{{method="GET",route="/api/feed",status="200"}} {ok}',
    ]
    if err:
        lines.append(f'http_requests_total{{method="POST",route="/api/posts/{{post_id}}/like",status="500"}} {err}')
    lines.append('http_requests_total{method="GET",route="/api/feed",status="499"} 3.0')
    lines += ["# HELP http_request_duration_seconds Time.", "# TYPE http_request_duration_seconds histogram"]
    for le in BUCKETS:
        count = (fast if le >= 0.005 else 0) + (slow if le >= 0.25 else 0)
        lines.append(f'http_request_duration_seconds_bucket{{le="{le}",route="/api/feed"}} {count}')
    lines.append(f'http_request_duration_seconds_bucket{{le="+Inf",route="/api/feed"}} {fast + slow}')
    lines.append(f'http_request_duration_seconds_count{{route="/api/feed"}} {fast + slow}')
    lines.append(f'http_request_duration_seconds_sum{{route="/api/feed"}} {fast * 0.003 + slow * 0.2}')
    lines += ["# TYPE process_cpu_seconds_total counter", f"process_cpu_seconds_total {cpu}",
              "# TYPE process_resident_memory_bytes gauge", f"process_resident_memory_bytes {rss}",
              "# TYPE process_start_time_seconds gauge", f"process_start_time_seconds {start}"]
    return "\n".join(line for line in lines if line) + "\n" + extra


def test_counter_increase_follows_rate_rules() -> None:
    assert math.isnan(counter_increase(None, 5.0))
    assert counter_increase(5.0, 8.0) == 3.0
    assert counter_increase(8.0, 2.0) == 2.0  # restarted: the whole new value is the increase


def test_histogram_quantile_like_promql() -> None:
    inf = math.inf
    assert histogram_quantile(0.5, [(0.01, 0), (0.02, 10), (inf, 10)]) == pytest.approx(0.015)
    assert histogram_quantile(0.99, [(0.01, 0), (inf, 10)]) == 0.01  # rank in +Inf: largest finite bound
    assert math.isnan(histogram_quantile(0.99, [(0.01, 0), (inf, 0)]))
    assert math.isnan(histogram_quantile(0.99, [(0.01, 3)]))  # no +Inf bucket
    # Buckets read at slightly different moments can decrease; they are made monotonic first.
    assert histogram_quantile(0.5, [(0.02, 10), (0.01, 12), (inf, 12)]) == pytest.approx(0.005)


def test_parse_keeps_what_the_analysis_needs() -> None:
    r = parse_exposition(exposition(ok=10, err=2, fast=9, slow=3, cpu=1.5))
    assert sum(r.requests.values()) == 15  # 10 ok + 2 errors + 3 client-closed
    assert r.cpu_seconds == 1.5 and r.rss_bytes == 5e7 and r.start_time == 1000.0
    assert len(r.buckets) == len(BUCKETS) + 1


def test_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_exposition("this is { not metrics")


def test_interval_values_from_two_readings() -> None:
    before = parse_exposition(exposition(ok=10, err=0, fast=10, slow=0, cpu=1.0))
    after = parse_exposition(exposition(ok=30, err=4, fast=27, slow=7, cpu=1.25, rss=6e7))
    h = host_interval(before, after)
    # 20 more ok, 4 new errors (a series that did not exist before counts from zero), 499s unchanged.
    assert h.requests == 24 and h.errors == 4
    assert h.cpu_seconds == pytest.approx(0.25) and h.rss_bytes == 6e7
    role = role_interval([(before, after)])
    # 17 fast + 7 slow: the p99 falls in the (0.15, 0.25] bucket of the slow ones.
    assert 0.15 < role["latency_p99_s"] <= 0.25


def test_counter_reset_counts_the_new_value() -> None:
    before = parse_exposition(exposition(ok=500, err=3, fast=500, slow=3, cpu=40.0))
    restarted = parse_exposition(exposition(ok=7, err=1, fast=8, slow=0, cpu=0.5))
    h = host_interval(before, restarted)
    # Per series: 500 -> 7 and 3 -> 1 are resets (7 and 1 new); the 499 series stayed at 3.
    assert h.requests == 8 and h.errors == 1 and h.cpu_seconds == 0.5


def test_restart_seen_by_start_time_even_when_counters_grew_past_old_values() -> None:
    before = parse_exposition(exposition(ok=5, err=0, fast=5, slow=0, cpu=0.2, start=1000.0))
    after = parse_exposition(exposition(ok=9, err=0, fast=9, slow=0, cpu=0.6, start=2000.0))
    h = host_interval(before, after)
    assert h.requests == 12 and h.cpu_seconds == 0.6  # 9 ok + 3 client-closed, all new


def test_role_sums_counts_and_averages_memory_over_hosts() -> None:
    a0 = parse_exposition(exposition(ok=0, err=0, fast=0, slow=0, cpu=1.0, rss=4e7))
    a1 = parse_exposition(exposition(ok=10, err=1, fast=11, slow=0, cpu=1.1, rss=4e7))
    b0 = parse_exposition(exposition(ok=0, err=0, fast=0, slow=0, cpu=2.0, rss=6e7))
    b1 = parse_exposition(exposition(ok=20, err=0, fast=20, slow=0, cpu=2.3, rss=6e7))
    role = role_interval([(a0, a1), (b0, b1)])
    assert role["requests"] == 31 and role["errors"] == 1
    assert role["cpu_seconds"] == pytest.approx(0.4) and role["rss_bytes"] == 5e7
    assert role["latency_p99_s"] <= 0.005


def test_role_interval_is_missing_when_a_host_has_no_reading() -> None:
    a = parse_exposition(exposition(ok=1, err=0, fast=1, slow=0, cpu=1.0))
    role = role_interval([(a, a), (None, a)])
    assert all(math.isnan(v) for v in role.values())
    assert math.isnan(role_interval([(HostReading(), HostReading())])["latency_p99_s"])


def test_selector_escapes_instances_and_labels() -> None:
    sel = selector(["127.0.0.1:8101", "127.0.0.1:8102"], {"role": "canary"})
    assert sel == 'instance=~"127\\\\.0\\\\.0\\\\.1:8101|127\\\\.0\\\\.0\\\\.1:8102",role="canary"'


class _Host:
    """A tiny real HTTP server whose /metrics page the test controls."""

    def __init__(self) -> None:
        self.page = exposition(ok=0, err=0, fast=0, slow=0, cpu=1.0)
        self.status = 200
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = host.page.encode()
                self.send_response(host.status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hosts() -> Iterator[tuple[_Host, _Host]]:
    canary, baseline = _Host(), _Host()
    try:
        yield canary, baseline
    finally:
        canary.close()
        baseline.close()


def test_collector_turns_scrapes_into_intervals(hosts: tuple[_Host, _Host]) -> None:
    canary, baseline = hosts
    with ScrapeCollector([canary.url], [baseline.url + "/metrics"], interval_s=2.0) as collector:
        collector.scrape()
        b, c = collector.samples()
        assert len(c) == 0 and c.problems  # one scrape is a starting point, not an interval
        for i in range(1, 4):
            canary.page = exposition(ok=20 * i, err=5 * i, fast=25 * i, slow=0, cpu=1.0 + 0.1 * i)
            baseline.page = exposition(ok=25 * i, err=0, fast=25 * i, slow=0, cpu=1.0 + 0.1 * i)
            collector.scrape()
        b, c = collector.samples()
    assert c.series["requests"] == [25.0, 25.0, 25.0] and c.series["errors"] == [5.0, 5.0, 5.0]
    assert b.series["errors"] == [0.0, 0.0, 0.0]
    assert c.series["cpu_seconds"] == pytest.approx([0.1, 0.1, 0.1])
    assert not b.problems and not c.problems


def test_failed_scrape_is_recorded_and_the_verdict_cannot_pass(hosts: tuple[_Host, _Host]) -> None:
    canary, baseline = hosts
    collector = ScrapeCollector([canary.url], [baseline.url], interval_s=2.0)
    try:
        for i in range(12):
            canary.page = exposition(ok=20 * i, err=0, fast=20 * i, slow=0, cpu=1.0 + 0.06 * i)
            baseline.page = exposition(ok=20 * i, err=0, fast=20 * i, slow=0, cpu=1.0 + 0.06 * i)
            canary.status = 500 if i == 6 else 200
            collector.scrape()
        b, c = collector.samples()
    finally:
        collector.close()
    assert len(c) == 11
    # The failed scrape and the interval after it (no reading to difference) are missing.
    assert math.isnan(c.series["requests"][5]) and math.isnan(c.series["requests"][6])
    assert not math.isnan(c.series["requests"][7])
    assert len(c.problems) == 1 and "500" in c.problems[0]
    v = judge(DEFAULT_CONFIG, b, c, final=True)
    assert v.result is Result.INCONCLUSIVE and "scrape" in v.reason


def test_unreachable_host_is_a_problem_not_a_crash() -> None:
    collector = ScrapeCollector(["http://127.0.0.1:9"], ["http://127.0.0.1:9"], timeout=0.5)
    collector.scrape()
    collector.scrape()
    b, c = collector.samples()
    collector.close()
    assert len(c.problems) == 2 and "ConnectError" in c.problems[0]
    assert judge(DEFAULT_CONFIG, b, c, final=True).result is Result.INCONCLUSIVE


def test_unexpected_answers_routes_and_buckets_per_interval() -> None:
    four = 'http_requests_total{method="POST",route="/api/users",status="409"} %s\n'
    before = parse_exposition(exposition(ok=10, err=1, fast=10, slow=0, cpu=1.0, extra=four % 2))
    after = parse_exposition(exposition(ok=30, err=4, fast=25, slow=5, cpu=1.2, extra=four % 6 +
                                        'http_request_cpu_seconds_total{route="/api/feed"} 0.25\n'))
    values = role_interval([(before, after)])
    assert values["errors"] == 3.0
    assert values["unexpected"] == 3.0 + 4.0  # the 5xx and the 409s; never the 499s
    assert values["route:/api/users|unexpected"] == 4.0 and values["route:/api/users|requests"] == 4.0
    assert values["route:/api/feed|requests"] == 20.0 and values["route:/api/feed|unexpected"] == 0.0
    assert values["le:0.005"] == 15.0 and values["le:+Inf"] == 20.0 and values["le:0.25"] == 20.0
    assert values["route:/api/feed|le:0.15"] == 15.0
    assert values["route:/api/feed|handler_cpu_seconds"] == 0.25 and values["handler_cpu_seconds"] == 0.25


def test_collector_fills_a_route_seen_late_with_zeros() -> None:
    pages = iter([exposition(ok=1, err=0, fast=1, slow=0, cpu=1.0), exposition(ok=2, err=0, fast=2, slow=0, cpu=1.1),
                  exposition(ok=3, err=1, fast=3, slow=0, cpu=1.2)])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=next(pages))

    client = httpx.Client(transport=httpx.MockTransport(handler))
    with ScrapeCollector(["http://c"], ["http://c"], client=client) as collector:
        collector.scrape()
        collector.scrape()
        collector.scrape()
        _, canary = collector.samples()
    assert canary.series["route:/api/posts/{post_id}/like|unexpected"] == [0.0, 1.0]
    assert len({len(v) for v in canary.series.values()}) == 1
