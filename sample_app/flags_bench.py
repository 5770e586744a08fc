"""What feature flags cost the app: one evaluation, and a request through the metrics middleware.

    python -m sample_app.flags_bench [--rounds 15] [--requests 2000]     # prints one JSON line

`evaluation_us`: one `FlagClient.is_on` (10 flags x many users, median of the rounds'
means). `request_variants_us`: evaluating all 10 flags for one user, what the middleware does
per request. `middleware_us`: a request through MetricsMiddleware around an ASGI app that does
nothing, with no flags known and with 3, and the difference. `app_request_us`: the same for a
whole request to the real app (GET /api/posts/{id}, SQLite in a temporary directory), driven
in-process over ASGI. The two variants run in alternate rounds, so a noisy machine slows both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlmodel import Session, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .app import create_app, lifespan
from .flags import Flag, FlagClient
from .metrics import AppMetrics, MetricsMiddleware
from .models import Post, PostImage, User

PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201f5a3"
    "c8ee0000000049454e44ae426082"
)
USERS = [f"user{i}" for i in range(1000)]


def known(count: int) -> FlagClient:
    """A client that knows `count` flags of every kind (partial, full, off, with lists), as if fetched."""
    client = FlagClient(None)
    kinds = [dict(enabled=True, percentage=50.0), dict(enabled=True, percentage=100.0), dict(enabled=False),
             dict(enabled=True, percentage=10.0, allow=frozenset({"user1", "user2"}), deny=frozenset({"user3"}))]
    client._flags = {f"flag-{i}": Flag(f"flag-{i}", **kinds[i % len(kinds)]) for i in range(count)}  # type: ignore[arg-type]
    return client


def time_evaluations(rounds: int) -> tuple[float, float]:
    """Median per-evaluation and per-request (all 10 flags) cost in microseconds."""
    client = known(10)
    keys = client.keys()
    per_eval, per_request = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for user in USERS:
            for key in keys:
                client.is_on(key, user)
        per_eval.append((time.perf_counter() - started) / (len(USERS) * len(keys)) * 1e6)
        started = time.perf_counter()
        for user in USERS:
            client.variants_for(user)
        per_request.append((time.perf_counter() - started) / len(USERS) * 1e6)
    return statistics.median(per_eval), statistics.median(per_request)


def http_scope(path: str, user: str) -> Scope:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
            "headers": [(b"host", b"bench"), (b"x-snapgram-user", user.encode())],
            "client": ("127.0.0.1", 1), "server": ("bench", 80)}


async def call(app: ASGIApp, scope: Scope) -> int:
    """One request straight through the ASGI app; returns its status."""
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def time_requests(app: ASGIApp, path: str, requests: int) -> float:
    """Mean microseconds per request over `requests` requests by different users."""
    scopes = [http_scope(path, USERS[i % len(USERS)]) for i in range(requests)]
    started = time.perf_counter()
    for scope in scopes:
        await call(app, dict(scope))
    return (time.perf_counter() - started) / requests * 1e6


async def compare(apps: dict[str, ASGIApp], path: str, rounds: int, requests: int) -> dict[str, float]:
    """Alternate rounds of each app; medians and the added cost of 'three_flags' over 'none'."""
    for app in apps.values():  # warm-up: first label children, caches, imports
        await time_requests(app, path, 50)
    series: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            series[name].append(await time_requests(app, path, requests))
    result = {name: round(statistics.median(values), 2) for name, values in series.items()}
    result["added"] = round(result["three_flags"] - result["none"], 2)
    return result


async def noop(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def middleware_apps() -> dict[str, ASGIApp]:
    return {"none": MetricsMiddleware(noop, AppMetrics("bench"), flags=known(0)),
            "three_flags": MetricsMiddleware(noop, AppMetrics("bench"), flags=known(3))}


async def in_lifespans(apps: dict[str, Any], work: Callable[[], Awaitable[dict[str, float]]]) -> dict[str, float]:
    """Run work while every app is started (database ready)."""
    if not apps:
        return await work()
    name, app = next(iter(apps.items()))
    rest = {k: v for k, v in apps.items() if k != name}
    async with lifespan(app):
        return await in_lifespans(rest, work)


async def app_figures(directory: Path, rounds: int, requests: int) -> dict[str, float]:
    apps = {name: create_app(f"sqlite:///{directory / f'{name}.db'}", version="bench", flag_client=known(count))
            for name, count in (("none", 0), ("three_flags", 3))}

    async def work() -> dict[str, float]:
        for app in apps.values():
            with Session(app.state.engine) as session:
                alice = session.exec(select(User).where(User.username == "alice")).one()
                post = Post(author_id=alice.id, caption="bench", content_type="image/png", image_size=len(PNG_1X1))
                session.add(post)
                session.flush()
                session.add(PostImage(post_id=post.id, data=PNG_1X1))
                session.commit()
        return await compare(apps, "/api/posts/1", rounds, requests)

    return await in_lifespans(apps, work)


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line of the figures."""
    parser = argparse.ArgumentParser(prog="python -m sample_app.flags_bench", description=main.__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2000, help="requests per round through the middleware")
    parser.add_argument("--app-requests", type=int, default=200, help="requests per round through the whole app")
    args = parser.parse_args(argv)
    evaluation_us, variants_us = time_evaluations(args.rounds)
    middleware = asyncio.run(compare(middleware_apps(), "/bench", args.rounds, args.requests))
    with tempfile.TemporaryDirectory(prefix="flags-bench-") as directory:
        whole_app = asyncio.run(app_figures(Path(directory), args.rounds, args.app_requests))
    print(json.dumps({"evaluation_us": round(evaluation_us, 3), "request_variants_us": round(variants_us, 3),
                      "request_variants_flags": 10, "middleware_us": middleware, "app_request_us": whole_app,
                      "rounds": args.rounds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
