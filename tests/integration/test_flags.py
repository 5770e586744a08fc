"""Feature flags through the real pieces: the service on SQLite and PostgreSQL, the API per role with
ETags, the page's forms, the CLI, and the sample app's own client against a served platform."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from dashboards.app import create_app
from deployer.cli import main
from deployer.exceptions import Conflict, NotFound
from deployer.model import Role
from deployer.service import BadInput, DeployService
from deployer.settings import Settings, load_settings
from sample_app.flags import FlagClient
from tests.integration.test_store_and_queue import postgres_url  # noqa: F401 - a fixture

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery"


def _settings(root: Path, database: str = "") -> Settings:
    (root / "config.yaml").write_text("source: {repository: central.git}\nworkdir: work\n" + database)
    return load_settings(root / "config.yaml", environ={})


@pytest.fixture(params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DeployService]:
    """The same rules and transactions on both databases the platform supports."""
    database = "" if request.param == "sqlite" else \
        f"database: {{url: '{request.getfixturevalue('postgres_url')}'}}\n"
    service = DeployService.from_settings(_settings(tmp_path, database))
    yield service
    service.engine.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return _settings(tmp_path)


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# --- the service -------------------------------------------------------------------------------------------

def test_every_change_is_audited_with_its_reason_and_bumps_the_revision(service: DeployService) -> None:
    assert service.flags().model_dump() == {"flags": [], "revision": 0}
    made = service.create_flag("new-feed", actor="ana", reason="behind a flag until review", percentage=5,
                               description="the new feed layout", salt="s1")
    assert (made.enabled, made.percentage, made.revision, made.created_by, made.salt) == (False, 5.0, 1, "ana", "s1")
    assert service.flags_revision() == 1
    on = service.change_flag("new-feed", actor="ben", reason="reviewed", enabled=True, allow=["qa-1", "qa-2"])
    assert (on.enabled, on.allow, on.revision, on.updated_by) == (True, ["qa-1", "qa-2"], 2, "ben")
    assert service.flags_revision() == 2
    # The same values again change nothing: no audit event, no new revision for hosts to fetch.
    same = service.change_flag("new-feed", actor="ben", reason="again", enabled=True)
    assert same.revision == 2 and service.flags_revision() == 2
    changed = service.audit(kind="flag_changed")
    assert len(changed) == 1 and changed[0].actor == "ben" and "reviewed" in changed[0].message
    assert changed[0].data["before"]["enabled"] is False and changed[0].data["after"]["enabled"] is True
    assert changed[0].data["reason"] == "reviewed" and changed[0].data["revision"] == 2
    service.create_flag("dark-mode", actor="ana", reason="experiment", enabled=True, percentage=50)
    assert [f.key for f in service.flags().flags] == ["dark-mode", "new-feed"] and service.flags_revision() == 3
    assert service.flag("dark-mode").salt != service.flag("new-feed").salt  # flags split users independently

    # A deleted flag is gone for hosts (off for everyone) and still bumps the revision.
    gone = service.delete_flag("new-feed", actor="ana", reason="shipped to everyone")
    assert gone.key == "new-feed" and service.flags_revision() == 4
    assert [f.key for f in service.flags().flags] == ["dark-mode"]
    deleted, = service.audit(kind="flag_deleted")
    assert deleted.data["before"]["allow"] == ["qa-1", "qa-2"] and deleted.data["after"] is None
    assert deleted.data["reason"] == "shipped to everyone"
    with pytest.raises(NotFound):
        service.flag("new-feed")
    with pytest.raises(NotFound):
        service.change_flag("new-feed", actor="ana", reason="x", enabled=False)
    # Created again: a fresh definition, its revisions carry on counting.
    again = service.create_flag("new-feed", actor="ana", reason="take two")
    assert (again.enabled, again.percentage, again.allow, again.revision) == (False, 0.0, [], 4)
    assert service.flags_revision() == 5
    assert [e.kind for e in service.audit(limit=5)] == ["flag_created", "flag_deleted", "flag_created",
                                                        "flag_changed", "flag_created"]


def test_refusals_name_the_field_and_write_nothing(service: DeployService) -> None:
    service.create_flag("new-feed", actor="ana", reason="start")
    before = (service.flags_revision(), len(service.audit()))
    with pytest.raises(Conflict, match="exists already"):
        service.create_flag("new-feed", actor="ana", reason="again")
    with pytest.raises(BadInput, match=r"^percentage: 150 is not within 0-100; use e.g. 5$"):
        service.change_flag("new-feed", actor="ana", reason="more", percentage=150)
    with pytest.raises(BadInput, match=r"^reason: is empty"):
        service.change_flag("new-feed", actor="ana", reason="  ", enabled=True)
    with pytest.raises(BadInput, match=r'^allow/deny: "ana" is on both lists'):
        service.change_flag("new-feed", actor="ana", reason="x", allow=["ana"], deny=["ana"])
    with pytest.raises(BadInput, match=r"^change: nothing to change"):
        service.change_flag("new-feed", actor="ana", reason="x")
    with pytest.raises(BadInput, match=r'^key: "New Feed" is not a flag key'):
        service.create_flag("New Feed", actor="ana", reason="x")
    with pytest.raises(Conflict, match="is at revision 1, not 7"):
        service.change_flag("new-feed", actor="ana", reason="x", enabled=True, expect_revision=7)
    assert (service.flags_revision(), len(service.audit())) == before
    assert service.change_flag("new-feed", actor="ana", reason="x", enabled=True, expect_revision=1).revision == 2


def test_concurrent_changes_each_get_their_own_revision(service: DeployService) -> None:
    service.create_flag("busy", actor="ana", reason="start")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(5):
                service.change_flag("busy", actor=f"w{n}", reason="load", description=f"{n}-{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    # No change lost and no revision handed out twice.
    assert service.flag("busy").revision == 21 and service.flags_revision() == 21
    revisions = [e.data["revision"] for e in service.audit(kind="flag_changed", limit=100)]
    assert sorted(revisions) == list(range(2, 22))


# --- the API ----------------------------------------------------------------------------------------------

@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[object, dict[Role, TestClient]]]:
    app = create_app(settings)
    service: DeployService = app.state.service
    tokens = {role: service.accounts.create_token(name=role.value, role=role).secret for role in Role}
    clients = {role: TestClient(app, headers={"Authorization": f"Bearer {tokens[role]}"}) for role in Role}
    yield app, clients
    service.engine.dispose()


def test_the_api_per_role(api: tuple[object, dict[Role, TestClient]]) -> None:
    app, clients = api
    viewer, manager, admin = clients[Role.VIEWER], clients[Role.RELEASE_MANAGER], clients[Role.ADMIN]
    anonymous = TestClient(app)
    for method, path in (("GET", "/api/v1/flags"), ("GET", "/api/v1/flags/x"), ("POST", "/api/v1/flags"),
                         ("PATCH", "/api/v1/flags/x"), ("DELETE", "/api/v1/flags/x?reason=y")):
        response = anonymous.request(method, path, json={"key": "x", "reason": "y"})
        assert response.status_code == 401 and "not authenticated" in response.json()["detail"]

    body = {"key": "new-feed", "percentage": 5, "reason": "behind a flag", "description": "new layout"}
    refused = viewer.post("/api/v1/flags", json=body)
    assert refused.status_code == 403 and "release_manager" in refused.json()["detail"]
    created = manager.post("/api/v1/flags", json=body)
    assert created.status_code == 201 and created.json()["updated_by"] == "token:release_manager"
    assert manager.post("/api/v1/flags", json=body).status_code == 409
    assert viewer.get("/api/v1/flags/new-feed").json()["description"] == "new layout"
    assert viewer.patch("/api/v1/flags/new-feed", json={"enabled": True, "reason": "x"}).status_code == 403
    assert viewer.delete("/api/v1/flags/new-feed?reason=x").status_code == 403

    on = admin.patch("/api/v1/flags/new-feed", json={"enabled": True, "allow": ["ana"], "reason": "go"})
    assert on.status_code == 200 and on.json()["enabled"] and on.json()["updated_by"] == "token:admin"
    bad = manager.patch("/api/v1/flags/new-feed", json={"percentage": 150, "reason": "more"})
    assert bad.status_code == 422 and bad.json()["detail"] == "percentage: 150 is not within 0-100; use e.g. 5"
    assert manager.patch("/api/v1/flags/new-feed", json={"enabled": False, "reason": "x",
                                                         "actor": "mallory"}).status_code == 422
    assert manager.patch("/api/v1/flags/new-feed", json={"enabled": False}).status_code == 422  # no reason
    stale = manager.patch("/api/v1/flags/new-feed", json={"enabled": False, "reason": "x", "revision": 1})
    assert stale.status_code == 409 and "revision 2, not 1" in stale.json()["detail"]
    assert manager.patch("/api/v1/flags/nope", json={"enabled": True, "reason": "x"}).status_code == 404
    assert viewer.get("/api/v1/flags/Not_A-Key!").status_code == 422
    created_bad = manager.post("/api/v1/flags", json={"key": "New Feed", "reason": "x"})
    assert created_bad.status_code == 422 and 'use e.g. "new-feed"' in created_bad.json()["detail"]

    no_reason = manager.delete("/api/v1/flags/new-feed")
    assert no_reason.status_code == 422 and no_reason.json()["detail"].startswith("reason: is empty")
    deleted = admin.delete("/api/v1/flags/new-feed?reason=shipped")
    assert deleted.status_code == 200 and deleted.json()["key"] == "new-feed"
    assert viewer.get("/api/v1/flags/new-feed").status_code == 404
    assert [e["kind"] for e in viewer.get("/api/v1/audit?limit=3").json()] == ["flag_deleted", "flag_changed",
                                                                              "flag_created"]


def test_etags_answer_304_until_something_changes(api: tuple[object, dict[Role, TestClient]]) -> None:
    _, clients = api
    viewer, manager = clients[Role.VIEWER], clients[Role.RELEASE_MANAGER]
    manager.post("/api/v1/flags", json={"key": "new-feed", "enabled": True, "percentage": 5, "allow": ["ana"],
                                        "deny": ["bob"], "salt": "s", "reason": "start"})
    first = viewer.get("/api/v1/flags")
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag == '"flags-1"' and first.json()["revision"] == 1
    # The client's exact shape, plus the platform's own fields.
    flag, = first.json()["flags"]
    assert {k: flag[k] for k in ("key", "enabled", "percentage", "allow", "deny", "salt")} == \
        {"key": "new-feed", "enabled": True, "percentage": 5.0, "allow": ["ana"], "deny": ["bob"], "salt": "s"}
    assert flag["updated_by"] == "token:release_manager" and flag["revision"] == 1
    for header in (etag, f"W/{etag}", f'"flags-0", {etag}', "*"):
        same = viewer.get("/api/v1/flags", headers={"If-None-Match": header})
        assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == etag
    assert viewer.get("/api/v1/flags", headers={"If-None-Match": '"flags-0"'}).status_code == 200
    manager.patch("/api/v1/flags/new-feed", json={"percentage": 10, "reason": "more"})
    after = viewer.get("/api/v1/flags", headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["etag"] == '"flags-2"'
    manager.delete("/api/v1/flags/new-feed?reason=done")
    gone = viewer.get("/api/v1/flags", headers={"If-None-Match": after.headers["etag"]})
    assert gone.status_code == 200 and gone.json() == {"flags": [], "revision": 3}


# --- the page -----------------------------------------------------------------------------------------------

def signed_in(app: object, service: DeployService, name: str, role: Role) -> tuple[TestClient, str]:
    service.accounts.add_user(name=name, role=role, password=PASSWORD)
    client = TestClient(app)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/signin").text).group(1)
    done = client.post("/signin", data={"name": name, "password": PASSWORD, "csrf_token": csrf},
                       follow_redirects=False)
    assert done.status_code == 303
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get("/flags").text).group(1)
    return client, csrf


def test_the_flags_page_acts_for_release_managers_only(api: tuple[object, dict[Role, TestClient]]) -> None:
    app, _ = api
    service: DeployService = app.state.service  # type: ignore[attr-defined]
    manager, csrf = signed_in(app, service, "ana", Role.RELEASE_MANAGER)

    def act(client: TestClient, action: str, token: str, **form: str) -> object:
        return client.post(f"/flags/actions/{action}", data={"csrf_token": token, "next": "/flags", **form},
                           follow_redirects=False)

    done = act(manager, "create", csrf, key="new-feed", description="new layout", percentage="5", reason="start")
    assert done.status_code == 303 and "x-action-refused" not in done.headers
    page = manager.get("/flags").text
    assert "flag new-feed created" in page and 'data-key="new-feed" data-enabled="off"' in page
    assert "new layout" in page and "/flags/actions/on" in page
    assert act(manager, "on", csrf, key="new-feed", reason="go").headers.get("x-action-refused") is None
    assert act(manager, "percentage", csrf, key="new-feed", percentage="25", reason="more").status_code == 303
    assert (service.flag("new-feed").enabled, service.flag("new-feed").percentage) == (True, 25.0)
    refused = act(manager, "percentage", csrf, key="new-feed", percentage="250", reason="too much")
    assert refused.headers["x-action-refused"] == "422"
    assert "percentage: 250 is not within 0-100" in manager.get("/flags").text
    assert act(manager, "on", csrf, key="new-feed", reason="").headers["x-action-refused"] == "422"
    assert act(manager, "percentage", "wrong", key="new-feed", percentage="1", reason="x").status_code == 403

    viewer, viewer_csrf = signed_in(app, service, "vic", Role.VIEWER)
    page = viewer.get("/flags")
    assert page.status_code == 200 and 'data-key="new-feed" data-enabled="on"' in page.text
    assert "Flags</a>" in page.text and 'id="readonly"' in page.text
    for action in ("off", "delete"):
        no = act(viewer, action, viewer_csrf, key="new-feed", reason="try")
        assert no.status_code == 303 and no.headers["x-action-refused"] == "403"
    assert "may not steer releases" in viewer.get("/flags").text
    assert service.flag("new-feed").enabled

    assert act(manager, "delete", csrf, key="new-feed", reason="shipped").status_code == 303
    assert "no flags yet" in manager.get("/flags").text
    flag_events = [(e.kind, e.actor) for e in service.audit(limit=20) if e.kind.startswith("flag_")]
    assert flag_events == [("flag_deleted", "ana"), ("flag_changed", "ana"), ("flag_changed", "ana"),
                           ("flag_created", "ana")], "refused actions write nothing"


# --- the command line ---------------------------------------------------------------------------------------

def test_the_cli(settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(tmp_path / "config.yaml")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["-c", config, "flags", *args])
        out, err = capsys.readouterr()
        return code, out, err

    assert run("list")[1].strip() == "0 flag(s), revision 0"
    code, out, _ = run("create", "new-feed", "--percentage", "5", "--description", "new layout", "--reason", "start",
                       "--actor", "cli")
    assert code == 0 and "new-feed" in out and "off" in out and "5%" in out
    code, _, err = run("create", "new-feed", "--reason", "again")
    assert code == 2 and "exists already" in err and "Traceback" not in err
    code, out, _ = run("set", "new-feed", "--on", "--allow", "ana,bob", "--deny", "eve", "--reason", "go",
                       "--actor", "cli")
    assert code == 0 and " on " in out and "allow 2" in out and "deny 1" in out
    code, _, err = run("set", "new-feed", "--percentage", "150", "--reason", "more")
    assert code == 2 and err.strip() == "deployer: --percentage: 150 is not within 0-100; use e.g. 5"
    code, _, err = run("set", "new-feed", "--percentage", "lots", "--reason", "more")
    assert code == 2 and '"lots" is not a number' in err
    code, _, err = run("create", "Bad Key", "--reason", "x")
    assert code == 2 and 'use e.g. "bad-key"' in err
    code, out, _ = run("show", "new-feed")
    assert code == 0 and "allow: ana, bob" in out and "deny: eve" in out and "description: new layout" in out
    code, out, _ = run("set", "new-feed", "--allow", "", "--reason", "empty the list")
    assert code == 0 and "allow 0" in out
    assert "1 flag(s), revision 3" in run("list")[1]
    code, out, _ = run("delete", "new-feed", "--reason", "shipped", "--actor", "cli")
    assert code == 0 and "deleted" in out
    code, _, err = run("show", "new-feed")
    assert code == 2 and "no flag 'new-feed'" in err
    service = DeployService.from_settings(settings)
    try:
        kinds = [(e.kind, e.actor) for e in service.audit(limit=4)]
        assert kinds[0] == ("flag_deleted", "cli") and ("flag_changed", "cli") in kinds
    finally:
        service.engine.dispose()


# --- the app's client against a served platform -------------------------------------------------------------

@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[str, DeployService]]:
    """`deployer serve`'s app under uvicorn on a loopback port, in a thread."""
    app = create_app(settings)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        wait_for("the server to start", lambda: server.started)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", app.state.service
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
        app.state.service.engine.dispose()


