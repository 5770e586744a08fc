"""The JSON API over a real database, and the post-receive hook pushing through real git to a served API."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from dashboards.app import create_app
from deployer import store
from deployer.hooks_install import install
from deployer.model import CommandKind, Deployment, Release, Role
from deployer.service import DeployService
from deployer.pipeline import Phase, Status
from deployer.settings import Settings, load_settings
from tests.gitrepo import git, make_central_repo

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    config = tmp_path / "config.yaml"
    config.write_text("source: {repository: central.git}\nworkdir: work\n")
    return load_settings(config, environ={})


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    token = app.state.service.accounts.create_token(name="ana", role=Role.RELEASE_MANAGER).secret
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as test_client:
        yield test_client


def add_deployment(settings: Settings, status: Status, phase: Phase | None) -> int:
    engine = store.make_engine(settings.database_url)
    with store.session_scope(engine) as session:
        release = Release(sha="a" * 40, commit_shas=["a" * 40])
        session.add(release)
        session.flush()
        deployment = Deployment(release_id=release.id, version="a" * 40, status=status, phase=phase)
        session.add(deployment)
        session.flush()
        assert deployment.id is not None
        return deployment.id


def test_status_when_nothing_happened_yet(client: TestClient) -> None:
    body = client.get("/api/v1/status").json()
    window = body.pop("window")
    assert body == {"hosts": [], "active": None, "releases": [], "lock": None, "leader": None}
    assert window["open"] is True and window["freezes"] == [] and window["blackouts"] == []


def test_commands_are_checked_against_the_state_machine(client: TestClient, settings: Settings) -> None:
    response = client.post("/api/v1/deployments/current/abort", json={})
    assert response.status_code == 409 and "no deployment is in progress" in response.json()["detail"]
    deployment_id = add_deployment(settings, Status.CANARY, Phase.BAKING)
    refused = client.post("/api/v1/deployments/current/resume", json={})
    assert refused.status_code == 409 and "allowed now" in refused.json()["detail"]
    accepted = client.post("/api/v1/deployments/current/promote", json={"reason": "looks fine"})
    assert accepted.status_code == 202 and accepted.json()["deployment_id"] == deployment_id
    wrong = client.post("/api/v1/deployments/current/abort", json={"deployment_id": deployment_id + 7})
    assert wrong.status_code == 409
    detail = client.get(f"/api/v1/deployments/{deployment_id}").json()
    assert any(e["kind"] == "command" and "promote requested" in e["message"] for e in detail["events"])


def test_bad_requests_get_a_reason_not_a_500(client: TestClient) -> None:
    assert client.post("/api/v1/deployments/current/explode").status_code == 422
    assert client.get("/api/v1/deployments/999").status_code == 404
    assert client.get("/api/v1/deployments/abc").status_code == 422
    assert client.post("/api/v1/lock", json={"reason": ""}).status_code == 422
    assert client.get("/api/v1/status?releases=0").status_code == 422
    assert client.delete("/api/v1/lock").status_code == 409


def test_lock_and_unlock(client: TestClient) -> None:
    assert client.post("/api/v1/lock", json={"reason": "incident 42"}).status_code == 200
    lock = client.get("/api/v1/status").json()["lock"]
    assert lock["reason"] == "incident 42" and lock["holder"] == "token:ana"
    assert client.post("/api/v1/lock", json={"reason": "x"}).status_code == 409
    assert client.delete("/api/v1/lock").json() == {"locked": False, "holder": None, "reason": None}


def test_prometheus_metrics_of_the_platform(client: TestClient, settings: Settings) -> None:
    add_deployment(settings, Status.ROLLING_OUT, Phase.DEPLOYING)
    text = client.get("/metrics").text
    assert 'deployer_deployment_in_progress{status="rolling_out"} 1.0' in text
    assert "deployer_pipeline_locked 0.0" in text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_post_receive_hook_pokes_the_controller(tmp_path: Path, settings: Settings) -> None:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        central = make_central_repo(tmp_path)
        service = DeployService.from_settings(settings)
        # Only "release" is gated here: this test is about the post-receive notification.
        install(central.bare, server=f"http://127.0.0.1:{port}", protected=["release"],
                token=service.accounts.create_token(name="hook", role=Role.RELEASE_MANAGER).secret)
        sha = central.commit("a change", {"x.txt": "1\n"})
        pushed = git(central.clone, "push", "origin", "main")  # hook output goes to stderr, git relays it
        engine = store.make_engine(settings.database_url)
        with store.session_scope(engine) as session:
            commands = store.pending_commands(session)
        assert [(c.kind, c.actor) for c in commands] == [(CommandKind.POLL, "token:hook")]
        assert sha[:12] in commands[0].reason
        assert pushed is not None
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_post_receive_hook_never_blocks_a_push(tmp_path: Path) -> None:
    central = make_central_repo(tmp_path)
    install(central.bare, server=f"http://127.0.0.1:{free_port()}")  # nobody listens
    central.commit("a change", {"x.txt": "1\n"})
    central.push()  # raises if the hook made the push fail
    assert git(central.bare, "rev-parse", "main") == git(central.clone, "rev-parse", "HEAD")
