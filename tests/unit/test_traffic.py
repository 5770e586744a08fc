"""The traffic generator, over real HTTP against small local servers and the real sample app."""

from __future__ import annotations

import io
import itertools
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from random import Random

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from deployer.loadgen.traffic import TrafficGenerator, TrafficStats, classify, main, tiny_png
from sample_app.app import create_app

CATEGORIES = ("ok", "client_errors", "server_errors", "balancer_errors", "transport_errors")


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve app with uvicorn on a free 127.0.0.1 port in a thread; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "test server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def stub_app(*, faulty: bool) -> FastAPI:
    """Return a stand-in for the balancer + fleet: two upstreams, optionally failing some routes."""
    app = FastAPI()
    upstreams = itertools.cycle(["h1", "h2"])
    lock = threading.Lock()

    @app.api_route("/{path:path}", methods=["GET", "POST", "DELETE"])
    async def anything(path: str, request: Request) -> Response:
        with lock:
            upstream = next(upstreams)
        headers = {"X-Upstream": upstream}
        if path == "api/users" and request.method == "POST":
            return JSONResponse({"detail": "taken"}, status_code=409, headers=headers)
        if path == "api/feed":
            return JSONResponse({"user": "x", "posts": [{"id": 1}, {"id": 2}, {"id": 3}]}, headers=headers)
        if path.startswith("api/posts/") and int(path.split("/")[2]) > 1000:
            return JSONResponse({"detail": "gone"}, status_code=404, headers=headers)
        if faulty and path.endswith("/like"):
            return JSONResponse({"detail": "boom"}, status_code=500, headers=headers)
        if faulty and path.endswith("/comments"):
            # The balancer could not reach the host it picked.
            headers["X-Balancer-Error"] = f"connect to {upstream} refused"
            return JSONResponse({"detail": "bad gateway"}, status_code=502, headers=headers)
        if faulty and path.startswith("api/users/") and request.method == "GET":
            return JSONResponse({"detail": "forbidden"}, status_code=403, headers=headers)
        if path == "api/posts":
            return JSONResponse({"id": 4}, status_code=201, headers=headers)
        return JSONResponse({}, headers=headers)

    return app


def run_for(generator: TrafficGenerator, seconds: float) -> TrafficStats:
    """Run generator for seconds and return its final stats."""
    generator.start()
    time.sleep(seconds)
    return generator.stop()


def assert_consistent(stats: TrafficStats) -> None:
    """Every sent request is in exactly one category."""
    assert stats.sent == sum(getattr(stats, c) for c in CATEGORIES)
    assert sum(stats.by_action.values()) == stats.sent
    assert sum(stats.server_errors_by_upstream.values()) <= stats.server_errors


@pytest.fixture(scope="module")
def healthy_url() -> Iterator[str]:
    with serve(stub_app(faulty=False)) as url:
        yield url


@pytest.fixture(scope="module")
def faulty_url() -> Iterator[str]:
    with serve(stub_app(faulty=True)) as url:
        yield url


def test_rate_is_roughly_honoured_and_actions_weighted(healthy_url: str) -> None:
    stats = run_for(TrafficGenerator(healthy_url, rate=80, seed=1), 2.0)
    # Poisson with mean 160 arrivals: the odds of leaving [100, 230] are about one in a million.
    # Arrivals find every worker busy only when the machine is slow; they are counted.
    assert 100 <= stats.sent + stats.dropped <= 230, stats.to_dict()
    assert stats.sent >= 50
    assert stats.ok == stats.sent
    assert set(stats.by_upstream) == {"h1", "h2"}
    assert stats.failures == []
    assert stats.latency_p50_ms is not None
    assert_consistent(stats)
    actions = stats.by_action
    assert actions["signup"] == 6  # each user signs up once, first
    assert actions["browse_feed"] == max(actions.values())
    assert {"view_post", "like", "comment"} <= set(actions)


