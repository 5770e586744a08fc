"""Every /api/v1 endpoint against every kind of caller, over a real SQLite database with a seeded history."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import itsdangerous
import pytest
from fastapi.testclient import TestClient

from dashboards.app import create_app
from deployer import store
from deployer.model import Role
from deployer.settings import Settings, load_settings
from tests.dashboard_support import History, seed_history, sha_of

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery"


@dataclass
class World:
    app: object
    settings: Settings
    history: History
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root: Path = tmp_path_factory.mktemp("auth")
    config = root / "config.yaml"
    config.write_text("source: {repository: central.git}\nworkdir: work\n"
                      "auth: {signin_free_failures: 2, signin_delay: 50ms, signin_max_delay: 200ms}\n")
    settings = load_settings(config, environ={})
    app = create_app(settings)
    service = app.state.service
    history = seed_history(service.engine, releases=30, hosts=4)
    tokens = {}
    for role in Role:
        service.accounts.add_user(name=f"{role.value}-user", role=role, password=PASSWORD)
        tokens[role.value] = service.accounts.create_token(name=f"{role.value}-bot", role=role).secret
    service.create_flag("new-feed", actor="ana", reason="a flag for the matrix to read and change")
    revoked = service.accounts.create_token(name="old", role=Role.ADMIN)
    service.accounts.revoke_token(token_id=revoked.token.id)
    tokens["revoked"] = revoked.secret
    yield World(app=app, settings=settings, history=history, tokens=tokens)
    service.engine.dispose()


def signed_in(world: World, name: str) -> tuple[TestClient, str]:
    """A browser-like client signed in as `name`, and the CSRF token its pages carry."""
    client = TestClient(world.app)
    page = client.get("/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    done = client.post("/signin", data={"name": name, "password": PASSWORD, "csrf_token": csrf},
                       follow_redirects=False)
    assert done.status_code == 303, done.text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)
    return client, csrf


def endpoints(h: History) -> list[tuple[str, str, dict | None, Role]]:
    """(method, path, json body, role needed) for every endpoint of the API."""
    return [
        ("GET", "/api/v1/whoami", None, Role.VIEWER),
        ("GET", "/api/v1/status", None, Role.VIEWER),
        ("GET", "/api/v1/overview", None, Role.VIEWER),
        ("GET", "/api/v1/commits", None, Role.VIEWER),
        ("GET", "/api/v1/releases?status=rolled_back", None, Role.VIEWER),
        ("GET", f"/api/v1/releases/{h.failed_canary}", None, Role.VIEWER),
        ("GET", f"/api/v1/deployments/{h.failed_canary}", None, Role.VIEWER),
        ("GET", "/api/v1/hosts", None, Role.VIEWER),
        ("GET", "/api/v1/events", None, Role.VIEWER),
        ("GET", "/api/v1/audit?kind=transition", None, Role.VIEWER),
        ("GET", "/api/v1/audit.jsonl", None, Role.VIEWER),
        ("POST", "/api/v1/deployments/current/pause", {"reason": "look"}, Role.RELEASE_MANAGER),
        ("POST", "/api/v1/lock", {"reason": "incident"}, Role.RELEASE_MANAGER),
        ("DELETE", "/api/v1/lock", None, Role.RELEASE_MANAGER),
        ("GET", "/api/v1/window", None, Role.VIEWER),
        ("POST", "/api/v1/freeze", {"reason": "incident", "until": "2h"}, Role.RELEASE_MANAGER),
        ("DELETE", "/api/v1/freeze", None, Role.RELEASE_MANAGER),
        ("POST", f"/api/v1/releases/{h.last_good}/rollback", {"reason": "bad"}, Role.RELEASE_MANAGER),
        ("POST", f"/api/v1/releases/{h.failed_tests}/retry", {"reason": "flaky"}, Role.RELEASE_MANAGER),
        ("POST", f"/api/v1/commits/{sha_of(h.failed_canary)}/good", {"reason": "fixed"}, Role.RELEASE_MANAGER),
        ("POST", "/api/v1/hooks/push", {"ref": "refs/heads/main"}, Role.RELEASE_MANAGER),
        ("GET", f"/api/v1/gate?branch=main&sha={sha_of(h.last_good)}", None, Role.VIEWER),
        ("POST", "/api/v1/gate/override", {"branch": "main", "sha": sha_of(h.last_good), "reason": "hotfix"},
         Role.RELEASE_MANAGER),
        ("POST", "/api/v1/gate/pushed", {"updates": [{"ref": "refs/heads/topic", "after": sha_of(h.last_good)}]},
         Role.RELEASE_MANAGER),
        ("GET", "/api/v1/checks", None, Role.VIEWER),
        ("GET", f"/api/v1/checks/{sha_of(h.last_good)}", None, Role.VIEWER),
        ("POST", f"/api/v1/checks/{sha_of(h.last_good)}", {"ref": "refs/heads/topic"}, Role.RELEASE_MANAGER),
        ("GET", "/api/v1/flags", None, Role.VIEWER),
        ("GET", "/api/v1/flags/new-feed", None, Role.VIEWER),
        ("POST", "/api/v1/flags", {"key": "matrix", "percentage": 5, "reason": "try"}, Role.RELEASE_MANAGER),
        ("PATCH", "/api/v1/flags/new-feed", {"enabled": True, "reason": "go"}, Role.RELEASE_MANAGER),
        ("DELETE", "/api/v1/flags/matrix?reason=done", None, Role.RELEASE_MANAGER),
        ("GET", "/api/v1/users", None, Role.ADMIN),
        ("POST", "/api/v1/users", {"name": "zed", "role": "viewer", "password": "x" * 14}, Role.ADMIN),
        ("GET", "/api/v1/tokens", None, Role.ADMIN),
        ("POST", "/api/v1/tokens", {"name": "ci", "role": "viewer"}, Role.ADMIN),
        ("DELETE", "/api/v1/tokens/999", None, Role.ADMIN),
    ]


def test_every_route_of_the_api_is_in_this_matrix(world: World) -> None:
    listed = {re.sub(r"\?.*", "", path) for _, path, _, _ in endpoints(world.history)}
    listed = {re.sub(r"/[0-9a-f]{40}|/\d+", "/{}", p) for p in listed}
    listed = {re.sub(r"^/api/v1/flags/[^/]+$", "/api/v1/flags/{}", p) for p in listed}
    paths = world.app.openapi()["paths"]
    # Webhooks are authenticated by the provider's signature, not by a role (tests/integration/test_webhooks.py).
    routes = {re.sub(r"\{[^}]+\}", "{}", p) for p in paths if p.startswith("/api/v1") and "/webhooks/" not in p}
    routes = {r.replace("/{}/{}", "/{}/{}").replace("current/{}", "current/pause") for r in routes}
    listed = {p.replace("/{}/good", "/{}/{}") for p in listed}
    assert routes == listed, routes ^ listed


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_tokens_get_exactly_what_their_role_allows(world: World, role: Role) -> None:
    client = TestClient(world.app, headers={"Authorization": f"Bearer {world.tokens[role.value]}"})
    for method, path, body, needed in endpoints(world.history):
        response = client.request(method, path, json=body)
        if role.allows(needed):
            assert response.status_code < 500 and response.status_code not in (401, 403), (path, response.text)
        else:
            assert response.status_code == 403, (path, response.status_code)
            assert "may not" in response.json()["detail"] and needed.value in response.json()["detail"]


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_signed_in_users_get_what_their_role_allows_with_csrf(world: World, role: Role) -> None:
    client, csrf = signed_in(world, f"{role.value}-user")
    for method, path, body, needed in endpoints(world.history):
        response = client.request(method, path, json=body, headers={"X-CSRF-Token": csrf})
        if role.allows(needed):
            assert response.status_code < 500 and response.status_code not in (401, 403), (path, response.text)
        else:
            assert response.status_code == 403, (path, response.status_code)


def test_a_cookie_without_the_csrf_token_cannot_change_anything(world: World) -> None:
    client, csrf = signed_in(world, "admin-user")
    for method, path, body, _ in endpoints(world.history):
        if method == "GET":
            continue
        for headers in ({}, {"X-CSRF-Token": csrf[:-2] + "xx"}):
            response = client.request(method, path, json=body, headers=headers)
            assert response.status_code == 403 and "CSRF" in response.json()["detail"], path


@pytest.mark.parametrize("caller", ["none", "revoked", "garbage", "forged-cookie", "old-session"])
def test_without_valid_credentials_every_endpoint_is_401_before_the_body_is_read(world: World, caller: str) -> None:
    client = TestClient(world.app)
    headers: dict[str, str] = {}
    if caller == "revoked":
        headers["Authorization"] = f"Bearer {world.tokens['revoked']}"
    elif caller == "garbage":
        headers["Authorization"] = "Bearer dpl_not-a-token"
    elif caller == "forged-cookie":
        # A well-formed session naming the admin, signed with a key that is not the server's.
        forged = itsdangerous.TimestampSigner("not-the-server-key" * 3).sign(
            b'eyJ1aWQiOiAzLCAiZXBvY2giOiAwfQ==').decode()
        client.cookies.set("deployer_session", forged)
    elif caller == "old-session":
        client, _ = signed_in(world, "viewer-user")
        world.app.state.service.accounts.set_password(name="viewer-user", password=PASSWORD)  # bumps the epoch
    for method, path, _, _ in endpoints(world.history):
        # A body that is not even JSON: a 422 here would mean the body was parsed before the caller was checked.
        response = client.request(method, path, content=b"{not json", headers={**headers,
                                                                                 "Content-Type": "application/json"})
        assert response.status_code == 401, (caller, path, response.status_code)
        assert "not authenticated" in response.json()["detail"]
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_healthz_and_metrics_stay_open(world: World) -> None:
    client = TestClient(world.app)
    assert client.get("/healthz").json() == {"status": "ok"}
    text = client.get("/metrics").text
    assert 'deployer_releases_total{kind="deploy",result="rolled_back"}' in text
    assert "deployer_queue_commits" in text and "deployer_stage_duration_seconds_bucket" in text
    assert 'deployer_verdicts_total{result="fail"}' in text


def test_pages_need_a_session_and_refuse_viewers_actions(world: World) -> None:
    anonymous = TestClient(world.app)
    for page in ("/", "/releases", f"/releases/{world.history.failed_canary}", "/fleet", "/audit", "/flags"):
        response = anonymous.get(page, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/signin?next=")
    viewer, csrf = signed_in(world, "viewer-user")
    for page in ("/", "/releases", f"/releases/{world.history.failed_canary}", "/fleet", "/audit", "/flags"):
        assert viewer.get(page).status_code == 200
    refused = viewer.post("/actions/lock", data={"csrf_token": csrf, "reason": "try", "next": "/"},
                          follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["x-action-refused"] == "403"
    assert "may not steer releases" in viewer.get("/").text
    assert world.app.state.service.status().lock is None or world.app.state.service.status().lock.holder != \
        "viewer-user"
    no_csrf = viewer.post("/actions/lock", data={"reason": "try"}, follow_redirects=False)
    assert no_csrf.status_code == 403


def test_failed_sign_ins_are_slowed_logged_and_audited(world: World, caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(world.app)
    accounts = world.app.state.service.accounts
    for attempt in range(4):
        page = client.get("/signin")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        response = client.post("/signin", data={"name": "release_manager-user", "password": f"wrong {attempt}",
                                                "csrf_token": csrf}, follow_redirects=False)
        assert response.status_code == 401 and "wrong name or password" in response.text
    assert accounts.recent_failures("release_manager-user") == 4
    assert accounts.signin_delay(4) == pytest.approx(0.2) and accounts.signin_delay(1) == 0
    assert any("failed sign-in for 'release_manager-user'" in r.getMessage() for r in caplog.records)
    audit = world.app.state.service.audit(kind="signin_failed")
    assert len(audit) >= 4 and all("wrong" not in e.message for e in audit)  # never the password


def test_sign_in_needs_the_forms_csrf_token_and_never_redirects_off_site(world: World) -> None:
    client = TestClient(world.app)
    client.get("/signin")
    refused = client.post("/signin", data={"name": "admin-user", "password": PASSWORD}, follow_redirects=False)
    assert refused.headers["location"] == "/signin"
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/signin").text).group(1)
    done = client.post("/signin", data={"name": "admin-user", "password": PASSWORD, "csrf_token": csrf,
                                        "next": "//evil.example/"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/"
    cookie = done.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_a_new_token_is_shown_once_and_stored_hashed(world: World) -> None:
    client = TestClient(world.app, headers={"Authorization": f"Bearer {world.tokens['admin']}"})
    created = client.post("/api/v1/tokens", json={"name": "deploy-bot", "role": "release_manager"}).json()
    secret = created["secret"]
    assert secret.startswith("dpl_") and len(secret) > 40
    listed = client.get("/api/v1/tokens").json()
    assert all(secret not in str(t) for t in listed)
    engine = store.make_engine(world.settings.database_url)
    with engine.connect() as conn:
        dump = "\n".join(str(row) for row in conn.exec_driver_sql("SELECT * FROM api_token"))
    engine.dispose()
    assert secret not in dump
    bot = TestClient(world.app, headers={"Authorization": f"Bearer {secret}"})
    assert bot.get("/api/v1/whoami").json() == {"name": "token:deploy-bot", "role": "release_manager",
                                                "kind": "token"}
    assert client.delete(f"/api/v1/tokens/{created['token']['id']}").status_code == 200
    assert bot.get("/api/v1/whoami").status_code == 401
