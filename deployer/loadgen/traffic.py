"""Synthetic users: Poisson-paced HTTP traffic against the fleet's load balancer, with outcome counts.

The generator plays the sample app's users (browse the feed, open posts, like, comment,
post photos, follow) at a given average rate and sorts every answer into exactly one
category, so ``sent == ok + client_errors + server_errors + balancer_errors +
transport_errors`` at all times. A rollout that drops or fails user requests shows up
here, per upstream host, whatever the app's own metrics say.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import queue
import random
import struct
import threading
import time
import zlib
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import httpx

logger = logging.getLogger(__name__)

BALANCER_ERROR_HEADER = "X-Balancer-Error"
UPSTREAM_HEADER = "X-Upstream"
# Who the request is for: the app evaluates its feature flags for this user.
USER_HEADER = "X-Snapgram-User"
DEFAULT_USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
MAX_FAILURES = 200
MAX_KNOWN_POSTS = 500
LATENCY_WINDOW = 2000

# Relative frequency of each user action: mostly reading, a little writing.
ACTION_WEIGHTS: dict[str, int] = {
    "browse_feed": 40,
    "view_post": 12,
    "view_image": 10,
    "view_comments": 8,
    "view_profile": 6,
    "like": 10,
    "unlike": 2,
    "comment": 5,
    "post_photo": 3,
    "follow": 2,
    "unfollow": 1,
    "stale_link": 1,
}
CAPTIONS = ("sunset", "my lunch", "weekend vibes", "new haircut", "city lights", "the cat again", "")
COMMENTS = ("nice!", "love this", "where is this?", "wow", "so good", "haha", "great shot")


@dataclass(frozen=True)
class Action:
    """One request a simulated user is about to make."""

    name: str
    method: str
    route: str  # the route template, so failures group by endpoint, not by id
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    expected: frozenset[int] = frozenset()  # 4xx answers that are normal for this action
    user: str | None = None  # the simulated user making the request, sent as USER_HEADER


@dataclass(frozen=True)
class Failure:
    """A request that did not end well."""

    at: float
    method: str
    route: str
    status: int | None
    error: str | None
    upstream: str | None
    category: str


@dataclass
class TrafficStats:
    """Counts of requests by outcome; every sent request is in exactly one category."""

    sent: int = 0
    ok: int = 0
    client_errors: int = 0
    server_errors: int = 0
    balancer_errors: int = 0
    transport_errors: int = 0
    dropped: int = 0  # arrivals never sent because every worker was busy (overload, not failure)
    by_action: dict[str, int] = field(default_factory=dict)
    by_upstream: dict[str, int] = field(default_factory=dict)
    server_errors_by_upstream: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    elapsed: float = 0.0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None

    @property
    def failed(self) -> int:
        """Return the number of requests a user would have seen fail.

        An unexpected 4xx (a refused like, not a stale link's 404) fails the user as much as a 5xx.
        """
        return self.client_errors + self.server_errors + self.balancer_errors + self.transport_errors

    @property
    def error_rate(self) -> float:
        """Return failed / sent (0 when nothing was sent)."""
        return self.failed / self.sent if self.sent else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        result = asdict(self)
        result["failed"] = self.failed
        result["error_rate"] = self.error_rate
        return result


def classify(status: int, balancer_error: bool, expected: frozenset[int] = frozenset()) -> str:
    """Return the TrafficStats category of an HTTP answer."""
    if balancer_error:
        return "balancer_errors"
    if status >= 500:
        return "server_errors"
    if status < 400 or status in expected:
        return "ok"
    return "client_errors"


def tiny_png(rng: random.Random, size: int = 8) -> bytes:
    """Return a valid size x size PNG of one random colour (a few dozen bytes)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    pixel = bytes(rng.randrange(256) for _ in range(3))
    rows = b"".join(b"\x00" + pixel * size for _ in range(size))  # filter byte 0 per row
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Return the nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return round(sorted_values[index], 3)


class TrafficGenerator:
    """Background threads that send user-like requests to base_url at about rate per second."""

    def __init__(
        self,
        base_url: str,
        *,
        rate: float = 30.0,
        seed: int = 0,
        users: list[str] | None = None,
        concurrency: int = 8,
        timeout: float = 5.0,
    ) -> None:
        """Prepare (but do not start) traffic to base_url."""
        if rate <= 0:
            raise ValueError(f"rate must be > 0 requests/second, got {rate!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
        self.base_url = base_url.rstrip("/")
        self.rate = rate
        self.concurrency = concurrency
        self.timeout = timeout
        self.users = list(users) if users else list(DEFAULT_USERS)
        self._rng = random.Random(seed)  # used by the scheduler thread only
        self._lock = threading.Lock()
        self._stats = TrafficStats()
        self._failures: deque[Failure] = deque(maxlen=MAX_FAILURES)
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._known_posts: deque[int] = deque(maxlen=MAX_KNOWN_POSTS)
        # Each user signs up first (409 when they already exist), so any user list works.
        self._signups: deque[str] = deque(self.users)
        # A bounded backlog: when the fleet is too slow, late arrivals are dropped and counted
        # rather than piling up and arriving later as a burst.
        self._queue: queue.Queue[Action | None] = queue.Queue(maxsize=concurrency * 4)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._client: httpx.Client | None = None
        self._started_at: float | None = None
        self._stopped_at: float | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler and worker threads; returns at once."""
        if self._threads:
            raise RuntimeError("traffic generator already started")
        # One client shared by the workers (its connection pool is thread-safe): building one
        # loads the CA bundle, far too slow to repeat per worker. Plain http needs no CA at all.
        # trust_env=False: a proxy from the environment must never carry this traffic elsewhere.
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=self.timeout,
            headers={"User-Agent": "snapgram-traffic/1"},
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
            verify=self.base_url.startswith("https:"),
            trust_env=False,
        )
        self._started_at = time.monotonic()
        self._threads = [threading.Thread(target=self._schedule, name="traffic-scheduler", daemon=True)]
        self._threads += [
            threading.Thread(target=self._work, name=f"traffic-worker-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()
        logger.info("traffic started: %s at %.1f req/s, %d workers", self.base_url, self.rate, self.concurrency)

    def stop(self) -> TrafficStats:
        """Stop sending, wait for in-flight requests, and return the final stats."""
        if not self._threads or self._stop.is_set():
            return self.stats()
        self._stop.set()
        self._threads[0].join()
        # Arrivals still queued were never sent; they do not count.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in range(self.concurrency):
            self._queue.put(None)
        for thread in self._threads[1:]:
            thread.join(timeout=self.timeout * 3 + 5)
        if self._client is not None:
            self._client.close()
        self._stopped_at = time.monotonic()
        final = self.stats()
        logger.info(
            "traffic stopped: sent=%d ok=%d server_errors=%d balancer_errors=%d transport_errors=%d",
            final.sent,
            final.ok,
            final.server_errors,
            final.balancer_errors,
            final.transport_errors,
        )
        return final

    def stats(self) -> TrafficStats:
        """Return a consistent snapshot of the counts so far."""
        with self._lock:
            snapshot = replace(
                self._stats,
                by_action=dict(self._stats.by_action),
                by_upstream=dict(self._stats.by_upstream),
                server_errors_by_upstream=dict(self._stats.server_errors_by_upstream),
                failures=list(self._failures),
            )
            latencies = sorted(self._latencies)
        if self._started_at is not None:
            end = self._stopped_at if self._stopped_at is not None else time.monotonic()
            snapshot.elapsed = round(end - self._started_at, 3)
        snapshot.latency_p50_ms = _percentile(latencies, 0.50)
        snapshot.latency_p95_ms = _percentile(latencies, 0.95)
        snapshot.latency_p99_ms = _percentile(latencies, 0.99)
        return snapshot

    # --- threads -----------------------------------------------------------------------

    def _schedule(self) -> None:
        """Release one action per Poisson arrival until stopped."""
        next_at = time.monotonic()
        while not self._stop.is_set():
            # Exponential gaps between arrivals make a Poisson process: bursts and lulls
            # like real users, but the requested rate on average.
            next_at += self._rng.expovariate(self.rate)
            delay = next_at - time.monotonic()
            if delay > 0:
                if self._stop.wait(delay):
                    return
            elif delay < -1.0:
                # Far behind (the machine stalled): skip the missed arrivals, no catch-up burst.
                next_at = time.monotonic()
            try:
                self._queue.put_nowait(self._plan())
            except queue.Full:
                with self._lock:
                    self._stats.dropped += 1

    def _work(self) -> None:
        """Send queued actions until a stop sentinel arrives."""
        assert self._client is not None
        while True:
            action = self._queue.get()
            if action is None:
                return
            self._send(self._client, action)

    def _send(self, client: httpx.Client, action: Action) -> None:
        """Make one request and record its outcome."""
        started = time.perf_counter()
        try:
            response = client.request(
                action.method,
                action.path,
                json=action.json,
                params=action.params,
                data=action.data,
                files=action.files,
                headers={USER_HEADER: action.user} if action.user else None,
            )
        except httpx.HTTPError as exc:  # refused, reset, timed out, protocol error
            self._record(action, "transport_errors", None, None, f"{type(exc).__name__}: {exc}", None)
            return
        latency_ms = (time.perf_counter() - started) * 1000
        upstream = response.headers.get(UPSTREAM_HEADER)
        balancer_error = BALANCER_ERROR_HEADER in response.headers
        category = classify(response.status_code, balancer_error, action.expected)
        error = response.headers.get(BALANCER_ERROR_HEADER) if balancer_error else None
        self._record(action, category, response.status_code, upstream, error, latency_ms)
        if category == "ok":
            self._learn(action, response)

    def _record(
        self,
        action: Action,
        category: str,
        status: int | None,
        upstream: str | None,
        error: str | None,
        latency_ms: float | None,
    ) -> None:
        """Count one finished request."""
        with self._lock:
            stats = self._stats
            stats.sent += 1
            setattr(stats, category, getattr(stats, category) + 1)
            stats.by_action[action.name] = stats.by_action.get(action.name, 0) + 1
            if upstream:
                stats.by_upstream[upstream] = stats.by_upstream.get(upstream, 0) + 1
                if category == "server_errors":
                    stats.server_errors_by_upstream[upstream] = stats.server_errors_by_upstream.get(upstream, 0) + 1
            if latency_ms is not None:
                self._latencies.append(latency_ms)
            if category != "ok":
                self._failures.append(
                    Failure(time.time(), action.method, action.route, status, error, upstream, category)
                )
        if category != "ok":
            logger.debug("%s %s -> %s %s (%s)", action.method, action.path, category, status or error, upstream)

    def _learn(self, action: Action, response: httpx.Response) -> None:
        """Remember post ids seen in answers, so later actions can open, like and comment on them."""
        if action.name not in ("browse_feed", "post_photo"):
            return
        try:
            body = response.json()
            posts = body["posts"] if action.name == "browse_feed" else [body]
            ids = [int(post["id"]) for post in posts]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            known = set(self._known_posts)
            self._known_posts.extend(i for i in ids if i not in known)

    # --- what users do -----------------------------------------------------------------

    def _plan(self) -> Action:
        """Return the next user action, drawn by ACTION_WEIGHTS, marked with the user who makes it."""
        if self._signups:
            name = self._signups.popleft()
            return Action(
                "signup", "POST", "/api/users", "/api/users", json={"username": name}, expected=frozenset({409}),
                user=name,
            )
        user = self._rng.choice(self.users)
        return replace(self._plan_for(user), user=user)

    def _plan_for(self, user: str) -> Action:
        """Return what user does next, drawn by ACTION_WEIGHTS."""
        rng = self._rng
        with self._lock:
            post_id = rng.choice(self._known_posts) if self._known_posts else None
            newest = max(self._known_posts) if self._known_posts else 0
        name = rng.choices(list(ACTION_WEIGHTS), weights=list(ACTION_WEIGHTS.values()))[0]
        if post_id is None and name in ("view_post", "view_image", "view_comments", "like", "unlike", "comment"):
            name = "browse_feed"  # nothing to look at yet: users start from their feed
        if name == "browse_feed":
            return Action(name, "GET", "/api/feed", "/api/feed", params={"user": user, "limit": 20})
        if name == "view_post":
            return Action(name, "GET", "/api/posts/{post_id}", f"/api/posts/{post_id}")
        if name == "view_image":
            return Action(name, "GET", "/api/posts/{post_id}/image", f"/api/posts/{post_id}/image")
        if name == "view_comments":
            return Action(name, "GET", "/api/posts/{post_id}/comments", f"/api/posts/{post_id}/comments")
        if name == "view_profile":
            return Action(name, "GET", "/api/users/{username}", f"/api/users/{rng.choice(self.users)}")
        if name in ("like", "unlike"):
            method = "POST" if name == "like" else "DELETE"
            return Action(name, method, "/api/posts/{post_id}/like", f"/api/posts/{post_id}/like", json={"user": user})
        if name == "comment":
            body = {"user": user, "text": rng.choice(COMMENTS)}
            return Action(name, "POST", "/api/posts/{post_id}/comments", f"/api/posts/{post_id}/comments", json=body)
        if name == "post_photo":
            files = {"image": ("photo.png", tiny_png(rng), "image/png")}
            data = {"author": user, "caption": rng.choice(CAPTIONS)}
            return Action(name, "POST", "/api/posts", "/api/posts", data=data, files=files)
        if name in ("follow", "unfollow"):
            others = [u for u in self.users if u != user] or [user]
            method = "POST" if name == "follow" else "DELETE"
            path = f"/api/users/{rng.choice(others)}/follow"
            # Following oneself (single-user lists only) is refused with 422, which is expected.
            return Action(
                name, method, "/api/users/{username}/follow", path, json={"follower": user}, expected=frozenset({422})
            )
        # stale_link: an old shared link to a post that is gone or never existed.
        missing = newest + 1_000_000 + rng.randrange(1000)
        return Action(name, "GET", "/api/posts/{post_id}", f"/api/posts/{missing}", expected=frozenset({404}))


def main(argv: list[str] | None = None) -> int:
    """Run traffic against --url for --duration seconds and print the stats as JSON."""
    parser = argparse.ArgumentParser(prog="python -m deployer.loadgen.traffic", description=main.__doc__)
    parser.add_argument("--url", required=True, help="base URL, e.g. the load balancer http://127.0.0.1:8100")
    parser.add_argument("--rate", type=float, default=30.0, help="average requests per second (default 30)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to run (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=8, help="parallel connections (default 8)")
    parser.add_argument("--users", default=",".join(DEFAULT_USERS), help="comma-separated usernames")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-request timeout in seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    users = [u.strip() for u in args.users.split(",") if u.strip()]
    generator = TrafficGenerator(
        args.url, rate=args.rate, seed=args.seed, users=users, concurrency=args.concurrency, timeout=args.timeout
    )
    generator.start()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the run early, stats still printed
        time.sleep(args.duration)
    print(json.dumps(generator.stop().to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
