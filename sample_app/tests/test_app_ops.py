"""Version, health and metrics: what the platform relies on."""

from __future__ import annotations

import time

import os
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sample_app.app import create_app
from sample_app.db import make_engine
from sample_app.metrics import LATENCY_BUCKETS, cpu_timed
from sample_app.version import read_version

from .conftest import TEST_VERSION


def samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Scrape /metrics and return {(sample name, labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def requests_total(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], **labels: str) -> float:
    """Return the value of http_requests_total with exactly these labels (0 if absent)."""
    return scraped.get(("http_requests_total", frozenset(labels.items())), 0.0)


# --- version -------------------------------------------------------------------------


def test_version_prefers_environment(tmp_path: Path) -> None:
    (tmp_path / "REVISION").write_text("from-file\n")
    assert read_version({"SAMPLE_APP_VERSION": "from-env"}, tmp_path) == "from-env"


def test_version_from_revision_file(tmp_path: Path) -> None:
    (tmp_path / "REVISION").write_text("abc123\n")
    assert read_version({}, tmp_path) == "abc123"


def test_version_unknown_without_env_or_file(tmp_path: Path) -> None:
    assert read_version({}, tmp_path) == "unknown"
    (tmp_path / "REVISION").write_text("  \n")
    assert read_version({}, tmp_path) == "unknown"


def test_version_endpoint(client: TestClient) -> None:
    body = client.get("/version").json()
    assert body["version"] == TEST_VERSION
    assert body["pid"] == os.getpid()
    assert isinstance(body["started_at"], float)


def test_version_defaults_to_environment(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLE_APP_VERSION", "deadbeef")
    with TestClient(create_app(database_url)) as client:
        assert client.get("/version").json()["version"] == "deadbeef"


# --- health --------------------------------------------------------------------------


def test_healthz_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_503_before_startup(app: FastAPI) -> None:
    # Without the context manager the lifespan (schema, seed) never ran.
    assert TestClient(app).get("/healthz").status_code == 503


def test_healthz_503_when_database_unreachable(client: TestClient, app: FastAPI, tmp_path: Path) -> None:
    # A database path inside a missing directory cannot be opened.
    app.state.health_engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}", pooled=False)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


# --- metrics -------------------------------------------------------------------------


def test_requests_counted_by_route_template(client: TestClient, post_id: int) -> None:
    client.post(f"/api/posts/{post_id}/like", json={"user": "bob"})
    client.post(f"/api/posts/{post_id}/like", json={"user": "carol"})
    client.post("/api/posts/999/like", json={"user": "bob"})
    client.get("/api/users/alice")
    client.get("/no/such/path")
    scraped = samples(client)
    like = "/api/posts/{post_id}/like"
    assert requests_total(scraped, route=like, method="POST", status="200") == 2
    assert requests_total(scraped, route=like, method="POST", status="404") == 1
    assert requests_total(scraped, route="/api/posts", method="POST", status="201") == 1
    assert requests_total(scraped, route="/api/users/{username}", method="GET", status="200") == 1
    assert requests_total(scraped, route="unmatched", method="GET", status="404") == 1
    routes = {dict(labels).get("route") for name, labels in scraped if name == "http_requests_total"}
    assert not any(route and any(ch.isdigit() for ch in route) for route in routes), routes


def test_probes_are_not_counted(client: TestClient) -> None:
    client.get("/healthz")
    client.get("/version")
    client.get("/metrics")
    scraped = samples(client)
    routes = {dict(labels).get("route") for name, labels in scraped if name.startswith("http_request")}
    assert not routes & {"/healthz", "/version", "/metrics"}


def test_unhandled_exception_is_a_counted_500(app: FastAPI) -> None:
    @app.get("/api/boom/{n}")
    def boom(n: int) -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/api/boom/1").status_code == 500
        assert client.get("/api/boom/2").status_code == 500
        scraped = samples(client)
    assert requests_total(scraped, route="/api/boom/{n}", method="GET", status="500") == 2


def test_latency_histogram_buckets(client: TestClient) -> None:
    client.get("/api/feed", params={"user": "alice"})
    scraped = samples(client)
    bounds = sorted(
        float(dict(labels)["le"])
        for name, labels in scraped
        if name == "http_request_duration_seconds_bucket" and dict(labels)["route"] == "/api/feed"
    )
    assert bounds == [*LATENCY_BUCKETS, float("inf")]
    assert scraped[("http_request_duration_seconds_count", frozenset({("route", "/api/feed")}))] == 1


def test_thread_cpu_per_request_is_counted_by_route(app: FastAPI) -> None:
    @app.get("/api/spin/{ms}")
    @cpu_timed
    def spin(ms: int) -> dict[str, int]:
        end = time.thread_time() + ms / 1000
        while time.thread_time() < end:
            pass
        return {"ms": ms}

    with TestClient(app) as client:
        for _ in range(3):
            assert client.get("/api/spin/20").json() == {"ms": 20}
        client.get("/api/feed", params={"user": "alice"})
        scraped = samples(client)
    spent = scraped[("http_request_cpu_seconds_total", frozenset({("route", "/api/spin/{ms}")}))]
    # Three requests of 20 ms CPU each, measured on the worker thread that ran them.
    assert 0.06 <= spent < 0.09, spent
    assert scraped[("http_request_cpu_seconds_total", frozenset({("route", "/api/feed")}))] > 0


def test_process_and_build_metrics(client: TestClient) -> None:
    scraped = samples(client)
    names = {name for name, _ in scraped}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names
    assert scraped[("app_info", frozenset({("version", TEST_VERSION)}))] == 1


def test_apps_in_one_process_have_separate_metrics(database_url: str, tmp_path: Path) -> None:
    first = create_app(database_url, version="one")
    second = create_app(f"sqlite:///{tmp_path / 'other.db'}", version="two")
    with TestClient(first) as client_one, TestClient(second) as client_two:
        client_one.get("/api/users/alice")
        assert requests_total(samples(client_two), route="/api/users/{username}", method="GET", status="200") == 0
