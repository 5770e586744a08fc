"""The balancer in-process: proxying, retries, drain, admin API; upstreams are a mock transport."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from deployer.fleet.local.balancer_app import Balancer, BalancerConfig

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class FakeHosts:
    """Upstreams h1.test, h2.test, ... whose behaviour each test sets."""

    down: set[str] = field(default_factory=set)  # connection refused
    unhealthy: set[str] = field(default_factory=set)  # /healthz answers 503
    reset_after_send: set[str] = field(default_factory=set)  # dies after reading the request
    gate: asyncio.Event | None = None  # app requests wait for it
    health_gate: asyncio.Event | None = None  # health checks wait for it
    seen: list[httpx.Request] = field(default_factory=list)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host.removesuffix(".test")
        if request.url.path == "/healthz" and self.health_gate is not None:
            await self.health_gate.wait()
        if host in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/healthz":
            return httpx.Response(503 if host in self.unhealthy else 200)
        self.seen.append(request)
        if host in self.reset_after_send:
            raise httpx.RemoteProtocolError("server disconnected without a response", request=request)
        if self.gate is not None:
            await self.gate.wait()
        body = json.dumps({"host": host, "path": request.url.path}).encode()
        headers = [("content-type", "application/json"), ("set-cookie", "a=1"), ("set-cookie", "b=2")]
        headers += [("connection", "close"), ("content-length", str(len(body)))]
        # A stream, like a real transport gives: the balancer forwards the raw bytes.
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(body))


@dataclass
class Rig:
    balancer: Balancer
    fake: FakeHosts
    client: httpx.AsyncClient


async def make_rig(names: tuple[str, ...] = ("h1", "h2", "h3"), **config: Any) -> tuple[Balancer, FakeHosts]:
    fake = FakeHosts()
    # No background checks: each test decides when a check happens.
    cfg = BalancerConfig(health_interval=3600, **config)
    balancer = Balancer(
        {n: f"http://{n}.test" for n in names}, cfg, transport=httpx.MockTransport(fake.handle)
    )
    await balancer.start()
    return balancer, fake


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    balancer, fake = await make_rig()
    transport = httpx.ASGITransport(app=balancer.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://lb.test") as client:
        yield Rig(balancer, fake, client)
    await balancer.stop()


async def test_round_robin_and_upstream_header(rig: Rig) -> None:
    answers = [await rig.client.get("/x") for _ in range(30)]
    assert all(r.status_code == 200 for r in answers)
    assert Counter(r.headers["x-upstream"] for r in answers) == {"h1": 10, "h2": 10, "h3": 10}
    assert all(r.json()["host"] == r.headers["x-upstream"] for r in answers)


async def test_proxies_method_path_query_headers_and_body(rig: Rig) -> None:
    resp = await rig.client.post(
        "/api/p%20q/x?b=2&a=1",
        content=b"payload",
        headers={"x-custom": "yes", "connection": "keep-alive, x-hop", "x-hop": "no", "te": "trailers"},
    )
    assert resp.status_code == 200 and "x-balancer-error" not in resp.headers
    sent = rig.fake.seen[-1]
    assert sent.method == "POST" and sent.url.raw_path == b"/api/p%20q/x?b=2&a=1"
    assert sent.content == b"payload" and sent.headers["content-length"] == "7"
    assert sent.headers["x-custom"] == "yes" and sent.headers["host"] == "lb.test"
    assert "x-hop" not in sent.headers and "te" not in sent.headers and "connection" not in sent.headers
    assert sent.headers["x-forwarded-for"] == "127.0.0.1"
    # The app's repeated headers survive; its hop-by-hop ones do not.
    assert resp.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert "connection" not in resp.headers or resp.headers["connection"] != "close"


async def test_get_sends_no_invented_body_headers(rig: Rig) -> None:
    await rig.client.get("/x", headers={"accept-encoding": "identity"})
    sent = rig.fake.seen[-1]
    assert sent.content == b"" and "content-length" not in sent.headers
    assert sent.headers["accept-encoding"] == "identity"


async def test_connect_failure_is_retried_elsewhere_even_for_post(rig: Rig) -> None:
    rig.fake.down.add("h1")
    answers = [await rig.client.post("/api/things", json={"n": i}) for i in range(6)]
    assert [r.status_code for r in answers] == [200] * 6
    assert "h1" not in {r.headers["x-upstream"] for r in answers}
    h1 = rig.balancer.pool.get("h1")
    assert h1 is not None and h1.errors == 1 and not h1.healthy
    assert len(rig.fake.seen) == 6  # each request reached an app exactly once


async def test_failure_after_send_is_not_retried_for_post(rig: Rig) -> None:
    rig.fake.reset_after_send.add("h1")
    resp = await rig.client.post("/api/things", content=b"x")
    assert resp.status_code == 502 and "h1" in resp.headers["x-balancer-error"]
    assert len(rig.fake.seen) == 1


async def test_failure_after_send_is_retried_for_get(rig: Rig) -> None:
    rig.fake.reset_after_send.add("h1")
    resp = await rig.client.get("/feed")
    assert resp.status_code == 200 and resp.headers["x-upstream"] == "h2"
    assert len(rig.fake.seen) == 2


async def test_all_hosts_refusing_gives_503_with_reason(rig: Rig) -> None:
    rig.fake.down.update({"h1", "h2", "h3"})
    resp = await rig.client.get("/x")
    assert resp.status_code == 503
    assert "connection refused" in resp.headers["x-balancer-error"]
    again = await rig.client.get("/x")
    assert again.status_code == 503 and again.headers["x-balancer-error"] == "no host in rotation"


async def test_drain_waits_for_in_flight_request(rig: Rig) -> None:
    rig.fake.gate = asyncio.Event()
    slow = asyncio.create_task(rig.client.get("/slow"))
    while not rig.fake.seen:
        await asyncio.sleep(0.001)
    name = next(u.name for u in rig.balancer.pool.all() if u.in_flight)
    drain = asyncio.create_task(rig.client.post(f"/_balancer/hosts/{name}/drain", params={"timeout": 5}))
    await asyncio.sleep(0.05)
    assert not drain.done()
    # Meanwhile new requests avoid the draining host.
    rig.fake.gate.set()
    others = [await rig.client.get("/x") for _ in range(4)]
    assert name not in {r.headers["x-upstream"] for r in others}
    body = (await drain).json()
    assert body["drained"] is True and body["in_flight"] == 0 and body["enabled"] is False
    assert (await slow).status_code == 200


async def test_drain_timeout_reports_what_is_left(rig: Rig) -> None:
    rig.fake.gate = asyncio.Event()
    slow = asyncio.create_task(rig.client.get("/slow"))
    while not rig.fake.seen:
        await asyncio.sleep(0.001)
    name = next(u.name for u in rig.balancer.pool.all() if u.in_flight)
    body = (await rig.client.post(f"/_balancer/hosts/{name}/drain", params={"timeout": 0.05})).json()
    assert body["drained"] is False and body["in_flight"] == 1
    rig.fake.gate.set()
    await slow


async def test_enable_waits_for_a_passing_health_check(rig: Rig) -> None:
    await rig.client.post("/_balancer/hosts/h1/drain", params={"timeout": 0})
    rig.fake.unhealthy.add("h1")
    body = (await rig.client.post("/_balancer/hosts/h1/enable")).json()
    assert body["enabled"] is True and body["in_rotation"] is False
    assert "h1" not in {(await rig.client.get("/x")).headers["x-upstream"] for _ in range(4)}
    rig.fake.unhealthy.clear()
    body = (await rig.client.post("/_balancer/hosts/h1/enable")).json()
    assert body["in_rotation"] is True


async def test_put_adds_and_readdresses_hosts(rig: Rig) -> None:
    rig.fake.down.add("h9")
    body = (await rig.client.put("/_balancer/hosts/h4", json={"address": "http://h9.test"})).json()
    assert body["changed"] is True and body["in_rotation"] is False
    body = (await rig.client.put("/_balancer/hosts/h4", json={"address": "http://h4.test"})).json()
    assert body["changed"] is True and body["in_rotation"] is True
    body = (await rig.client.put("/_balancer/hosts/h4", json={"address": "http://h4.test"})).json()
    assert body["changed"] is False
    hosts = (await rig.client.get("/_balancer/hosts")).json()["hosts"]
    assert [h["name"] for h in hosts] == ["h1", "h2", "h3", "h4"]
    assert {"enabled", "healthy", "in_flight", "served", "errors"} <= set(hosts[0])


async def test_stale_health_check_does_not_override_admin_change(rig: Rig) -> None:
    h1 = rig.balancer.pool.get("h1")
    assert h1 is not None
    rig.fake.health_gate = asyncio.Event()
    rig.fake.down.add("h1")
    check = asyncio.create_task(rig.balancer.check(h1))
    await asyncio.sleep(0.01)  # the check is now waiting for its answer
    h1.generation += 1  # an admin action happened while the check ran
    rig.fake.health_gate.set()
    assert await check is False
    assert h1.healthy  # the stale "refused" result was dropped


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/_balancer/hosts/nope", 404),
        ("POST", "/_balancer/hosts/nope/drain", 404),
        ("POST", "/_balancer/hosts/nope/enable", 404),
        ("DELETE", "/_balancer/hosts/nope", 404),
        ("GET", "/_balancer/whatever", 404),
        ("POST", "/_balancer/hosts/h1/drain?timeout=abc", 400),
        ("POST", "/_balancer/hosts/h1/drain?timeout=-1", 400),
        ("PUT", "/_balancer/hosts/h1", 400),
        ("TRACE", "/anything", 405),
    ],
)
async def test_balancer_errors_carry_the_header(rig: Rig, method: str, path: str, status: int) -> None:
    resp = await rig.client.request(method, path)
    assert resp.status_code == status
    assert resp.headers["x-balancer-error"]
    assert not rig.fake.seen  # nothing under /_balancer/ is ever proxied


async def test_unknown_host_error_names_the_host(rig: Rig) -> None:
    resp = await rig.client.post("/_balancer/hosts/nope/drain")
    assert "nope" in resp.headers["x-balancer-error"] and "h1" in resp.json()["error"]


async def test_remove_host() -> None:
    balancer, _ = await make_rig(("h1", "h2"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=balancer.app()), base_url="http://lb"
    ) as client:
        assert (await client.delete("/_balancer/hosts/h1")).json()["removed"] is True
        assert {(await client.get("/x")).headers["x-upstream"] for _ in range(4)} == {"h2"}
    await balancer.stop()


async def test_request_may_wait_for_a_host_to_enter_rotation() -> None:
    balancer, fake = await make_rig(("h1",), wait_for_host_s=5.0)
    fake.unhealthy.add("h1")
    h1 = balancer.pool.get("h1")
    assert h1 is not None
    balancer.pool.set_healthy(h1, False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=balancer.app()), base_url="http://lb"
    ) as client:
        pending = asyncio.create_task(client.get("/x"))
        await asyncio.sleep(0.05)
        assert not pending.done()
        fake.unhealthy.clear()
        await balancer.check(h1)
        assert (await pending).status_code == 200
    await balancer.stop()
