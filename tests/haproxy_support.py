"""A real HAProxy 2.6 for tests: config written to a temporary folder, `haproxy -f CFG -db`, always stopped."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.fleet_support import free_port_block

CONFIG = """\
global
    stats socket {socket} mode 600 level admin
    maxconn 512

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # A host busy starting its neighbours (2 shared cores) may answer a check slowly: slow is not dead.
    timeout check 2s
    # A connection refused by a host that just went away is retried on another one.
    option redispatch
    retries 3

frontend web
    bind 127.0.0.1:{port}
    default_backend {backend}

backend {backend}
    balance roundrobin
    option httpchk GET /healthz
    default-server check inter 300ms fall 3 rise 2
{servers}
"""


@dataclass(frozen=True)
class Haproxy:
    """A running HAProxy: where users go, and its admin socket."""

    url: str
    socket: Path
    backend: str
    config: Path
    pid: int


def require_haproxy() -> str:
    """The haproxy binary; a missing one fails the test (scripts/ensure-services.sh installs it)."""
    binary = shutil.which("haproxy")
    if binary is None:
        raise AssertionError("haproxy is not installed; run scripts/ensure-services.sh (apt-get install haproxy)")
    return binary


@contextmanager
def running_haproxy(root: Path, servers: dict[str, str], *, backend: str = "app") -> Iterator[Haproxy]:
    """Start HAProxy in front of `servers` (name -> 127.0.0.1:PORT); stop it at the end, even on failure."""
    binary = require_haproxy()
    root.mkdir(parents=True, exist_ok=True)
    port = free_port_block(1)
    sock = root / "admin.sock"
    lines = "\n".join(f"    server {name} {address}" for name, address in servers.items())
    config = root / "haproxy.cfg"
    config.write_text(CONFIG.format(socket=sock, port=port, backend=backend, servers=lines))
    log = open(root / "haproxy.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([binary, "-f", str(config), "-db"], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not (sock.exists() and _accepts(port)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"haproxy did not start: {(root / 'haproxy.log').read_text()[-2000:]}")
            time.sleep(0.02)
        yield Haproxy(f"http://127.0.0.1:{port}", sock, backend, config, proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0
