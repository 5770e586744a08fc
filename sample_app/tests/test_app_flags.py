"""Feature flags in the running app: variant metrics, the feed's gated feature, a platform that is down."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sample_app.app import create_app
from sample_app.deps import FlagsDep
from sample_app.flags import Flag, FlagClient, evaluate
from sample_app.metrics import LATENCY_BUCKETS
from sample_app.routes.feed import SUGGESTIONS

from .conftest import PNG_1X1, TEST_VERSION


def client_with(*flags: Flag) -> FlagClient:
    client = FlagClient(None)
    client._flags = {f.key: f for f in flags}  # what a refresh would have loaded
    return client


def samples(client: TestClient, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called name in the app's /metrics, as (labels, value)."""
    return [(s.labels, s.value) for family in text_string_to_metric_families(client.get("/metrics").text)
            for s in family.samples if s.name == name]


def flag_counts(client: TestClient, **match: str) -> dict[tuple[str, str], float]:
    """app_flag_requests_total summed by (flag, variant) over the samples whose labels match."""
    counts: dict[tuple[str, str], float] = {}
    for labels, value in samples(client, "app_flag_requests_total"):
        if all(labels.get(k) == v for k, v in match.items()):
            key = (labels["flag"], labels["variant"])
            counts[key] = counts.get(key, 0.0) + value
    return counts


@pytest.fixture
def half() -> Flag:
    return Flag("half", enabled=True, percentage=50)


@pytest.fixture
def flagged(database_url: str, half: Flag) -> Iterator[TestClient]:
    """A started app that knows three flags: one at 50%, one on for everyone, one off."""
    flags = client_with(half, Flag("all", enabled=True, percentage=100), Flag("none", enabled=False))
    with TestClient(create_app(database_url, version=TEST_VERSION, flag_client=flags)) as client:
        yield client


def a_post(client: TestClient) -> int:
    response = client.post("/api/posts", data={"author": "alice"}, files={"image": ("p.png", PNG_1X1, "image/png")})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


# --- metrics by variant -----------------------------------------------------------------------

def test_a_50_percent_flag_splits_the_requests_by_its_users(flagged: TestClient, half: Flag) -> None:
    post_id = a_post(flagged)
    users = [f"user{i}" for i in range(300)]
    for user in users:
        assert flagged.get(f"/api/posts/{post_id}", headers={"X-Snapgram-User": user}).status_code == 200
    on = sum(evaluate(half, u) for u in users)
    counts = flag_counts(flagged, route="/api/posts/{post_id}", status="200")
    assert counts[("half", "on")] == on and counts[("half", "off")] == len(users) - on
    assert 107 <= on <= 193, "about half (binomial, 5 standard deviations)"
    assert counts[("all", "on")] == len(users) and ("all", "off") not in counts
    assert counts[("none", "off")] == len(users) and ("none", "on") not in counts


def test_the_duration_histogram_has_flag_and_variant_only(flagged: TestClient) -> None:
    flagged.get("/api/users/alice", headers={"X-Snapgram-User": "alice"})
    buckets = samples(flagged, "app_flag_request_duration_seconds_bucket")
    assert {frozenset(labels) for labels, _ in buckets} == {frozenset({"flag", "variant", "le"})}
    assert {float(labels["le"]) for labels, _ in buckets} == {*LATENCY_BUCKETS, float("inf")}
    counts = {(l["flag"], l["variant"]): v for l, v in samples(flagged, "app_flag_request_duration_seconds_count")}
    assert counts[("all", "on")] == 1 and counts[("none", "off")] == 1


def test_anonymous_requests_and_probes_are_not_counted_by_flag(flagged: TestClient) -> None:
    flagged.get("/api/users/alice")
    for path in ("/healthz", "/version", "/metrics"):
        flagged.get(path, headers={"X-Snapgram-User": "alice"})
    assert flag_counts(flagged) == {}
    assert samples(flagged, "app_flag_request_duration_seconds_count") == []
    # The request is still in the families the canary judge reads, exactly as before.
    requests = samples(flagged, "http_requests_total")
    assert ({"route": "/api/users/{username}", "method": "GET", "status": "200"}, 1.0) in requests
    assert {frozenset(labels) for labels, _ in requests} == {frozenset({"route", "method", "status"})}


