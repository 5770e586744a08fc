"""A Router over HAProxy's runtime API (the admin stats socket), standard library only.

The HAProxy is usually one the company already runs, so the platform never starts or
stops it: it only re-points, drains and weights the server slots of one backend, one
slot per host (`server_name`, e.g. "host-{index}"). The socket must be admin level:
`stats socket /run/haproxy/admin.sock mode 600 level admin` in `global`.
"""

from __future__ import annotations

import csv
import io
import logging
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from deployer.exceptions import DeployerError
from deployer.fleet.base import Host, HostTraffic

log = logging.getLogger(__name__)
POLL_S = 0.02
# Replies of the runtime API that mean the command did nothing.
_FAILURES = ("No such", "Unknown command", "Permission denied", "Require", "failed", "invalid", "Invalid")


@dataclass(frozen=True)
class ServerStat:
    """One server's line of `show stat`: current and total sessions, status, weight."""

    scur: int
    stot: int
    status: str
    weight: int


class HaproxyError(DeployerError):
    """HAProxy's runtime API could not be reached or refused a command."""


class HaproxyRouter:
    """Drain, re-address, enable and weight the servers of one HAProxy backend."""

    def __init__(
        self,
        *,
        socket_path: str | Path,
        backend: str,
        server_name: str,
        hosts: list[Host],
        traffic_url: str | None = None,
        weight: int = 100,
        weights: dict[str, int] | None = None,
        drain_timeout_s: float = 10.0,
        enable_timeout_s: float = 5.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.backend = backend
        self.weight = weight
        # Per-host weights that differ from `weight` (the canary and its baseline's share).
        self.weights = dict(weights or {})
        self.drain_timeout_s = drain_timeout_s
        self.enable_timeout_s = enable_timeout_s
        self.timeout_s = timeout_s
        self._url = traffic_url
        self._servers = {h.name: server_name.format(index=i, name=h.name) for i, h in enumerate(hosts)}

    # -- the Router protocol -------------------------------------------------------------

    @property
    def url(self) -> str | None:
        """Where users reach HAProxy's frontend (router.traffic_url), if configured."""
        return self._url

    def start(self) -> str | None:
        """Check that the socket answers and the backend has a server for every host."""
        states = self._server_states()
        missing = sorted(s for s in self._servers.values() if s not in states)
        if missing:
            raise HaproxyError(f"HAProxy backend {self.backend!r} has no server {', '.join(missing)}; "
                               f"add them to the backend or change router.server_name "
                               f"(it has: {', '.join(sorted(states)) or 'none'})")
        return self._url

    def drain(self, host: Host, notes: list[str]) -> None:
        """No new requests to the host's server; wait (bounded) until its current sessions are 0."""
        server = self.server(host)
        self._run(f"set server {self.backend}/{server} state drain")
        deadline = time.monotonic() + self.drain_timeout_s
        while (sessions := self._stats()[server].scur) > 0:
            if time.monotonic() >= deadline:
                notes.append(f"drain timed out after {self.drain_timeout_s:g}s with {sessions} in flight")
                break
            time.sleep(POLL_S)
        # Maintenance, not drain: health checks of the stopped host must not put it back.
        self._run(f"set server {self.backend}/{server} state maint")

    def enable(self, host: Host, address: str, notes: list[str]) -> None:
        """Point the server at `address`, mark it healthy (we just checked it), ready, with its weight."""
        server = self.server(host)
        parts = urlsplit(address)
        if not parts.hostname or not parts.port:
            raise HaproxyError(f"{address!r} for {host.name} has no host and port; expected http://HOST:PORT")
        self._run(f"set server {self.backend}/{server} addr {parts.hostname} port {parts.port}")
        self._run(f"set server {self.backend}/{server} weight {self.weights.get(host.name, self.weight)}")
        self._run(f"set server {self.backend}/{server} state ready")
        # The replacement already saw several healthy answers; don't wait for HAProxy's `rise`.
        reply = self._command(f"set server {self.backend}/{server} health up")
        if reply and "checks" not in reply.lower():
            log.debug("health up for %s: %s", server, reply)
        deadline = time.monotonic() + self.enable_timeout_s
        while (status := self._stats()[server].status) not in ("UP", "no check"):
            if time.monotonic() >= deadline:
                notes.append(f"HAProxy has {server} {status} after {self.enable_timeout_s:g}s")
                return
            time.sleep(POLL_S)

    def set_weight(self, host: Host, weight: int) -> None:
        """Set the server's weight (0-256); 0 sends it no new requests."""
        if not 0 <= weight <= 256:
            raise HaproxyError(f"weight {weight} for {host.name} is out of range; use 0-256")
        self._run(f"set server {self.backend}/{self.server(host)} weight {weight}")

    def traffic(self) -> dict[str, HostTraffic]:
        """Per-host current sessions (in flight) and total sessions (served), from `show stat`."""
        stats = self._stats()
        by_server = {server: name for name, server in self._servers.items()}
        return {by_server[s]: HostTraffic(in_flight=row.scur, served=row.stot,
                                          in_rotation=row.status in ("UP", "no check"), weight=row.weight)
                for s, row in stats.items() if s in by_server}

    def stop(self) -> None:
        """HAProxy belongs to whoever runs it: nothing to stop."""

    def close(self) -> None:
        """Every command uses its own connection: nothing to release."""

    # -- the runtime API -------------------------------------------------------------------

    def server(self, host: Host) -> str:
        """The backend server name of `host`."""
        try:
            return self._servers[host.name]
        except KeyError:
            raise HaproxyError(f"{host.name} is not one of this router's hosts") from None

    def _command(self, command: str) -> str:
        """Send one command over a fresh connection; returns HAProxy's reply."""
        if not self.socket_path.exists():
            raise HaproxyError(f"HAProxy runtime socket {self.socket_path} does not exist; set router.socket to "
                               "the path of `stats socket ... level admin` in haproxy.cfg's global section")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout_s)
                sock.connect(str(self.socket_path))
                sock.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise HaproxyError(f"HAProxy runtime socket {self.socket_path}: {exc.strerror or exc}; "
                               "is haproxy running with that `stats socket`?") from exc
        return b"".join(chunks).decode(errors="replace").strip()

    def _run(self, command: str) -> None:
        """A command that answers nothing on success."""
        reply = self._command(command)
        if reply and any(word in reply for word in _FAILURES):
            raise HaproxyError(f"HAProxy refused `{command}`: {reply.splitlines()[0]}")

    def _stats(self) -> dict[str, ServerStat]:
        """This backend's servers from `show stat`: scur, stot, status, weight."""
        reply = self._command("show stat")
        rows = csv.DictReader(io.StringIO(reply.lstrip("# ")))
        found: dict[str, ServerStat] = {}
        for row in rows:
            if row.get("pxname") != self.backend or row.get("svname") in ("FRONTEND", "BACKEND"):
                continue
            found[row["svname"]] = ServerStat(int(row["scur"] or 0), int(row["stot"] or 0), row["status"],
                                              int(row["weight"] or 0))
        if not found:
            raise HaproxyError(f"HAProxy has no backend {self.backend!r} with servers; check router.backend")
        return found

    def _server_states(self) -> set[str]:
        """Server names of the backend, as `show servers state` lists them."""
        reply = self._command(f"show servers state {self.backend}")
        if "Can't find backend" in reply or "No such" in reply:
            raise HaproxyError(f"HAProxy has no backend {self.backend!r}; check router.backend")
        names = set()
        for line in reply.splitlines():
            fields = line.split()
            if len(fields) > 3 and fields[0].isdigit():
                names.add(fields[3])
        return names
