"""FlagWatch against real HTTP servers on 127.0.0.1 serving Prometheus text whose counters advance between looks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from canary.verdict import Result
from deployer.flag_watch import FlagWatch
from deployer.guarded import Action, Ramp, decide, start
from tests.flag_support import FLAG, FlagFleet

pytestmark = pytest.mark.integration

INTERVAL_S = 10.0  # nominal: the test advances the counters itself instead of waiting


class _Server:
    """A tiny real HTTP server answering /metrics with whatever page() returns now."""

    def __init__(self, page: Callable[[], str]) -> None:
        self.status = 200
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = page().encode() if self.path == "/metrics" else b"not found"
                self.send_response(server.status if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class _Fleet:
    """Two real servers, each the /metrics of one host of a synthetic flag fleet."""

    def __init__(self, fleet: FlagFleet) -> None:
        self.fleet = fleet
        self.servers = {h: _Server(lambda h=h: fleet.exposition(h)) for h in fleet.names}
        self.urls = [s.url for s in self.servers.values()]

    def close(self) -> None:
        for s in self.servers.values():
            s.close()


@pytest.fixture
def serve() -> Iterator[Callable[[FlagFleet], _Fleet]]:
    started: list[_Fleet] = []

    def make(fleet: FlagFleet) -> _Fleet:
        started.append(_Fleet(fleet))
        return started[-1]

    try:
        yield make
    finally:
        for f in started:
            f.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=2.0) as c:
        yield c


def test_a_bad_variant_fails_and_the_evidence_is_the_judges(serve: Callable[[FlagFleet], _Fleet],
                                                            client: httpx.Client) -> None:
    hosts = serve(FlagFleet(7, hosts=2, share=0.05, err_mult=8.0))
    watch = FlagWatch(hosts.urls, client, interval_s=INTERVAL_S)
    results = [watch.look(FLAG, 0).result]  # the starting point: nothing measured yet
    assert results == [Result.INCONCLUSIVE]
    for _ in range(10):
        hosts.fleet.serve()
        v = watch.look(FLAG, 0)
        results.append(v.result)
        if v.result is Result.FAIL:
            break
    assert results[-1] is Result.FAIL and len(results) <= 6, results
    assert "sequential error test" in v.reason and "errors_sequential" in v.explanation
    assert v.on_requests > 0 and v.off_requests > 10 * v.on_requests


def test_a_good_variant_passes_or_keeps_watching(serve: Callable[[FlagFleet], _Fleet], client: httpx.Client) -> None:
    hosts = serve(FlagFleet(8, hosts=2, share=0.05))
    watch = FlagWatch(hosts.urls, client, interval_s=INTERVAL_S)
    watch.look(FLAG, 0)
    seen = []
    for _ in range(12):
        hosts.fleet.serve()
        seen.append(watch.look(FLAG, 0).result)
    assert Result.FAIL not in seen and set(seen) <= {Result.PASS, Result.CONTINUE}
    assert seen[:5] == [Result.CONTINUE] * 5  # the minimum of six intervals first
    assert seen[-1] is Result.PASS


def test_a_host_down_is_inconclusive_then_the_watch_recovers(serve: Callable[[FlagFleet], _Fleet],
                                                             client: httpx.Client) -> None:
    hosts = serve(FlagFleet(9, hosts=2, share=0.05))
    watch = FlagWatch(hosts.urls, client, interval_s=INTERVAL_S)
    watch.look(FLAG, 0)
    for _ in range(8):
        hosts.fleet.serve()
        assert watch.look(FLAG, 0).result is not Result.FAIL
    down = hosts.servers["h1"]
    down.status = 503
    hosts.fleet.serve()
    v = watch.look(FLAG, 0)
    assert v.result is Result.INCONCLUSIVE and "503" in v.reason
    down.status = 200
    for _ in range(2):  # the interval after the gap has no reading of h1 to start from
        hosts.fleet.serve()
        v = watch.look(FLAG, 0)
    assert v.result is Result.PASS and v.intervals == 11
    assert any("left out of both variants" in p for p in v.problems)


def test_a_step_change_starts_the_intervals_afresh_and_a_restart_is_counted_right(
        serve: Callable[[FlagFleet], _Fleet], client: httpx.Client) -> None:
    hosts = serve(FlagFleet(10, hosts=2, share=0.05))
    watch = FlagWatch(hosts.urls, client, interval_s=INTERVAL_S)
    watch.look(FLAG, 0)
    for _ in range(3):
        hosts.fleet.serve()
        v = watch.look(FLAG, 0)
    assert v.intervals == 3
    hosts.fleet.share = 0.25
    assert watch.look(FLAG, 1).intervals == 0  # the new step's starting point
    hosts.fleet.restart("h0", at=5000.0)
    hosts.fleet.serve()
    v = watch.look(FLAG, 1)
    # Both hosts served about 2000 requests; the restarted one counts its new counters whole, not negative.
    assert v.intervals == 1 and 3000 < v.on_requests + v.off_requests < 5000
    assert 0.15 < v.on_requests / (v.on_requests + v.off_requests) < 0.35


def test_the_ramp_driven_by_the_watch_completes_a_good_flag_and_turns_off_a_bad_one(
        serve: Callable[[FlagFleet], _Fleet], client: httpx.Client) -> None:
    ramp = Ramp(min_step_s=60, min_on_requests=300, max_step_s=600)
    for fleet, expected in ((FlagFleet(11, hosts=2), Action.COMPLETE), (FlagFleet(12, hosts=2, err_mult=10.0),
                                                                         Action.TURN_OFF)):
        hosts = serve(fleet)
        watch = FlagWatch(hosts.urls, client, interval_s=INTERVAL_S)
        decision = start(ramp, 0.0)
        fleet.share = decision.percentage / 100
        now = 0.0
        actions = []
        watch.look(FLAG, decision.state.step)
        while not decision.state.terminal and now < 3000:
            fleet.serve()
            now += INTERVAL_S
            v = watch.look(FLAG, decision.state.step)
            decision = decide(ramp, decision.state, v.result, v.on_requests, now)
            if decision.action is not Action.HOLD:
                actions.append((decision.action, decision.percentage))
                fleet.share = decision.percentage / 100
                watch.look(FLAG, decision.state.step)  # the caller's next look starts the new step
        assert actions[-1][0] is expected, actions
        if expected is Action.COMPLETE:
            assert [p for _, p in actions] == [5.0, 25.0, 100.0]
        else:
            assert actions == [(Action.TURN_OFF, 0.0)]
