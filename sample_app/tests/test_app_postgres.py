"""The app on PostgreSQL; runs when SAMPLE_APP_TEST_POSTGRES_URL names a server it may create databases on."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sample_app.app import create_app
from sample_app.db import DEMO_USERS, init_database, make_engine

from .conftest import PNG_1X1

ADMIN_URL = os.environ.get("SAMPLE_APP_TEST_POSTGRES_URL", "")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not ADMIN_URL,
        reason="set SAMPLE_APP_TEST_POSTGRES_URL, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    ),
]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """Create a throwaway database on the server and drop it afterwards."""
    name = f"sample_app_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_concurrent_first_start(postgres_url: str) -> None:
    engines = [make_engine(postgres_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def start(index: int) -> None:
        barrier.wait()
        try:
            init_database(engines[index])
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(len(engines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for engine in engines:
        engine.dispose()
    assert errors == []


def test_routes_on_postgres(postgres_url: str) -> None:
    with TestClient(create_app(postgres_url, version="pg")) as client:
        assert client.get("/healthz").status_code == 200
        for name in DEMO_USERS:
            assert client.get(f"/api/users/{name}").status_code == 200
        post = client.post(
            "/api/posts", data={"author": "alice", "caption": "pg"}, files={"image": ("a.png", PNG_1X1, "image/png")}
        ).json()
        assert client.post(f"/api/posts/{post['id']}/like", json={"user": "frank"}).json()["likes"] == 1
        assert client.post(f"/api/posts/{post['id']}/like", json={"user": "frank"}).json()["likes"] == 1
        client.post(f"/api/posts/{post['id']}/comments", json={"user": "frank", "text": "hi"})
        feed = client.get("/api/feed", params={"user": "frank"}).json()
        assert [(p["id"], p["likes"], p["comments"]) for p in feed["posts"]] == [(post["id"], 1, 1)]
        assert client.get(f"/api/posts/{post['id']}/image").content == PNG_1X1
        assert client.post("/api/users", json={"username": "alice"}).status_code == 409