def test_route_and_status_labels_are_those_of_http_requests_total(flagged: TestClient) -> None:
    flagged.get("/api/users/nobody_here", headers={"X-Snapgram-User": "ana"})
    flagged.get("/no/such/page", headers={"X-Snapgram-User": "ana"})
    labels = {(l["route"], l["status"]) for l, _ in samples(flagged, "app_flag_requests_total") if l["flag"] == "all"}
    assert labels == {("/api/users/{username}", "404"), ("unmatched", "404")}


def test_the_feed_user_from_the_query_is_counted(flagged: TestClient) -> None:
    flagged.get("/api/feed", params={"user": "alice"})
    assert flag_counts(flagged, route="/api/feed", status="200")[("all", "on")] == 1


def test_no_flags_known_means_no_flag_series(client: TestClient) -> None:
    client.get("/api/users/alice", headers={"X-Snapgram-User": "alice"})
    assert flag_counts(client) == {}


def test_the_route_and_the_metrics_see_one_evaluation_even_if_the_flags_change_meanwhile(database_url: str) -> None:
    flags = client_with(Flag("switch", enabled=True, percentage=100))
    app = create_app(database_url, version=TEST_VERSION, flag_client=flags)

    @app.get("/test/refresh-midway")
    async def refresh_midway(flags_seen: FlagsDep) -> dict[str, bool]:
        flags._flags = {"switch": Flag("switch", enabled=False)}  # a refresh lands during the request
        return {"on": flags_seen.is_on("switch")}

    with TestClient(app) as client:
        assert client.get("/test/refresh-midway", headers={"X-Snapgram-User": "ana"}).json() == {"on": True}
        assert flag_counts(client, route="/test/refresh-midway") == {("switch", "on"): 1.0}
        assert client.get("/test/refresh-midway", headers={"X-Snapgram-User": "ana"}).json() == {"on": False}
        assert flag_counts(client, route="/test/refresh-midway") == {("switch", "on"): 1.0, ("switch", "off"): 1.0}


# --- the feed's gated feature -----------------------------------------------------------------

def test_with_every_flag_off_the_feed_has_no_trace_of_the_feature(client: TestClient) -> None:
    response = client.get("/api/feed", params={"user": "alice"}, headers={"X-Snapgram-User": "alice"})
    assert response.status_code == 200
    assert set(response.json()) == {"user", "posts"} and b"suggestions" not in response.content


def test_suggestions_for_the_users_the_flag_selects(database_url: str) -> None:
    flags = client_with(Flag(SUGGESTIONS, enabled=True, allow=frozenset({"ann"})))
    with TestClient(create_app(database_url, version=TEST_VERSION, flag_client=flags)) as client:
        for name in ("ann", "ben", "cid", "dot"):
            client.post("/api/users", json={"username": name})
        client.post("/api/users/dot/follow", json={"follower": "ann"})
        feed = client.get("/api/feed", params={"user": "ann"}).json()
        assert feed["suggestions"] == ["cid", "ben", "frank"], "newest accounts first, not followed, not oneself"
        assert "suggestions" not in client.get("/api/feed", params={"user": "ben"}).json()
        posts = client.get("/api/feed", params={"user": "ann"}).json()["posts"]
        assert posts == feed["posts"], "the posts are the same with the feature on"