def test_categories_counted(faulty_url: str) -> None:
    stats = run_for(TrafficGenerator(faulty_url, rate=120, seed=3, concurrency=16), 2.5)
    assert_consistent(stats)
    assert stats.server_errors > 0
    assert stats.balancer_errors > 0
    assert stats.client_errors > 0
    assert stats.transport_errors == 0
    # 500s are charged to the upstream that served them; balancer errors are not server errors.
    assert set(stats.server_errors_by_upstream) <= {"h1", "h2"}
    assert sum(stats.server_errors_by_upstream.values()) == stats.server_errors
    assert stats.server_errors == stats.by_action.get("like", 0) + stats.by_action.get("unlike", 0)
    assert stats.balancer_errors == stats.by_action.get("comment", 0) + stats.by_action.get("view_comments", 0)
    # 409 on signup and 404 on a stale link are normal answers, not client errors.
    assert stats.client_errors == stats.by_action.get("view_profile", 0)
    routes = {(f.route, f.status, f.category) for f in stats.failures}
    assert ("/api/posts/{post_id}/like", 500, "server_errors") in routes
    balancer_failure = next(f for f in stats.failures if f.category == "balancer_errors")
    assert balancer_failure.status == 502
    assert balancer_failure.error and "refused" in balancer_failure.error
    assert balancer_failure.upstream in {"h1", "h2"}
    assert len(stats.failures) <= 200


def test_transport_errors_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stats = run_for(TrafficGenerator(f"http://127.0.0.1:{port}", rate=40, seed=4), 1.0)
    assert stats.sent > 0
    assert stats.transport_errors == stats.sent
    assert stats.failures[0].status is None
    assert "ConnectError" in (stats.failures[0].error or "")


def test_stats_snapshot_while_running_and_json(healthy_url: str) -> None:
    generator = TrafficGenerator(healthy_url, rate=60, seed=5)
    generator.start()
    try:
        time.sleep(0.5)
        snapshot = generator.stats()
        snapshot.by_action["tampered"] = 1  # a snapshot is a copy
    finally:
        final = generator.stop()
    assert "tampered" not in final.by_action
    assert final.sent >= snapshot.sent
    assert generator.stop().sent == final.sent  # stopping twice is harmless
    decoded = json.loads(json.dumps(final.to_dict()))
    assert decoded["sent"] == final.sent
    assert decoded["error_rate"] == 0.0


def test_against_the_real_sample_app(tmp_path: Path) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'app.db'}", version="test")
    with serve(app) as url:
        stats = run_for(TrafficGenerator(url, rate=60, seed=6), 2.5)
    assert_consistent(stats)
    assert stats.sent > 30
    # Every request the generator makes is one the app accepts: the two agree on the API.
    assert stats.ok == stats.sent, stats.failures[:5]
    assert stats.by_action["browse_feed"] > 0


def test_cli_prints_stats_json(healthy_url: str) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["--url", healthy_url, "--rate", "40", "--duration", "0.5"]) == 0
    stats = json.loads(out.getvalue())
    assert stats["sent"] > 0
    assert stats["ok"] == stats["sent"]


def test_classify() -> None:
    assert classify(200, False) == "ok"
    assert classify(302, False) == "ok"
    assert classify(404, False) == "client_errors"
    assert classify(404, False, frozenset({404})) == "ok"
    assert classify(500, False) == "server_errors"
    assert classify(503, True) == "balancer_errors"
    assert classify(200, True) == "balancer_errors"


def test_tiny_png_is_a_valid_png() -> None:
    data = tiny_png(Random(0))
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    offset, chunks = 8, {}
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, payload = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + payload)
        chunks[kind] = payload
        offset += 12 + length
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    assert len(zlib.decompress(chunks[b"IDAT"])) == height * (1 + 3 * width)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rate"):
        TrafficGenerator("http://127.0.0.1:1", rate=0)
    with pytest.raises(ValueError, match="concurrency"):
        TrafficGenerator("http://127.0.0.1:1", concurrency=0)
