"""Prometheus metrics of one app host: request counts by route template, latency, process, build.

Requests with a user (see gates.request_user) are also counted by the variant of every flag
the app knows: `app_flag_requests_total{flag, variant, route, status}` and
`app_flag_request_duration_seconds{flag, variant}`, variant "on" or "off", so a dark launch
can be compared on and off like a canary. Anonymous requests are not in these two families.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .flags import FlagClient
from .gates import evaluate_request, remember

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
# Probes by the platform must not dilute or inflate the traffic the canary analysis judges.
UNCOUNTED_ROUTES = frozenset({"/metrics", "/healthz", "/version"})
# Paths that match no route share one label so scanners cannot blow up cardinality.
UNMATCHED_ROUTE = "unmatched"
CLIENT_CLOSED = 499
# CPU seconds of the request being handled: set by the middleware, added to by cpu_timed
# endpoints on the worker thread they run on (the threadpool copies the context, so both
# see the same list).
_REQUEST_CPU: ContextVar[list[float] | None] = ContextVar("request_cpu", default=None)
F = TypeVar("F", bound=Callable[..., Any])


def cpu_timed(endpoint: F) -> F:
    """Count the thread CPU time a sync endpoint spends towards its request's CPU.

    Thread CPU time (nanosecond clock) measures this request's work alone, at any traffic
    level; the process CPU counter ticks in 10 ms steps and mixes every request with the
    host's background work, too coarse to see a 10 ms-per-request change within a bake.
    """

    @functools.wraps(endpoint)
    def timed(*args: Any, **kwargs: Any) -> Any:
        cell = _REQUEST_CPU.get()
        started = time.thread_time()
        try:
            return endpoint(*args, **kwargs)
        finally:
            if cell is not None:
                cell[0] += time.thread_time() - started

    return timed  # type: ignore[return-value]


class AppMetrics:
    """The metric families of one app instance, in a registry of its own."""

    def __init__(self, version: str) -> None:
        """Create the registry, the process collectors and the app's metric families."""
        # A registry per app (not the global one) lets tests build many apps in one process.
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests handled, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to handle an HTTP request, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cpu = Counter(
            "http_request_cpu_seconds",
            "Thread CPU time spent handling HTTP requests, by route template.",
            ["route"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "HTTP requests being handled right now.",
            registry=self.registry,
        )
        self.info = Gauge("app_info", "Build of the running app.", ["version"], registry=self.registry)
        self.info.labels(version=version).set(1)
        self.flag_requests = Counter(
            "app_flag_requests_total",
            "HTTP requests with a user, by feature flag, the user's variant, route template and status code.",
            ["flag", "variant", "route", "status"],
            registry=self.registry,
        )
        # No route label: flags x variants x routes x buckets would be too many series.
        self.flag_duration = Histogram(
            "app_flag_request_duration_seconds",
            "Time to handle an HTTP request with a user, by feature flag and the user's variant.",
            ["flag", "variant"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # labels() costs a lock and a tuple per call; a request touches two series per flag.
        self._flag_counters: dict[tuple[str, bool, str, int], Any] = {}
        self._flag_histograms: dict[tuple[str, bool], Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float, cpu_seconds: float = 0.0) -> None:
        """Record one finished request."""
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        self.duration.labels(route=route).observe(seconds)
        self.cpu.labels(route=route).inc(cpu_seconds)

    def observe_flags(self, variants: Mapping[str, bool], route: str, status: int, seconds: float) -> None:
        """Record one finished request with a user under the variant it got of each flag."""
        for key, on in variants.items():
            counter = self._flag_counters.get((key, on, route, status))
            if counter is None:
                counter = self.flag_requests.labels(flag=key, variant="on" if on else "off", route=route,
                                                    status=str(status))
                self._flag_counters[(key, on, route, status)] = counter
            counter.inc()
            histogram = self._flag_histograms.get((key, on))
            if histogram is None:
                histogram = self.flag_duration.labels(flag=key, variant="on" if on else "off")
                self._flag_histograms[(key, on)] = histogram
            histogram.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """Return the exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def route_template(scope: Scope) -> str:
    """Return the template of the route that handled the request, e.g. /api/posts/{post_id}."""
    # The router stores the matched route in the (shared) scope; its path is the template,
    # never the raw path, so ids do not become label values.
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class MetricsMiddleware:
    """ASGI middleware that counts and times every request except the platform's probes.

    With a flag client, it also evaluates every known flag once for the request's user, keeps
    the variants on the request (for the routes, see gates.py) and counts the request by them.
    """

    def __init__(self, app: ASGIApp, metrics: AppMetrics, flags: FlagClient | None = None) -> None:
        """Wrap app, recording into metrics; with flags, also by each flag's variant."""
        self.app = app
        self.metrics = metrics
        self.flags = flags

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call, recording status and duration of HTTP requests."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: int | None = None
        started = time.perf_counter()

        async def send_and_capture_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        variants: Mapping[str, bool] = {}
        if self.flags is not None:
            request_flags = evaluate_request(self.flags, scope)
            remember(scope, request_flags)
            variants = request_flags.variants
        self.metrics.in_flight.inc()
        cpu = [0.0]
        token = _REQUEST_CPU.set(cpu)
        try:
            await self.app(scope, receive, send_and_capture_status)
        except Exception:
            # An unhandled exception becomes a 500 response in the outer error middleware,
            # so it is counted as one here before it propagates there.
            status = 500
            raise
        finally:
            _REQUEST_CPU.reset(token)
            self.metrics.in_flight.dec()
            route = route_template(scope)
            if route not in UNCOUNTED_ROUTES:
                # No status at all means the request was cancelled (client went away)
                # before an answer: nginx's 499, not a server error.
                final_status = CLIENT_CLOSED if status is None else status
                seconds = time.perf_counter() - started
                self.metrics.observe(route, scope["method"], final_status, seconds, cpu[0])
                if variants:
                    self.metrics.observe_flags(variants, route, final_status, seconds)
