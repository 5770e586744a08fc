"""Fixtures for the app's own test suite: a fresh app and client on a temporary SQLite file."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

with warnings.catch_warnings():
    # The test client warns that it will move to another HTTP library; not our concern here.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from sample_app.app import create_app

TEST_VERSION = "0123456789abcdef0123456789abcdef01234567"
# A valid 1x1 PNG, so image round trips carry real image bytes.
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201f5a3"
    "c8ee0000000049454e44ae426082"
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers so the suite also runs from a release directory without pyproject."""
    config.addinivalue_line("markers", "integration: starts real processes (slower)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Return the URL of an empty SQLite file private to the test."""
    return f"sqlite:///{tmp_path / 'app.db'}"


@pytest.fixture
def app(database_url: str) -> FastAPI:
    """Return an app on the test's own database."""
    return create_app(database_url, version=TEST_VERSION)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """Return a started test client (startup created the schema and demo users)."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def post_id(client: TestClient) -> int:
    """Return the id of a fresh post by alice."""
    response = client.post(
        "/api/posts",
        data={"author": "alice", "caption": "sunset"},
        files={"image": ("sunset.png", PNG_1X1, "image/png")},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])
