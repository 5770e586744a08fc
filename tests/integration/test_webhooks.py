"""Webhook intake from GitHub and GitLab over the real app and database: what is accepted, refused, triggered."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from dashboards.app import create_app
from deployer import store
from deployer.model import Command, CommandKind, CommitCheck, WebhookDelivery
from deployer.settings import Settings, load_settings
from deployer.webhooks import github_signature

pytestmark = pytest.mark.integration
SECRET = "s3cret-webhook-key-for-tests"
GITLAB_TOKEN = "gitlab-token-for-tests"
SHA = "1234567890abcdef1234567890abcdef12345678"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    config = tmp_path / "config.yaml"
    config.write_text("source: {repository: central.git}\nworkdir: work\n"
                      "gate: {required_checks: [tests, bench]}\n"
                      f"webhooks: {{github_secret: {SECRET}, gitlab_token: {GITLAB_TOKEN}, max_body: 4096}}\n")
    return load_settings(config, environ={})


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as test_client:
        yield test_client
    app.state.service.gate.checks.close()


def triggered(settings: Settings) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(checks as (sha, name, ref), poll command reasons) written so far."""
    engine = store.make_engine(settings.database_url)
    with store.session_scope(engine) as session:
        checks = [(c.sha, c.name, c.ref) for c in session.exec(select(CommitCheck)).all()]
        polls = [c.reason for c in session.exec(select(Command)).all() if c.kind is CommandKind.POLL]
    engine.dispose()
    return sorted(checks), polls


def github(client: TestClient, event: str, payload: object, *, delivery: str | None = None,
           signature: str | None = "good", raw: bytes | None = None) -> tuple[int, dict[str, object]]:
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
               "Content-Type": "application/json"}
    if signature == "good":
        headers["X-Hub-Signature-256"] = github_signature(SECRET, body)
    elif signature is not None:
        headers["X-Hub-Signature-256"] = signature
    response = client.post("/api/v1/webhooks/github", content=body, headers=headers)
    return response.status_code, response.json()


def pull_request(action: str, *, merged: bool = False) -> dict[str, object]:
    return {"action": action, "number": 7, "pull_request": {"number": 7, "merged": merged, "head": {"sha": SHA},
                                                            "base": {"ref": "main"}}}


def test_a_signed_github_push_to_main_asks_for_checks_and_discovery(client: TestClient, settings: Settings) -> None:
    status, body = github(client, "push", {"ref": "refs/heads/main", "before": "0" * 40, "after": SHA})
    assert status == 200, body
    assert body["action"] == "discovery and checks" and body["checks"] == ["bench", "tests"]
    checks, polls = triggered(settings)
    assert checks == [(SHA, "bench", "refs/heads/main"), (SHA, "tests", "refs/heads/main")]
    assert len(polls) == 1


def test_pull_requests_opened_run_checks_and_merged_ones_trigger_discovery(client: TestClient,
                                                                           settings: Settings) -> None:
    status, body = github(client, "pull_request", pull_request("opened"))
    assert status == 200 and body["action"] == "checks", body
    assert triggered(settings)[0] == [(SHA, "bench", "refs/pull/7/head"), (SHA, "tests", "refs/pull/7/head")]
    status, body = github(client, "pull_request", pull_request("closed", merged=True))
    assert status == 200 and body["action"] == "discovery"
    assert triggered(settings)[1] == ["pull request #7 merged"]
    status, body = github(client, "pull_request", pull_request("labeled"))
    assert status == 200 and body["action"] == "ignored: pull_request action labeled"


@pytest.mark.parametrize(("signature", "words"), [
    (None, "missing X-Hub-Signature-256"),
    ("sha256=" + "0" * 64, "does not match"),
    ("sha1=abc", "does not match"),
])
def test_a_wrong_or_missing_signature_is_refused_and_triggers_nothing(client: TestClient, settings: Settings,
                                                                     signature: str | None, words: str) -> None:
    status, body = github(client, "push", {"ref": "refs/heads/main", "after": SHA}, signature=signature)
    assert status == 401 and words in str(body["detail"])
    assert triggered(settings) == ([], [])


