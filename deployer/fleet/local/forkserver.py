"""A fork server: one interpreter that imports a release's modules once, then forks hosts from them.

Run by path, never imported by the platform (standard library only, so nothing of the
platform ends up in the app's processes):

    python forkserver.py --require sample_app.app --try uvicorn.loops.auto

with the release directory as working directory and first on PYTHONPATH. It prints one
JSON line when its modules are imported ({"ready": true, ...}) and then answers one JSON
request per line on stdin:

    {"op": "fork", "module": "sample_app", "argv": [...], "env": {...}, "cwd": "...", "log": "..."}
        -> {"pid": 1234}
    {"op": "status", "pid": 1234}  -> {"exit": null | int, "known": true | false}

A forked host starts a new session (it leads its own process group, so it is stopped
as a group and outlives this server), gets its own environment, working directory and
log as stdout and stderr, and runs the module as `python -m module argv...` would, in
a process that already has the imports. This server reaps the hosts it forked and keeps
their exit statuses for `status`. It exits when stdin closes (its owner is gone or
done with it) or on SIGTERM; the hosts it forked keep running either way.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import runpy
import select
import sys
import traceback
from typing import Any

REAP_EVERY_S = 0.2


def _drop_script_dir() -> None:
    """Running by path puts this file's folder first on sys.path; the app must not see the platform's modules."""
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        sys.path.pop(0)


def _preload(required: list[str], optional: list[str]) -> list[str]:
    """Import the modules every host needs; a required one that fails ends the server (with its traceback)."""
    for name in required:
        importlib.import_module(name)
    skipped = []
    for name in optional:
        try:
            importlib.import_module(name)
        except Exception:  # an optional speed-up that this release cannot load: its hosts import it themselves
            skipped.append(name)
    return skipped


def _exit_code(exc: SystemExit) -> int:
    """The status `python -m` would exit with for this SystemExit."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _become_host(request: dict[str, Any]) -> int:
    """In the forked child: detach, redirect, run the module as __main__; return its exit status."""
    os.setsid()  # its own session and process group: stopped as a group, outlives this server
    out = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the protocol pipes and anything else of the server's
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    module = request["module"]
    sys.argv = [module, *request["argv"]]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return _exit_code(exc)
    except BaseException:  # noqa: BLE001 - report it the way the interpreter would, then exit 1
        traceback.print_exc()
        return 1
    return 0


class Server:
    """The request loop; `serve` returns None in the server and an exit status in a forked host."""

    def __init__(self, requests: int, replies: int) -> None:
        self.requests = requests
        self.replies = replies
        self.children: set[int] = set()
        self.statuses: dict[int, int] = {}
        self.buffer = b""

    def reply(self, message: dict[str, Any]) -> None:
        """Write one JSON line to the owner."""
        os.write(self.replies, (json.dumps(message) + "\n").encode())

    def reap(self) -> None:
        """Collect the exit statuses of finished hosts (they would stay zombies otherwise)."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self.statuses[pid] = os.waitstatus_to_exitcode(status)

    def serve(self) -> int | None:
        """Answer requests until stdin closes."""
        while True:
            readable, _, _ = select.select([self.requests], [], [], REAP_EVERY_S)
            self.reap()
            if not readable:
                continue
            chunk = os.read(self.requests, 65536)
            if not chunk:
                return None
            self.buffer += chunk
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                code = self.handle(json.loads(line))
                if code is not None:
                    return code

    def handle(self, request: dict[str, Any]) -> int | None:
        """One request; returns an exit status only in a freshly forked host."""
        op = request.get("op")
        if op == "status":
            self.reap()
            pid = int(request["pid"])
            self.reply({"exit": self.statuses.get(pid), "known": pid in self.children or pid in self.statuses})
            return None
        if op != "fork":
            self.reply({"error": f"unknown op {op!r}"})
            return None
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # nothing buffered here may be written twice by the child
        try:
            pid = os.fork()
        except OSError as exc:
            self.reply({"error": f"fork failed: {exc}"})
            return None
        if pid == 0:
            try:
                return _become_host(request)
            except BaseException:  # noqa: BLE001 - a child must never fall back into the server's loop
                traceback.print_exc()
                return 1
        self.children.add(pid)
        self.reply({"pid": pid})
        return None


def main(argv: list[str] | None = None) -> int:
    """Preload, announce readiness, serve; in a forked host, the host's exit status."""
    _drop_script_dir()
    parser = argparse.ArgumentParser(description="fork hosts from preloaded modules")
    parser.add_argument("--require", action="append", default=[], help="module every host imports (must load)")
    parser.add_argument("--try", dest="optional", action="append", default=[], help="module to preload if it can")
    args = parser.parse_args(argv)
    # Replies go to a private copy of stdout; what the app prints while importing goes to stderr (the log).
    replies = os.dup(1)
    os.dup2(2, 1)
    skipped = _preload(args.require, args.optional)
    server = Server(requests=0, replies=replies)
    server.reply({"ready": True, "pid": os.getpid(), "skipped": skipped})
    code = server.serve()
    return 0 if code is None else code


if __name__ == "__main__":
    # In a forked host this is the host's own exit: atexit handlers, thread joins and
    # stream flushes run as they would at the end of `python -m module`.
    sys.exit(main())
