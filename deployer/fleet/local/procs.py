"""Process bookkeeping for the local fleet: spawn in a new session, recognise, stop, record.

A process is identified by (pid, start time): a pid alone can be reused after the
process dies, so every record stores the start time psutil reports at spawn and a
process only counts as "ours" while both still match.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil

log = logging.getLogger(__name__)

POLL_S = 0.01


@dataclass(frozen=True)
class ProcessRef:
    """A process we started: its pid (also its process-group id) and its start time."""

    pid: int
    start_time: float

    def to_json(self) -> dict[str, float]:
        """Serialise for a state file."""
        return {"pid": self.pid, "start_time": self.start_time}


class Child(Protocol):
    """A process we started and can reap: a Popen, or a host forked by a fork server."""

    pid: int

    def poll(self) -> int | None:
        """Its exit status once it has exited (reaping it), None while it runs."""
        ...


def _stat(pid: int) -> tuple[str, float] | None:
    """(status, start time) of any pid, zombies included; None when there is none."""
    try:
        proc = psutil.Process(pid)
        return proc.status(), proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def start_time_of(pid: int) -> float | None:
    """Return the start time (seconds since the epoch, as the kernel records it) of a live, non-zombie pid."""
    stat = _stat(pid)
    if stat is None or stat[0] in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
        return None
    return stat[1]


def is_alive(ref: ProcessRef | None) -> bool:
    """True when the recorded process still runs (same pid AND same start time)."""
    return ref is not None and start_time_of(ref.pid) == ref.start_time


def spawn(
    argv: list[str], *, cwd: Path | str, env: dict[str, str], log_path: Path
) -> tuple[subprocess.Popen[bytes], ProcessRef]:
    """Start argv in its own session (outlives us, killable as a group), output appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=str(cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    start = start_time_of(proc.pid)
    # A process that died instantly has no start time left to read; 0 never matches a live one.
    return proc, ProcessRef(proc.pid, start if start is not None else 0.0)


def _reap(proc: Child | None) -> None:
    if proc is not None:
        proc.poll()


def wait_gone(ref: ProcessRef, timeout: float, proc: Child | None = None) -> bool:
    """Wait until the process has exited; True if it did within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        _reap(proc)  # our own child stays a zombie (and "alive" to kill) until reaped
        if not is_alive(ref):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


def _signal_group(pgid: int, sig: int) -> None:
    # Gone already (ESRCH) is the outcome we wanted.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _kill_stragglers(ref: ProcessRef) -> None:
    """SIGKILL what is left of a group whose leader has exited, if the group is still ours."""
    stat = _stat(ref.pid)
    # With no process holding the leader's pid, a group with that id can only be the
    # leader's own; a live pid with another start time means the pid (and maybe the
    # group id) now belongs to someone else.
    if stat is None or stat[1] == ref.start_time:
        _signal_group(ref.pid, signal.SIGKILL)


def terminate(
    ref: ProcessRef,
    timeout: float,
    proc: Child | None = None,
    released: Callable[[], bool] | None = None,
) -> str:
    """SIGTERM the process group, wait up to timeout, then SIGKILL it.

    Returns "exited", "killed", or "released" when `released()` turned true first (the
    caller then finishes the wait with `finish`, e.g. while it starts a successor).
    """
    if not is_alive(ref):
        _reap(proc)
        _kill_stragglers(ref)
        return "exited"
    _signal_group(ref.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(proc)  # our own child stays a zombie (and "alive") until reaped
        if not is_alive(ref):
            _kill_stragglers(ref)  # any child the leader left in its group
            return "exited"
        if released is not None and released():
            return "released"
        time.sleep(POLL_S)
    log.warning("pid %d did not stop within %.1fs; killing its group", ref.pid, timeout)
    _kill_stragglers(ref)
    wait_gone(ref, 5.0, proc)
    return "killed"


def finish(ref: ProcessRef, timeout: float, proc: Child | None = None) -> None:
    """Wait for an already signalled process to exit; SIGKILL its group after timeout."""
    if not wait_gone(ref, timeout, proc):
        log.warning("pid %d did not exit within %.1fs of SIGTERM; killing its group", ref.pid, timeout)
    _kill_stragglers(ref)
    wait_gone(ref, 5.0, proc)


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on (host, port); SO_REUSEADDR like the servers we start."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def ephemeral_ports() -> tuple[int, int] | None:
    """The kernel's range for outgoing connections' local ports, None when unknown."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return None


def wait_port_free(host: str, port: int, timeout: float) -> bool:
    """Wait until (host, port) can be bound; True if it became free within timeout."""
    deadline = time.monotonic() + timeout
    while not port_is_free(host, port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def find_processes(match: Callable[[int, list[str]], bool]) -> list[int]:
    """Pids of live processes whose (pid, argv) satisfies `match`."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info.get("cmdline") or []
        if argv and match(proc.pid, argv):
            found.append(proc.pid)
    return found


def listening_ports(pid: int) -> set[int]:
    """The TCP ports a process listens on ({} when it is gone or not ours to inspect)."""
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return set()
    return {c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN and c.laddr}


def leads_group(pid: int) -> bool:
    """True when pid is its own process-group leader (so killing the group kills only its tree)."""
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def cmdline_of(pid: int) -> list[str]:
    """Return the argv of a pid, or [] when it cannot be read."""
    try:
        return psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so a reader (or a crash) never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON state file; {} when missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def ref_from_json(data: dict[str, Any]) -> ProcessRef | None:
    """Rebuild a ProcessRef from a state file record, None when absent."""
    pid, start = data.get("pid"), data.get("start_time")
    if isinstance(pid, int) and isinstance(start, (int, float)) and not isinstance(start, bool):
        return ProcessRef(pid, float(start))
    return None


def log_tail(path: Path, offset: int = 0, lines: int = 20) -> str:
    """Return the last lines of a log written after byte offset (what this start printed)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """A base port such that base..base+count-1 are all free, below the ephemeral range.

    Not port 0's answer: that is an ephemeral port, which an outgoing connection (a
    balancer's health checks make many) can take while a host is down for a restart.
    """
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(max(1024, ephemeral_low - 12000), ephemeral_low - count)
        if all(port_is_free(host, base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no block of {count} free ports")
