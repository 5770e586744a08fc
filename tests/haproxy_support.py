"""A real HAProxy 2.6 for tests: config written to a temporary folder, `haproxy -f CFG -db`, always stopped."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deployer.demo.haproxy import LocalHaproxy
from tests.fleet_support import free_port_block


@dataclass(frozen=True)
class Haproxy:
    """A running HAProxy: where users go, and its admin socket."""

    url: str
    socket: Path
    backend: str
    config: Path


@contextmanager
def running_haproxy(root: Path, servers: dict[str, str], *, backend: str = "app") -> Iterator[Haproxy]:
    """Start HAProxy in front of `servers` (name -> 127.0.0.1:PORT); stop it at the end, even on failure."""
    if shutil.which("haproxy") is None:
        raise AssertionError("haproxy is not installed; run scripts/ensure-services.sh (apt-get install haproxy)")
    proxy = LocalHaproxy(root, port=free_port_block(1), servers=servers, backend=backend)
    try:
        proxy.start()
        yield Haproxy(proxy.url, proxy.socket, backend, proxy.config)
    finally:
        proxy.stop()
