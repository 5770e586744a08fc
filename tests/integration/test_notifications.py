"""Notifications POSTed to a real local HTTP receiver: both formats, retries with back-off, every attempt recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlmodel import select

from deployer import store
from deployer.fleet.local.procs import free_port_block
from deployer.model import NotificationDelivery
from deployer.notify import Notifier
from deployer.settings import NotificationSettings, NotificationTarget
from tests.pipeline_world import wait_until

pytestmark = pytest.mark.integration


class Receiver:
    """An HTTP server on loopback that fails the first `fail_first` requests with a 503."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict] = []
        self.fail_first = fail_first
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                outer.calls += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if outer.calls <= outer.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.bodies.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    yield r
    r.close()


def deliveries(engine) -> list[NotificationDelivery]:  # type: ignore[no-untyped-def]
    with store.session_scope(engine) as session:
        return list(session.exec(select(NotificationDelivery).order_by(NotificationDelivery.id)))


def test_release_events_are_delivered_in_both_formats_with_retries(tmp_path: Path, receiver: Receiver) -> None:
    engine = store.open_database(f"sqlite:///{tmp_path / 'd.db'}")
    dead = f"http://127.0.0.1:{free_port_block(1)}/nobody"
    settings = NotificationSettings(targets=[NotificationTarget(url=receiver.url, format="json",
                                                                events=["started", "failed"]),
                                             NotificationTarget(url=receiver.url, format="slack",
                                                                events=["failed"]),
                                             NotificationTarget(url=dead, events=["succeeded"])],
                                    retries=2, backoff=0.05, timeout=1.0)
    notifier = Notifier(engine=engine, settings=settings, poll_s=0.05)
    with store.session_scope(engine) as session:
        store.audit(session, kind="lock", message="before the notifier started: not news")
    notifier.collect()
    with store.session_scope(engine) as session:
        store.audit(session, kind="commit_discovered", message="abc")  # not a notification
        start = store.audit(session, kind="transition", message="1 commit(s)", release_id=4, deployment_id=4)
        start.event = "start"
        store.audit(session, kind="release_finished", release_id=4, deployment_id=4, message="release 4 rolled_back",
                    data={"status": "rolled_back"})
        store.audit(session, kind="release_finished", release_id=5, deployment_id=5, message="release 5 succeeded",
                    data={"status": "succeeded"})
    notifier.start()
    try:
        wait_until("every delivery to settle",
                   lambda: all(d.status != "pending" for d in deliveries(engine)) and len(deliveries(engine)) == 4, 20)
    finally:
        notifier.stop()
    rows = deliveries(engine)
    assert [(d.kind, d.format, d.status) for d in rows] == [
        ("started", "json", "delivered"), ("failed", "json", "delivered"), ("failed", "slack", "delivered"),
        ("succeeded", "json", "failed")]
    # The receiver answered its first two requests with 503: those deliveries were retried, then delivered.
    assert sum(d.attempts for d in rows[:3]) == 3 + 2 and all(d.last_error == "" for d in rows[:3])
    assert receiver.calls == 5
    assert rows[3].attempts == 3 and "ConnectError" in rows[3].last_error  # the dead receiver, retried then given up
    kinds = {b.get("event") for b in receiver.bodies if "event" in b}
    assert kinds == {"started", "failed"}
    slack = [b for b in receiver.bodies if "blocks" in b]
    assert len(slack) == 1 and slack[0]["text"].startswith(":x: release 4 failed")
    engine.dispose()


def test_a_dead_receiver_never_holds_anything_up(tmp_path: Path) -> None:
    engine = store.open_database(f"sqlite:///{tmp_path / 'd.db'}")
    settings = NotificationSettings(targets=[NotificationTarget(url=f"http://127.0.0.1:{free_port_block(1)}/x")],
                                    retries=5, backoff=30.0, timeout=0.5)
    notifier = Notifier(engine=engine, settings=settings, poll_s=0.05)
    notifier.collect()
    with store.session_scope(engine) as session:
        event = store.audit(session, kind="transition", message="go", release_id=1)
        event.event = "start"
    assert notifier.step() == 1
    row, = deliveries(engine)
    # One failed attempt, the next one is scheduled after the back-off instead of being retried in a loop.
    assert row.status == "pending" and row.attempts == 1 and notifier.send_due() == 0
    notifier.stop()
    engine.dispose()
