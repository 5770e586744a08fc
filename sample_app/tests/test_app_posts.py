"""Photo posts, images, likes and comments."""

from __future__ import annotations

from fastapi.testclient import TestClient

from sample_app.routes.posts import MAX_IMAGE_BYTES

from .conftest import PNG_1X1


def test_create_and_get_post(client: TestClient) -> None:
    response = client.post(
        "/api/posts",
        data={"author": "bob", "caption": "my cat"},
        files={"image": ("cat.png", PNG_1X1, "image/png")},
    )
    assert response.status_code == 201
    post = response.json()
    assert post["author"] == "bob"
    assert post["caption"] == "my cat"
    assert post["likes"] == 0 and post["comments"] == 0
    assert post["image_size"] == len(PNG_1X1)
    fetched = client.get(f"/api/posts/{post['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == post
    assert client.get("/api/users/bob").json()["posts"] == 1


def test_image_round_trip(client: TestClient, post_id: int) -> None:
    image = client.get(f"/api/posts/{post_id}/image")
    assert image.status_code == 200
    assert image.content == PNG_1X1
    assert image.headers["content-type"] == "image/png"


def test_caption_is_optional(client: TestClient) -> None:
    response = client.post("/api/posts", data={"author": "alice"}, files={"image": ("a.png", PNG_1X1, "image/png")})
    assert response.status_code == 201
    assert response.json()["caption"] == ""


def test_too_large_image_is_413(client: TestClient) -> None:
    big = b"\x89PNG" + b"\0" * MAX_IMAGE_BYTES
    response = client.post("/api/posts", data={"author": "alice"}, files={"image": ("big.png", big, "image/png")})
    assert response.status_code == 413


def test_bad_posts_are_422_or_404(client: TestClient) -> None:
    png = ("a.png", PNG_1X1, "image/png")
    assert client.post("/api/posts", data={"author": "alice"}).status_code == 422  # no image
    assert client.post("/api/posts", files={"image": png}).status_code == 422  # no author
    assert client.post("/api/posts", data={"author": "Bad Name"}, files={"image": png}).status_code == 422
    not_image = {"image": ("a.txt", b"hello", "text/plain")}
    assert client.post("/api/posts", data={"author": "alice"}, files=not_image).status_code == 422
    empty = {"image": ("a.png", b"", "image/png")}
    assert client.post("/api/posts", data={"author": "alice"}, files=empty).status_code == 422
    assert client.post("/api/posts", data={"author": "nobody"}, files={"image": png}).status_code == 404
    assert client.post("/api/posts", json={"author": "alice"}).status_code == 422


def test_unknown_posts_are_404_and_bad_ids_422(client: TestClient) -> None:
    for path in ("/api/posts/999", "/api/posts/999/image", "/api/posts/999/comments"):
        assert client.get(path).status_code == 404, path
    assert client.post("/api/posts/999/like", json={"user": "bob"}).status_code == 404
    assert client.post("/api/posts/999/comments", json={"user": "bob", "text": "hi"}).status_code == 404
    assert client.get("/api/posts/abc").status_code == 422


def test_like_is_idempotent_and_unlike_works(client: TestClient, post_id: int) -> None:
    first = client.post(f"/api/posts/{post_id}/like", json={"user": "bob"})
    assert first.status_code == 200
    assert first.json() == {"post_id": post_id, "user": "bob", "liked": True, "likes": 1}
    assert client.post(f"/api/posts/{post_id}/like", json={"user": "bob"}).json()["likes"] == 1
    assert client.post(f"/api/posts/{post_id}/like", json={"user": "carol"}).json()["likes"] == 2
    assert client.get(f"/api/posts/{post_id}").json()["likes"] == 2

    unliked = client.request("DELETE", f"/api/posts/{post_id}/like", json={"user": "bob"})
    assert unliked.status_code == 200
    assert unliked.json()["liked"] is False
    assert unliked.json()["likes"] == 1
    assert client.request("DELETE", f"/api/posts/{post_id}/like", json={"user": "bob"}).json()["likes"] == 1


def test_like_errors(client: TestClient, post_id: int) -> None:
    assert client.post(f"/api/posts/{post_id}/like", json={"user": "nobody"}).status_code == 404
    assert client.post(f"/api/posts/{post_id}/like", json={}).status_code == 422
    assert client.request("DELETE", f"/api/posts/{post_id}/like", json={"user": "nobody"}).status_code == 404


def test_comments(client: TestClient, post_id: int) -> None:
    first = client.post(f"/api/posts/{post_id}/comments", json={"user": "bob", "text": "wow"})
    assert first.status_code == 201
    assert first.json()["user"] == "bob"
    client.post(f"/api/posts/{post_id}/comments", json={"user": "carol", "text": "nice <b>"})
    comments = client.get(f"/api/posts/{post_id}/comments").json()
    assert [(c["user"], c["text"]) for c in comments] == [("bob", "wow"), ("carol", "nice <b>")]
    assert client.get(f"/api/posts/{post_id}").json()["comments"] == 2


def test_comment_errors(client: TestClient, post_id: int) -> None:
    url = f"/api/posts/{post_id}/comments"
    assert client.post(url, json={"user": "bob", "text": ""}).status_code == 422
    assert client.post(url, json={"user": "bob", "text": "x" * 501}).status_code == 422
    assert client.post(url, json={"user": "bob"}).status_code == 422
    assert client.post(url, json={"user": "nobody", "text": "hi"}).status_code == 404
