"""`deployer status` says who leads, and when the leader has gone quiet."""

from __future__ import annotations

from typing import Any

from deployer.status_view import render_status
from deployer.views import StatusView


def status(leader: dict[str, Any] | None) -> StatusView:
    return StatusView.model_validate({"hosts": [], "active": None, "releases": [], "lock": None, "leader": leader})


def test_the_leader_is_shown_with_host_pid_and_since() -> None:
    text = render_status(status({"holder": "box:42", "host": "box", "pid": 42, "since": "2026-01-01T00:00:00+00:00",
                                 "heartbeat_at": "2026-01-01T00:00:05+00:00", "heartbeat_age_s": 1.5}))
    assert "LEADER box pid 42 since 2026-01-01T00:00:00Z" in text
    assert "no heartbeat" not in text


def test_a_quiet_leader_and_no_leader_are_said_plainly() -> None:
    quiet = render_status(status({"holder": "box:42", "host": "box", "pid": 42, "since": "2026-01-01T00:00:00+00:00",
                                  "heartbeat_at": "2026-01-01T00:00:05+00:00",
                                  "heartbeat_age_s": 31.0}))
    assert "(no heartbeat for 31s)" in quiet
    assert "LEADER none yet" in render_status(status(None))
