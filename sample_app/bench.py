"""The app's performance benchmark: its main routes driven in-process, CPU time and latency per request.

    python -m sample_app.bench --rounds 10 --requests 20     # one JSON line with every round
    python -m sample_app.bench --serve                        # one round per "round" line on stdin

Each round sends `requests` requests to every route and records the CPU time (process
time, every thread) and the wall latency per request, as trimmed means over the round's
requests (a preempted request does not move them). The rounds are the
samples a comparison works on; `--serve` lets a caller interleave the rounds of two
versions so that a noisy machine slows both alike.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from fastapi import FastAPI
from sqlmodel import Session, select

from .app import create_app
from .db import DEMO_USERS
from .models import Comment, Follow, Like, Post, PostImage, User

# A valid 1x1 PNG: the posts carry real image bytes.
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201f5a3"
    "c8ee0000000049454e44ae426082"
)
POSTS = 40
COMMENTS_PER_POST = 5
WARMUP_REQUESTS = 3


def seed(app: FastAPI) -> int:
    """Posts, follows, likes and comments written straight into the database; returns the newest post id."""
    with Session(app.state.engine) as session:
        users = {u.username: u.id for u in session.exec(select(User)).all()}
        ids = [users[name] for name in DEMO_USERS]
        follows = {(f.follower_id, f.followee_id) for f in session.exec(select(Follow)).all()}
        for i, follower in enumerate(ids):
            session.add_all(Follow(follower_id=follower, followee_id=other) for other in ids[i + 1:]
                            if (follower, other) not in follows)
        post_id = 0
        for n in range(POSTS):
            post = Post(author_id=ids[n % len(ids)], caption=f"photo {n} #bench", content_type="image/png",
                        image_size=len(PNG_1X1))
            session.add(post)
            session.flush()
            assert post.id is not None
            post_id = post.id
            session.add(PostImage(post_id=post_id, data=PNG_1X1))
            session.add_all(Comment(post_id=post_id, user_id=ids[c % len(ids)], text=f"nice {c}")
                            for c in range(COMMENTS_PER_POST))
            session.add(Like(user_id=ids[(n + 1) % len(ids)], post_id=post_id))
        session.commit()
    return post_id


def routes(post_id: int) -> dict[str, tuple[str, str]]:
    """The benchmarked routes: name -> (method, path)."""
    return {
        "home": ("GET", "/"),
        "feed": ("GET", f"/api/feed?user={DEMO_USERS[-1]}"),
        "post": ("GET", f"/api/posts/{post_id}"),
        "comments": ("GET", f"/api/posts/{post_id}/comments"),
        "profile": ("GET", f"/api/users/{DEMO_USERS[0]}"),
    }


@contextmanager
def bench_client() -> Iterator[tuple[TestClient, dict[str, tuple[str, str]]]]:
    """A started app on a private SQLite file, seeded; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="snapgram-bench-") as folder:
        app = create_app(f"sqlite:///{Path(folder) / 'bench.db'}", version="bench")
        with TestClient(app) as client:  # entering runs the app's start-up: schema and demo users
            yield client, routes(seed(app))


def trimmed_mean(values: list[float], cut: float = 0.2) -> float:
    """Mean of the values without the lowest and highest `cut` share (at least one of each from 5 values up).

    A request preempted by another process on a busy machine, or caught by a garbage
    collection, would otherwise move its round's mean by far more than a real regression;
    a slowdown of most requests still moves the trimmed mean in full.
    """
    ordered = sorted(values)
    k = int(len(ordered) * cut) if len(ordered) >= 5 else 0
    kept = ordered[k:len(ordered) - k]
    return sum(kept) / len(kept)


def measure(send: Callable[[], object], requests: int) -> tuple[float, float]:
    """CPU milliseconds and latency milliseconds per request over `requests` requests (trimmed means)."""
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(requests):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        send()
        cpu.append((time.process_time() - cpu0) * 1000.0)
        wall.append((time.perf_counter() - wall0) * 1000.0)
    return trimmed_mean(cpu), trimmed_mean(wall)


def one_round(client: TestClient, table: dict[str, tuple[str, str]], requests: int) -> dict[str, dict[str, float]]:
    """Every route measured once; a failing route stops the benchmark (it would be a wrong figure)."""
    result: dict[str, dict[str, float]] = {}
    for name, (method, path) in table.items():
        def send(method: str = method, path: str = path) -> object:
            response = client.request(method, path)
            if response.status_code >= 400:
                raise RuntimeError(f"route {name}: {method} {path} answered {response.status_code}")
            return response
        for _ in range(WARMUP_REQUESTS):
            send()
        cpu_ms, latency_ms = measure(send, requests)
        result[name] = {"cpu_ms": round(cpu_ms, 4), "latency_ms": round(latency_ms, 4)}
    return result


def run_rounds(rounds: int, requests: int) -> dict[str, dict[str, list[float]]]:
    """`rounds` rounds of every route: route -> {"cpu_ms": [...], "latency_ms": [...]}."""
    series: dict[str, dict[str, list[float]]] = {}
    with bench_client() as (client, table):
        for _ in range(rounds):
            for name, values in one_round(client, table, requests).items():
                entry = series.setdefault(name, {"cpu_ms": [], "latency_ms": []})
                entry["cpu_ms"].append(values["cpu_ms"])
                entry["latency_ms"].append(values["latency_ms"])
    return series


def serve(requests: int, stdin: Iterator[str], out: Callable[[str], None]) -> None:
    """Line protocol: print {"ready": true}, then one round per "round" line until "quit" or EOF."""
    with bench_client() as (client, table):
        out(json.dumps({"ready": True, "routes": sorted(table)}))
        for line in stdin:
            command = line.strip()
            if command == "quit":
                return
            if command != "round":
                out(json.dumps({"error": f"unknown command {command!r}; send 'round' or 'quit'"}))
                continue
            out(json.dumps({"routes": one_round(client, table, requests)}))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON line (or serve rounds on stdin)."""
    parser = argparse.ArgumentParser(prog="python -m sample_app.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="samples per route (default 10)")
    parser.add_argument("--requests", type=int, default=20, help="requests per route per round (default 20)")
    parser.add_argument("--serve", action="store_true", help="run one round per 'round' line read on stdin")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.requests < 1:
        parser.error("--rounds and --requests must be at least 1")

    def out(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    if args.serve:
        serve(args.requests, iter(sys.stdin.readline, ""), out)
    else:
        out(json.dumps({"rounds": args.rounds, "requests": args.requests,
                        "routes": run_rounds(args.rounds, args.requests)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
