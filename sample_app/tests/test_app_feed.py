"""The home feed and the HTML page."""

from __future__ import annotations

from fastapi.testclient import TestClient

from .conftest import PNG_1X1


def _post(client: TestClient, author: str, caption: str) -> int:
    response = client.post(
        "/api/posts",
        data={"author": author, "caption": caption},
        files={"image": ("p.png", PNG_1X1, "image/png")},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_feed_has_own_and_followed_posts_newest_first(client: TestClient) -> None:
    for name in ("ann", "ben", "cid"):
        client.post("/api/users", json={"username": name})
    client.post("/api/users/ben/follow", json={"follower": "ann"})
    own = _post(client, "ann", "mine")
    followed = _post(client, "ben", "followed")
    _post(client, "cid", "stranger")
    client.post(f"/api/posts/{followed}/like", json={"user": "cid"})
    client.post(f"/api/posts/{followed}/comments", json={"user": "ann", "text": "great"})

    response = client.get("/api/feed", params={"user": "ann"})
    assert response.status_code == 200
    feed = response.json()
    assert feed["user"] == "ann"
    assert [p["id"] for p in feed["posts"]] == [followed, own]
    assert feed["posts"][0]["likes"] == 1
    assert feed["posts"][0]["comments"] == 1
    assert feed["posts"][0]["author"] == "ben"


def test_feed_limit(client: TestClient) -> None:
    ids = [_post(client, "alice", f"post {i}") for i in range(5)]
    feed = client.get("/api/feed", params={"user": "alice", "limit": 2}).json()
    assert [p["id"] for p in feed["posts"]] == ids[::-1][:2]


def test_feed_errors(client: TestClient) -> None:
    assert client.get("/api/feed", params={"user": "nobody"}).status_code == 404
    assert client.get("/api/feed").status_code == 422
    assert client.get("/api/feed", params={"user": "alice", "limit": 0}).status_code == 422
    assert client.get("/api/feed", params={"user": "alice", "limit": 1000}).status_code == 422
    assert client.get("/api/feed", params={"user": "alice", "limit": "many"}).status_code == 422


def test_index_page_lists_posts_escaped(client: TestClient) -> None:
    _post(client, "bob", "<script>alert(1)</script>")
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "&lt;script&gt;" in page.text
    assert "<script>" not in page.text
    assert "/api/posts/1/image" in page.text