def test_the_apps_client_follows_changes_made_on_the_platform(served: tuple[str, DeployService],
                                                               tmp_path: Path) -> None:
    url, service = served
    token = service.accounts.create_token(name="app-hosts", role=Role.VIEWER).secret
    service.create_flag("new-feed", actor="ana", reason="start", percentage=100)
    changes: list[int] = []
    client = FlagClient(url, token=token, refresh_s=0.05, cache_file=tmp_path / "flags.json",
                        on_change=changes.append).start()
    try:
        wait_for("the first fetch", lambda: client.revision == 1)
        assert client.keys() == ["new-feed"] and not client.is_on("new-feed", "ana")  # created off
        service.change_flag("new-feed", actor="ana", reason="go", enabled=True, deny=["bob"])
        wait_for("the change to reach the client", lambda: client.is_on("new-feed", "ana"))
        assert not client.is_on("new-feed", "bob") and client.revision == service.flags_revision() == 2
        service.change_flag("new-feed", actor="ana", reason="half", percentage=50)
        wait_for("the percentage", lambda: client.flag("new-feed") is not None
                 and client.flag("new-feed").percentage == 50.0)  # type: ignore[union-attr]
        share = sum(client.is_on("new-feed", f"user-{i}") for i in range(10_000)) / 100
        assert 45 <= share <= 55
        # Unchanged definitions: the client's If-None-Match gets 304s and nothing changes.
        seen = list(changes)
        assert client.refresh() and client.refresh() and changes == seen
        service.delete_flag("new-feed", actor="ana", reason="shipped")
        wait_for("the deletion", lambda: client.keys() == [])
        assert not client.is_on("new-feed", "ana") and changes == [1, 2, 3, 4]
    finally:
        client.close()
    # An unauthenticated host gets nothing and keeps what it had (here: the cache file).
    stranger = FlagClient(url, cache_file=tmp_path / "flags.json")
    try:
        assert not stranger.refresh() and stranger.failures == 1 and stranger.revision == 4
    finally:
        stranger.close()
