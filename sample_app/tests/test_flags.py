"""Feature-flag evaluation and the client's cache, refresh and fallback against a real HTTP server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sample_app.flags import Flag, FlagClient, bucket, evaluate, variants


def flag(**kwargs: object) -> Flag:
    return Flag.from_json({"key": "new-feed", "enabled": True, **kwargs})


# --- evaluation ----------------------------------------------------------------------

def test_off_is_off_for_everyone_even_the_allow_list() -> None:
    off = Flag.from_json({"key": "x", "enabled": False, "percentage": 100, "allow": ["ana"]})
    assert not evaluate(off, "ana") and not evaluate(off, "bob")


def test_unknown_flag_and_anonymous_users() -> None:
    assert not evaluate(None, "ana")
    assert not evaluate(flag(percentage=50), None), "a partial rollout needs a user to be sticky"
    assert evaluate(flag(percentage=100), None)


def test_allow_and_deny_lists_win_over_the_percentage() -> None:
    f = flag(percentage=0, allow=["ana"], deny=["bob"])
    assert evaluate(f, "ana") and not evaluate(f, "carl")
    assert not evaluate(flag(percentage=100, deny=["bob"]), "bob")


@pytest.mark.parametrize("percentage", [1, 5, 25, 50, 99])
def test_percentages_within_one_point_over_100000_users(percentage: float) -> None:
    f = flag(percentage=percentage)
    share = sum(evaluate(f, f"user-{i}") for i in range(100_000)) / 1000.0
    assert abs(share - percentage) <= 1.0


def test_flags_split_users_independently() -> None:
    a, b = Flag.from_json({"key": "a", "enabled": True, "percentage": 50}), \
        Flag.from_json({"key": "b", "enabled": True, "percentage": 50})
    both = sum(evaluate(a, f"u{i}") and evaluate(b, f"u{i}") for i in range(20_000)) / 20_000
    assert abs(both - 0.25) < 0.02, "the same users must not get every 50% flag"


@settings(max_examples=200, deadline=None)
@given(user=st.text(min_size=1, max_size=20), low=st.floats(0, 100), high=st.floats(0, 100))
def test_sticky_raising_the_percentage_only_adds_users(user: str, low: float, high: float) -> None:
    low, high = min(low, high), max(low, high)
    if evaluate(flag(percentage=low), user):
        assert evaluate(flag(percentage=high), user)
    assert evaluate(flag(percentage=low), user) == evaluate(flag(percentage=low), user)
    assert 0 <= bucket("new-feed", "", user) < 100


def test_a_new_salt_reshuffles_users() -> None:
    same = sum(evaluate(flag(percentage=50), f"u{i}") == evaluate(flag(percentage=50, salt="2"), f"u{i}")
               for i in range(10_000))
    assert 4_500 < same < 5_500


def test_bad_definitions_are_refused() -> None:
    with pytest.raises(ValueError, match="percentage 150"):
        Flag.from_json({"key": "x", "percentage": 150})


# --- the client against a real server ------------------------------------------------------

class FlagServer:
    """A real HTTP server on loopback that serves flag definitions, can be slowed and stopped."""

    def __init__(self) -> None:
        self.payload: dict[str, object] = {"revision": 1, "flags": [{"key": "a", "enabled": True, "percentage": 100}]}
        self.delay_s = 0.0
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests += 1
                time.sleep(server.delay_s)
                etag = f'"{server.payload["revision"]}"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                body = json.dumps(server.payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FlagServer]:
    s = FlagServer()
    yield s
    s.stop()


def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_fetches_and_follows_changes_in_the_background(server: FlagServer) -> None:
    changes: list[int] = []
    client = FlagClient(server.url, refresh_s=0.05, on_change=changes.append).start()
    try:
        wait_for(lambda: client.is_on("a", "ana"))
        server.payload = {"revision": 2, "flags": [{"key": "a", "enabled": False}]}
        wait_for(lambda: not client.is_on("a", "ana"))
        assert changes == [1, 2]
        before = server.requests
        wait_for(lambda: server.requests > before + 2)
        assert changes == [1, 2], "an unchanged revision (304) changes nothing"
    finally:
        client.close()


def test_platform_down_keeps_the_last_known_values(server: FlagServer) -> None:
    client = FlagClient(server.url, refresh_s=0.05, timeout_s=0.2)
    assert client.refresh() and client.is_on("a", "ana")
    server.stop()
    assert not client.refresh()
    assert client.is_on("a", "ana") and client.failures == 1


def test_a_restarted_host_serves_the_cached_values_while_the_platform_is_down(server: FlagServer,
                                                                             tmp_path: Path) -> None:
    cache = tmp_path / "flags.json"
    first = FlagClient(server.url, cache_file=cache)
    assert first.refresh()
    first.close()
    server.stop()
    restarted = FlagClient(server.url, cache_file=cache, timeout_s=0.2)
    assert restarted.is_on("a", "ana") and restarted.revision == 1
    assert not restarted.refresh() and restarted.is_on("a", "ana")


def test_a_slow_platform_never_slows_an_evaluation(server: FlagServer) -> None:
    server.delay_s = 2.0
    client = FlagClient(server.url, refresh_s=0.01, timeout_s=5).start()
    try:
        wait_for(lambda: server.requests >= 1)
        started = time.perf_counter()
        for i in range(10_000):
            client.is_on("a", f"u{i}")
        assert time.perf_counter() - started < 1.0, "evaluation must not wait for the refresh"
    finally:
        server.delay_s = 0.0
        client.close()


def test_garbage_from_the_platform_is_ignored(server: FlagServer) -> None:
    client = FlagClient(server.url)
    assert client.refresh()
    server.payload = {"revision": 3, "flags": [{"key": "a", "percentage": "lots"}]}
    assert not client.refresh() and client.is_on("a", "ana")


def test_no_platform_configured_means_every_flag_is_off() -> None:
    client = FlagClient(None).start()
    assert not client.refresh() and not client.is_on("a", "ana") and client.keys() == []
    client.close()


def test_variants_label_a_request(server: FlagServer) -> None:
    client = FlagClient(server.url)
    client.refresh()
    assert variants(client, ["a", "missing"], "ana") == {"a": True, "missing": False}