def test_a_body_signed_with_another_secret_is_refused(client: TestClient, settings: Settings) -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": SHA}).encode()
    status, _ = github(client, "push", None, raw=body, signature=github_signature("another-secret", body))
    assert status == 401 and triggered(settings) == ([], [])


def test_a_replayed_delivery_is_refused_and_triggers_nothing_more(client: TestClient, settings: Settings) -> None:
    payload = {"ref": "refs/heads/feature", "after": SHA}
    assert github(client, "push", payload, delivery="d-1")[0] == 200
    before = triggered(settings)
    status, body = github(client, "push", payload, delivery="d-1")
    assert status == 409 and "already received" in str(body["detail"])
    assert triggered(settings) == before


@pytest.mark.parametrize(("raw", "status", "words"), [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "not an object"),
    (json.dumps({"ref": "refs/heads/main", "after": "not-a-sha"}).encode(), 422, "is not a commit sha"),
    (json.dumps({"after": SHA}).encode(), 422, "field 'ref'"),
])
def test_malformed_bodies_are_refused_with_a_reason_and_trigger_nothing(client: TestClient, settings: Settings,
                                                                        raw: bytes, status: int, words: str) -> None:
    got, body = github(client, "push", None, raw=raw, delivery="same-id")
    assert got == status and words in str(body["detail"])
    assert triggered(settings) == ([], [])
    # A refused delivery is not remembered: once fixed, the same id is accepted.
    assert github(client, "ping", {"zen": "ok"}, delivery="same-id")[0] == 200


def test_an_oversized_body_is_refused_before_it_is_read(client: TestClient, settings: Settings) -> None:
    payload = {"ref": "refs/heads/main", "after": SHA, "padding": "x" * 5000}
    status, body = github(client, "push", payload)
    assert status == 413 and "at most 4096" in str(body["detail"])
    assert triggered(settings) == ([], [])
    with store.session_scope(store.make_engine(settings.database_url)) as session:
        assert session.exec(select(WebhookDelivery)).all() == []


def test_gitlab_token_merge_requests_and_pushes(client: TestClient, settings: Settings) -> None:
    def gitlab(event: str, payload: object, token: str | None = GITLAB_TOKEN) -> tuple[int, dict[str, object]]:
        headers = {"X-Gitlab-Event": event, "X-Gitlab-Event-UUID": str(uuid.uuid4())}
        if token is not None:
            headers["X-Gitlab-Token"] = token
        response = client.post("/api/v1/webhooks/gitlab", json=payload, headers=headers)
        return response.status_code, response.json()

    mr = {"object_kind": "merge_request", "object_attributes": {"iid": 3, "action": "open", "target_branch": "main",
                                                                "last_commit": {"id": SHA}}}
    assert gitlab("Merge Request Hook", mr, token=None)[0] == 401
    assert gitlab("Merge Request Hook", mr, token="wrong")[0] == 401
    assert triggered(settings) == ([], [])
    status, body = gitlab("Merge Request Hook", mr)
    assert status == 200 and body["action"] == "checks"
    assert triggered(settings)[0] == [(SHA, "bench", "refs/merge-requests/3/head"),
                                      (SHA, "tests", "refs/merge-requests/3/head")]
    merged = {"object_kind": "merge_request", "object_attributes": {"iid": 3, "action": "merge", "state": "merged"}}
    assert gitlab("Merge Request Hook", merged)[1]["action"] == "discovery"
    push = {"object_kind": "push", "ref": "refs/heads/main", "before": "0" * 40, "after": SHA}
    assert gitlab("Push Hook", push)[1]["action"] == "discovery and checks"


def test_a_provider_without_its_secret_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("source: {repository: central.git}\nworkdir: work\n")
    with TestClient(create_app(load_settings(config, environ={}))) as plain:
        response = plain.post("/api/v1/webhooks/github", json={}, headers={"X-GitHub-Event": "ping"})
        assert response.status_code == 403 and "webhooks.github_secret" in response.json()["detail"]
        assert plain.post("/api/v1/webhooks/bitbucket", json={}).status_code == 422
