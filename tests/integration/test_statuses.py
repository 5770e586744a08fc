"""Commit statuses out in GitHub's format, to a real local HTTP receiver: retries, no repeats, the check chain."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from deployer import store
from deployer.checks import CheckService
from deployer.model import CheckState, Commit, CommitStatus
from deployer.settings import load_settings
from deployer.statuses import StatusPoster, check_status, post_if_changed, sync_deploy_statuses
from tests.gate_support import CHECK_SCRIPT, wait_until
from tests.gitrepo import make_central_repo

pytestmark = pytest.mark.integration
SHA = "ab" * 20


@dataclass
class Receiver:
    """An HTTP server that records every status and answers the scripted codes first (then 201)."""

    codes: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            code = state.codes.pop(0) if state.codes else 201
            state.received.append({"path": self.path, "body": body, "code": code,
                                   "auth": self.headers.get("Authorization")})
            payload = json.dumps({"ok": code < 300}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def poster(receiver: Receiver, **kw: Any) -> StatusPoster:
    return StatusPoster(url=receiver.url, repo="acme/snapgram", token="ghp_test", backoff_s=0.01, **kw)


def test_a_status_in_githubs_format_is_retried_through_server_errors(receiver: Receiver) -> None:
    receiver.codes = [502, 503, 429]
    status = check_status(sha=SHA, name="bench", state=CheckState.FAILURE,
                          detail="route feed: CPU per request +31.0% (...)", dashboard_url="http://dash")
    assert poster(receiver, retries=4).post(status)
    assert [r["code"] for r in receiver.received] == [502, 503, 429, 201]
    last = receiver.received[-1]
    assert last["path"] == f"/repos/acme/snapgram/statuses/{SHA}" and last["auth"] == "Bearer ghp_test"
    assert last["body"] == {"state": "failure", "context": "deployer/bench",
                            "description": "route feed: CPU per request +31.0% (...)",
                            "target_url": f"http://dash/checks/{SHA}"}


def test_a_client_error_is_not_retried_and_retries_end(receiver: Receiver) -> None:
    receiver.codes = [422]
    status = check_status(sha=SHA, name="tests", state=CheckState.SUCCESS, detail="ok", dashboard_url="")
    assert not poster(receiver).post(status)
    assert len(receiver.received) == 1
    receiver.codes = [500, 500, 500]
    assert not poster(receiver, retries=2).post(status)
    assert len(receiver.received) == 4


def test_a_receiver_that_is_down_is_survived() -> None:
    dead = StatusPoster(url="http://127.0.0.1:9", repo="a/b", retries=1, backoff_s=0.01, timeout_s=0.5)
    assert not dead.post(check_status(sha=SHA, name="tests", state=CheckState.QUEUED, detail="", dashboard_url=""))


def test_checks_and_deploy_states_are_sent_once_per_change(tmp_path: Path, receiver: Receiver) -> None:
    central = make_central_repo(tmp_path)
    sha = central.commit("first", {"check.py": CHECK_SCRIPT, "app.txt": "fine\n"})
    central.push()
    config = tmp_path / "config.yaml"
    config.write_text(f"source: {{repository: {central.bare}}}\nworkdir: work\n"
                      "pipeline: {test_command: python check.py}\ngate: {required_checks: [tests]}\n"
                      f"statuses: {{url: '{receiver.url}', repo: acme/snapgram, backoff: 10ms}}\n")
    settings = load_settings(config, environ={})
    engine = store.open_database(settings.database_url)
    checks = CheckService(engine, settings)
    try:
        checks.request(sha, ref="refs/heads/main", actor="test")
        wait_until(lambda: len(receiver.received) >= 2, timeout=120, what="two statuses")
    finally:
        checks.close()
    assert [(r["body"]["context"], r["body"]["state"]) for r in receiver.received] == [
        ("deployer/tests", "pending"), ("deployer/tests", "success")]
    assert post_if_changed(engine, poster(receiver), check_status(
        sha=sha, name="tests", state=CheckState.SUCCESS, detail=receiver.received[-1]["body"]["description"],
        dashboard_url=settings.dashboard_url)) is False  # the same state again is not sent
    with store.session_scope(engine) as session:
        store.add_commits(session, commits=[Commit(sha=sha, position=1, status=CommitStatus.SHIPPED)])
    assert sync_deploy_statuses(engine, poster(receiver), dashboard_url="http://dash") == 1
    assert receiver.received[-1]["body"]["state"] == "success"
    assert receiver.received[-1]["body"]["description"] == "in production"
    assert sync_deploy_statuses(engine, poster(receiver), dashboard_url="http://dash") == 0
    engine.dispose()
