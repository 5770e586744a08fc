"""Users and follows."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_demo_users_are_seeded(client: TestClient) -> None:
    for name in ("alice", "bob", "carol", "dave", "erin", "frank"):
        assert client.get(f"/api/users/{name}").status_code == 200


def test_create_and_get_user(client: TestClient) -> None:
    created = client.post("/api/users", json={"username": "zoe"})
    assert created.status_code == 201
    assert created.json()["username"] == "zoe"
    profile = client.get("/api/users/zoe").json()
    assert profile["followers"] == 0
    assert profile["following"] == 0
    assert profile["posts"] == 0


def test_duplicate_username_is_409(client: TestClient) -> None:
    assert client.post("/api/users", json={"username": "alice"}).status_code == 409


def test_bad_usernames_are_422(client: TestClient) -> None:
    for body in ({}, {"username": ""}, {"username": "Has Spaces"}, {"username": "x" * 31}, {"username": 5}):
        assert client.post("/api/users", json=body).status_code == 422, body
    not_json = client.post("/api/users", content=b"not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 422


def test_unknown_user_is_404(client: TestClient) -> None:
    assert client.get("/api/users/nobody").status_code == 404


def test_follow_and_unfollow_update_counts(client: TestClient) -> None:
    client.post("/api/users", json={"username": "zoe"})
    client.post("/api/users", json={"username": "yann"})
    followed = client.post("/api/users/zoe/follow", json={"follower": "yann"})
    assert followed.status_code == 200
    assert followed.json() == {"follower": "yann", "followee": "zoe", "following": True}
    # Following twice changes nothing.
    assert client.post("/api/users/zoe/follow", json={"follower": "yann"}).status_code == 200
    assert client.get("/api/users/zoe").json()["followers"] == 1
    assert client.get("/api/users/yann").json()["following"] == 1

    unfollowed = client.request("DELETE", "/api/users/zoe/follow", json={"follower": "yann"})
    assert unfollowed.status_code == 200
    assert unfollowed.json()["following"] is False
    assert client.request("DELETE", "/api/users/zoe/follow", json={"follower": "yann"}).status_code == 200
    assert client.get("/api/users/zoe").json()["followers"] == 0


def test_follow_errors(client: TestClient) -> None:
    assert client.post("/api/users/alice/follow", json={"follower": "alice"}).status_code == 422
    assert client.post("/api/users/nobody/follow", json={"follower": "alice"}).status_code == 404
    assert client.post("/api/users/alice/follow", json={"follower": "nobody"}).status_code == 404
    assert client.post("/api/users/alice/follow", json={}).status_code == 422
    assert client.request("DELETE", "/api/users/nobody/follow", json={"follower": "alice"}).status_code == 404
