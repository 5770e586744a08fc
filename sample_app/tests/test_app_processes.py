"""Three real app processes on one SQLite file, started and stopped the way a fleet does."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import PNG_1X1

PACKAGE_DIR = Path(__file__).resolve().parent.parent
REVISION = "feedface" * 5
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


@dataclass
class Host:
    """One started app process."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        """Return the base URL of the host."""
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(http: httpx.Client, host: Host, deadline: float) -> None:
    """Poll /healthz until it answers 200, the process dies, or the deadline passes."""
    while time.monotonic() < deadline:
        if host.process.poll() is not None:
            raise AssertionError(f"host on {host.port} exited early:\n{host.log.read_text()}")
        try:
            if http.get(f"{host.url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"host on {host.port} not healthy in {START_TIMEOUT}s:\n{host.log.read_text()}")


@pytest.fixture
def release_dir(tmp_path: Path) -> Path:
    """Return a release directory: a copy of the package plus a REVISION file."""
    release = tmp_path / "release"
    shutil.copytree(PACKAGE_DIR, release / "sample_app", ignore=shutil.ignore_patterns("__pycache__", "tests"))
    (release / "REVISION").write_text(REVISION + "\n")
    return release


@pytest.fixture
def hosts(release_dir: Path, tmp_path: Path) -> Iterator[list[Host]]:
    """Start three hosts on one new SQLite file at the same moment; kill whatever is left at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMPLE_APP_")}
    env["SAMPLE_APP_DATABASE_URL"] = f"sqlite:///{tmp_path / 'shared.db'}"
    started: list[Host] = []
    try:
        for index in range(3):
            port = free_port()
            log = tmp_path / f"host{index}.log"
            with log.open("wb") as log_file:
                process = subprocess.Popen(
                    [sys.executable, "-m", "sample_app", "--host", "127.0.0.1", "--port", str(port)],
                    cwd=release_dir,
                    env=env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, so cleanup reaches everything
                )
            started.append(Host(port, process, log))
        yield started
    finally:
        for host in started:
            if host.process.poll() is None:
                os.killpg(host.process.pid, signal.SIGKILL)
            host.process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """Return an HTTP client that ignores proxy settings: every request here is to 127.0.0.1."""
    with httpx.Client(trust_env=False, timeout=10.0) as client:
        yield client


@pytest.mark.integration
def test_three_hosts_share_one_database_and_stop_cleanly(hosts: list[Host], http: httpx.Client) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    for host in hosts:
        wait_until_healthy(http, host, deadline)

    versions = [http.get(f"{host.url}/version").json() for host in hosts]
    assert {v["version"] for v in versions} == {REVISION}
    assert len({v["pid"] for v in versions}) == 3

    first, second, third = hosts
    created = http.post(f"{first.url}/api/users", json={"username": "procs"})
    assert created.status_code == 201
    follow = http.post(f"{second.url}/api/users/procs/follow", json={"follower": "alice"})
    assert follow.status_code == 200
    posted = http.post(
        f"{second.url}/api/posts",
        data={"author": "procs", "caption": "across hosts"},
        files={"image": ("p.png", PNG_1X1, "image/png")},
    )
    assert posted.status_code == 201
    post_id = posted.json()["id"]
    feed = http.get(f"{third.url}/api/feed", params={"user": "alice"}).json()
    assert post_id in [p["id"] for p in feed["posts"]]
    assert http.get(f"{first.url}/api/posts/{post_id}/image").content == PNG_1X1
    feed_requests = [
        sample.value
        for family in text_string_to_metric_families(http.get(f"{third.url}/metrics").text)
        for sample in family.samples
        if sample.name == "http_requests_total"
        and sample.labels == {"route": "/api/feed", "method": "GET", "status": "200"}
    ]
    assert feed_requests == [1.0]

    for host in hosts:
        host.process.send_signal(signal.SIGTERM)
    for host in hosts:
        assert host.process.wait(timeout=STOP_TIMEOUT) == 0, host.log.read_text()
        assert "Application shutdown complete" in host.log.read_text()
