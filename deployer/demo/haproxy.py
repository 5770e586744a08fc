"""An HAProxy of our own for the demo and the benchmarks, as a company would run one in front of its hosts.

The platform then drives it like any other HAProxy, through the runtime API socket only
(`deployer.fleet.haproxy`). The configuration is written to a folder; `haproxy -f CFG -db`
runs in the foreground in its own session, and `stop()` ends it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from deployer.exceptions import DeployerError

CONFIG = """\
global
    stats socket {socket} mode 600 level admin
    maxconn 2048

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # A host busy starting its neighbours may answer a check slowly: slow is not dead.
    timeout check 2s
    # A connection refused, or closed unanswered, by a host that just went away is retried on another one.
    option redispatch
    retries 3
    retry-on conn-failure empty-response response-timeout

frontend web
    bind {bind}:{port}
    default_backend {backend}

backend {backend}
    balance roundrobin
    option httpchk GET /healthz
    default-server check inter 300ms fall 3 rise 2
{servers}
"""


class LocalHaproxy:
    """One haproxy process with a backend of `servers` (name -> HOST:PORT) and an admin socket."""

    def __init__(self, folder: Path, *, port: int, servers: dict[str, str], backend: str = "app",
                 bind: str = "127.0.0.1") -> None:
        self.folder = Path(folder)
        self.port = port
        self.servers = servers
        self.backend = backend
        self.bind = bind
        self.socket = self.folder / "admin.sock"
        self.config = self.folder / "haproxy.cfg"
        self.log = self.folder / "haproxy.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where users send traffic."""
        return f"http://{self.bind}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> str:
        """Write the configuration, start haproxy, wait until it listens; returns its URL."""
        binary = shutil.which("haproxy")
        if binary is None:
            raise DeployerError("haproxy is not installed; install it (apt-get install haproxy) or use the "
                                "built-in router")
        self.folder.mkdir(parents=True, exist_ok=True)
        lines = "\n".join(f"    server {name} {address}" for name, address in self.servers.items())
        self.config.write_text(CONFIG.format(socket=self.socket, bind=self.bind, port=self.port,
                                             backend=self.backend, servers=lines))
        with open(self.log, "ab") as out:
            self._proc = subprocess.Popen([binary, "-f", str(self.config), "-db"], stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        (self.folder / "haproxy.pid").write_text(str(self._proc.pid))
        deadline = time.monotonic() + timeout_s
        while not (self.socket.exists() and self._listening()):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise DeployerError(f"haproxy did not start; {self.log}:\n{self.log.read_text()[-1500:]}")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        """Stop haproxy (SIGTERM, then SIGKILL); a no-op when it does not run."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def _listening(self) -> bool:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            return probe.connect_ex((self.bind, self.port)) == 0