def test_the_feed_feature_and_the_metrics_agree_on_every_user(database_url: str) -> None:
    gate = Flag(SUGGESTIONS, enabled=True, percentage=50)
    with TestClient(create_app(database_url, version=TEST_VERSION, flag_client=client_with(gate))) as client:
        users = [f"viewer{i}" for i in range(40)]
        for user in users:
            assert client.post("/api/users", json={"username": user}).status_code == 201
        saw: dict[str, bool] = {}
        for user in users:
            before = flag_counts(client, route="/api/feed").get((SUGGESTIONS, "on"), 0.0)
            answer = client.get("/api/feed", params={"user": user}, headers={"X-Snapgram-User": user}).json()
            after = flag_counts(client, route="/api/feed").get((SUGGESTIONS, "on"), 0.0)
            saw[user] = "suggestions" in answer
            assert (after - before == 1.0) == saw[user], user
        assert 0 < sum(saw.values()) < len(users)
        assert saw == {u: evaluate(gate, u) for u in users}


# --- a platform that does not answer ----------------------------------------------------------

@pytest.fixture
def silent_platform() -> Iterator[str]:
    """A port that accepts connections and never answers: every fetch hangs until its timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def closed_platform() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def serve_timed(app: FastAPI) -> tuple[float, list[float]]:
    """Start the app, time start-up and ten feed requests, stop it."""
    started = time.perf_counter()
    with TestClient(app) as client:
        startup = time.perf_counter() - started
        latencies = []
        for _ in range(10):
            t0 = time.perf_counter()
            response = client.get("/api/feed", params={"user": "alice"}, headers={"X-Snapgram-User": "alice"})
            latencies.append(time.perf_counter() - t0)
            assert response.status_code == 200 and "suggestions" not in response.json()
    return startup, latencies


@pytest.mark.parametrize("platform", ["silent_platform", "closed_platform"])
def test_a_platform_that_is_down_neither_delays_start_up_nor_slows_requests(
        platform: str, request: pytest.FixtureRequest, database_url: str) -> None:
    url = request.getfixturevalue(platform)
    app = create_app(database_url, version=TEST_VERSION, flags_url=url, flags_refresh_s=0.2)
    startup, latencies = serve_timed(app)
    assert startup < 1.0, "start-up must not wait for the first fetch"
    assert max(latencies) < 0.5, latencies
    assert app.state.flags.keys() == []


def test_a_restarted_host_serves_the_last_known_flags_while_the_platform_is_down(
        silent_platform: str, database_url: str, tmp_path: Path) -> None:
    cache = tmp_path / "flags.json"
    cache.write_text(json.dumps({"revision": 4, "flags": [{"key": SUGGESTIONS, "enabled": True, "percentage": 100}]}))
    app = create_app(database_url, version=TEST_VERSION, flags_url=silent_platform, flags_cache=str(cache))
    started = time.perf_counter()
    with TestClient(app) as client:
        assert time.perf_counter() - started < 1.0
        feed = client.get("/api/feed", params={"user": "alice"}, headers={"X-Snapgram-User": "alice"})
        assert feed.status_code == 200 and "suggestions" in feed.json()
        assert flag_counts(client, route="/api/feed") == {(SUGGESTIONS, "on"): 1.0}


def test_the_app_follows_the_platform_and_can_be_served_twice(database_url: str) -> None:
    fetched: list[str] = []

    def platform(request: httpx.Request) -> httpx.Response:
        fetched.append(request.headers.get("Authorization", ""))
        return httpx.Response(200, json={"revision": 1, "flags": [{"key": "all", "enabled": True, "percentage": 100}]})

    flags = FlagClient("http://platform", token="t0k", refresh_s=0.05, transport=httpx.MockTransport(platform))
    app = create_app(database_url, version=TEST_VERSION, flag_client=flags)
    for _ in range(2):  # a second start-up (tests, a restarted server) follows the platform again
        with TestClient(app) as client:
            deadline = time.monotonic() + 5
            count = len(fetched)
            while len(fetched) <= count + 1:
                assert time.monotonic() < deadline, "no refresh"
                time.sleep(0.01)
            client.get("/api/users/alice", headers={"X-Snapgram-User": "alice"})
            assert ("all", "on") in flag_counts(client)
    assert set(fetched) == {"Bearer t0k"}
