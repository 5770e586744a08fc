"""Fork servers for the local fleet: one preloaded interpreter per release directory.

Almost all of a host's start is Python importing the app. A fork server
(`forkserver.py` beside this file) imports a release's modules once; each host of that
release is then a fork of it, serving a fraction of a second after the request.

Each fork server is a child of the process that owns the fleet (the controller), in a
session of its own, talking over its stdin and stdout. When the owner dies, even by
SIGKILL, the pipe closes and the fork server exits; the hosts it forked lead their own
sessions and keep serving, recorded in their state files as any host is, so a new
controller adopts them as before and starts fork servers of its own when it needs them.
A release whose modules do not import in a fork server is started the plain way, which
reports the failure as it always did.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from deployer.fleet.local import procs

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).resolve().with_name("forkserver.py")
# The app's heavy imports, and the parts of uvicorn it imports only when it starts serving.
REQUIRED = ("sample_app.app",)
OPTIONAL = (
    "uvicorn",
    "uvicorn.config",
    "uvicorn.main",
    "uvicorn.loops.auto",
    "uvicorn.loops.asyncio",
    "uvicorn.loops.uvloop",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.websockets.auto",
    "uvicorn.lifespan.on",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
)
# Fork servers kept warm: the current release, the one before (an instant rollback), and one more.
KEEP = 3
REPLY_TIMEOUT_S = 10.0


class ForkServerGone(Exception):
    """The fork server exited or stopped answering."""


class ForkServer:
    """One fork server for one release directory; thread-safe."""

    def __init__(self, *, release: Path, python: str, env: dict[str, str], log_path: Path) -> None:
        self.release = release
        self.log_path = log_path
        self._lock = threading.Lock()
        self._buffer = b""
        self.ready = False
        log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [python, str(SCRIPT)]
        argv += [arg for name in REQUIRED for arg in ("--require", name)]
        argv += [arg for name in OPTIONAL for arg in ("--try", name)]
        with open(log_path, "ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} fork server for {release}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(argv, cwd=str(release), env=env, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=out, start_new_session=True,
                                         close_fds=True)
        self.ref = procs.ProcessRef(self.proc.pid, procs.start_time_of(self.proc.pid) or 0.0)

    @property
    def pid(self) -> int:
        """The fork server's pid."""
        return self.proc.pid

    def wait_ready(self, timeout_s: float) -> str | None:
        """Wait until the modules are imported; None when ready, else why not (the server is then stopped)."""
        with self._lock:
            if self.ready:
                return None
            try:
                reply = self._read(timeout_s)
            except ForkServerGone as exc:
                self._kill()
                return f"{exc}; log {self.log_path}:\n{procs.log_tail(self.log_path)}"
            if not reply.get("ready"):
                self._kill()
                return f"unexpected first answer {reply!r}"
            self.ready = True
            if reply.get("skipped"):
                log.debug("fork server for %s could not preload %s", self.release, reply["skipped"])
            return None

    def fork(self, *, module: str, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> int:
        """Fork a host that runs `python -m module argv...`; returns its pid."""
        reply = self._ask({"op": "fork", "module": module, "argv": argv, "env": env, "cwd": str(cwd),
                           "log": str(log_path)})
        if "pid" not in reply:
            raise ForkServerGone(str(reply.get("error", reply)))
        return int(reply["pid"])

    def exit_code(self, pid: int) -> int | None:
        """The exit status of a host this server forked, None while it runs."""
        reply = self._ask({"op": "status", "pid": pid})
        if not reply.get("known"):
            raise ForkServerGone(f"pid {pid} is not a child of fork server {self.pid}")
        code = reply.get("exit")
        return int(code) if code is not None else None

    def stop(self) -> None:
        """Close its stdin (it exits, its hosts keep running); kill it if it does not."""
        with self._lock:
            if self.proc.stdin is not None and not self.proc.stdin.closed:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
            try:
                self.proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self._kill()
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def _kill(self) -> None:
        procs.terminate(self.ref, 2.0, self.proc)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if not self.ready or self.proc.stdin is None or self.proc.stdin.closed:
                raise ForkServerGone(f"fork server {self.pid} is not serving")
            try:
                self.proc.stdin.write((json.dumps(request) + "\n").encode())
                self.proc.stdin.flush()
            except (OSError, ValueError) as exc:
                raise ForkServerGone(f"fork server {self.pid}: {exc}") from exc
            return self._read(REPLY_TIMEOUT_S)

    def _read(self, timeout_s: float) -> dict[str, Any]:
        """One JSON line from the server, within timeout_s."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ForkServerGone(f"fork server {self.pid} did not answer within {timeout_s:g}s")
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    code = self.proc.wait()
                    raise ForkServerGone(f"fork server {self.pid} exited with status {code}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise ForkServerGone(f"fork server {self.pid} said {line[:200]!r}") from exc
        return reply if isinstance(reply, dict) else {"error": reply}


class ForkedChild:
    """A host forked by a fork server, with Popen's `pid` and `poll()` for the process bookkeeping."""

    def __init__(self, pid: int, server: ForkServer) -> None:
        self.pid = pid
        self.server = server
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """Its exit status once it has exited and its fork server still knows it, else None."""
        if self.returncode is None:
            try:
                self.returncode = self.server.exit_code(self.pid)
            except ForkServerGone:
                return None  # the caller learns it is gone from the process table
        return self.returncode


class ForkServers:
    """The fork servers of one local fleet, one per release directory, the few most recent kept warm."""

    def __init__(self, *, python: str, log_dir: Path, ready_timeout_s: float, keep: int = KEEP) -> None:
        self.python = python
        self.log_dir = log_dir
        self.ready_timeout_s = ready_timeout_s
        self.keep = keep
        self._lock = threading.Lock()
        self._servers: OrderedDict[Path, ForkServer] = OrderedDict()
        # Releases whose modules would not import in a fork server: started the plain way.
        self._refused: set[Path] = set()

    def get(self, release: Path, env: dict[str, str]) -> ForkServer | None:
        """A ready fork server for `release` (started and preloaded if need be), or None to start plainly."""
        release = release.resolve()
        with self._lock:
            if release in self._refused:
                return None
            server = self._servers.get(release)
            if server is not None and server.proc.poll() is not None:
                log.warning("fork server for %s (pid %d) has exited; starting another", release, server.pid)
                del self._servers[release]
                server = None
            if server is None:
                try:
                    server = ForkServer(release=release, python=self.python, env=env,
                                        log_path=self.log_dir / f"{release.name}.log")
                except OSError as exc:
                    log.warning("cannot start a fork server for %s (%s); its hosts start the plain way", release, exc)
                    self._refused.add(release)
                    return None
                self._servers[release] = server
            self._servers.move_to_end(release)
            retired = self._evict()
        for old in retired:
            old.stop()
        # Outside the pool's lock: other releases' hosts must not wait for this one's imports.
        why = server.wait_ready(self.ready_timeout_s)
        if why is None:
            return server
        log.warning("fork server for %s did not get ready (%s); its hosts start the plain way", release, why)
        with self._lock:
            if self._servers.get(release) is server:
                del self._servers[release]
            self._refused.add(release)
        return None

    def discard(self, server: ForkServer) -> None:
        """Forget (and stop) a fork server that failed a request; the next `get` starts a fresh one."""
        with self._lock:
            if self._servers.get(server.release) is server:
                del self._servers[server.release]
        server.stop()

    def pids(self) -> list[int]:
        """Pids of the running fork servers."""
        with self._lock:
            return [s.pid for s in self._servers.values() if s.proc.poll() is None]

    def stop_all(self) -> None:
        """Stop every fork server (the hosts they forked keep running)."""
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for server in servers:
            server.stop()

    def _evict(self) -> list[ForkServer]:
        retired = []
        while len(self._servers) > self.keep:
            _, server = self._servers.popitem(last=False)
            retired.append(server)
        return retired
