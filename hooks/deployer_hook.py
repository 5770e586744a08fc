"""What the deployer git hooks share: configuration, the gate over HTTP, chained hooks, messages.

Standard library only: a git server has whatever Python it has. Configuration comes from
the repository's git config (written by `deployer hooks install`), the environment wins:

    deployer.url        DEPLOYER_URL        the platform, e.g. http://127.0.0.1:8000
    deployer.token      DEPLOYER_TOKEN      an API token (viewer may ask the gate; release_manager to report pushes)
    deployer.protected  DEPLOYER_PROTECTED  branches the gate guards, comma-separated (default: main)
    deployer.failMode   DEPLOYER_FAIL_MODE  open or closed: what to do when the platform cannot answer
    deployer.timeout    DEPLOYER_TIMEOUT    seconds to wait for the platform (default 5)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKER = "deployer-managed-hook"
ZERO = "0" * 40
MESSAGE_LIMIT = 4000


class Unreachable(Exception):
    """The platform did not answer usefully in time."""


class Refused(Exception):
    """The platform answered with a refusal (4xx) that is not the gate's own decision."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def git(*args: str) -> str:
    """Output of a git command in the current repository ('' when it fails)."""
    result = subprocess.run(["git", *args], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


@dataclass(frozen=True)
class Config:
    url: str
    token: str
    protected: tuple[str, ...]
    fail_closed: bool
    timeout: float

    @classmethod
    def load(cls) -> Config:
        """Read git config, with the environment winning."""
        def get(key: str, env: str, default: str = "") -> str:
            return os.environ.get(env) or git("config", "--get", f"deployer.{key}") or default

        mode = get("failMode", "DEPLOYER_FAIL_MODE", "open").strip().lower()
        try:
            timeout = float(get("timeout", "DEPLOYER_TIMEOUT", "5"))
        except ValueError:
            timeout = 5.0
        protected = tuple(b.strip() for b in get("protected", "DEPLOYER_PROTECTED", "main").split(",") if b.strip())
        return cls(url=get("url", "DEPLOYER_URL").rstrip("/"), token=get("token", "DEPLOYER_TOKEN"),
                   protected=protected, fail_closed=mode == "closed", timeout=max(0.2, min(timeout, 60.0)))

    @property
    def mode_word(self) -> str:
        return "closed" if self.fail_closed else "open"


def say(text: str) -> None:
    """One line to the pusher (git relays a hook's stderr with a 'remote:' prefix)."""
    sys.stderr.write(f"deployer: {text}\n")
    sys.stderr.flush()


def call(config: Config, method: str, path: str, *, query: dict[str, str] | None = None,
         body: dict[str, Any] | None = None, token: str | None = None, timeout: float | None = None) -> Any:
    """JSON request to the platform; Unreachable on network trouble, timeouts and 5xx, Refused on 4xx."""
    if not config.url:
        raise Unreachable("deployer.url is not set in this repository's git config")
    url = config.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    bearer = config.token if token is None else token
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout or config.timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = _detail(exc)
        if exc.code >= 500:
            raise Unreachable(f"{config.url} answered {exc.code}: {detail}") from None
        raise Refused(exc.code, detail) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"cannot reach {config.url} within {timeout or config.timeout:g}s ({reason})") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        payload = json.loads(exc.read() or b"{}")
        return str(payload.get("detail", payload))[:300]
    except (ValueError, OSError):
        return exc.reason if isinstance(exc.reason, str) else str(exc.code)


def commit_facts(old: str, new: str) -> tuple[str, str]:
    """(tree, messages of the commits being pushed) for the gate; works inside pre-receive's quarantine."""
    tree = git("rev-parse", f"{new}^{{tree}}")
    span = [new, "-n", "50"] if old == ZERO else [f"{old}..{new}", "-n", "200"]
    return tree, git("log", "--format=%B", *span)[:MESSAGE_LIMIT]


def ask_gate(config: Config, *, branch: str, sha: str, tree: str, message: str) -> dict[str, Any]:
    """The gate's answer for one branch update."""
    query = {"branch": branch, "sha": sha, "message": message}
    if len(tree) == 40:
        query["tree"] = tree
    return call(config, "GET", "/api/v1/gate", query=query)


def unreachable(config: Config, problem: str, what: str) -> int:
    """Say what failing open or closed means here; the exit code that does it."""
    if config.fail_closed:
        say(f"{problem}; failing CLOSED as configured (deployer.failMode=closed): {what} refused. "
            f"Retry when the platform is back.")
        return 1
    say(f"{problem}; failing OPEN as configured (deployer.failMode=open): {what} accepted WITHOUT the gate.")
    return 0


def protected_updates(config: Config, lines: list[str]) -> list[tuple[str, str, str, str]]:
    """(old, new, ref, branch) for each pushed update of a protected branch."""
    found = []
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue
        old, new, ref = parts
        branch = ref.removeprefix("refs/heads/")
        if ref.startswith("refs/heads/") and branch in config.protected:
            found.append((old, new, ref, branch))
    return found


def run_chained(name: str, stdin_text: str, args: list[str]) -> int:
    """Run the hook that was here before ours (kept as <name>.chained), with the same input."""
    chained = Path(__file__).resolve().parent / f"{name}.chained"
    if not chained.is_file() or not os.access(chained, os.X_OK):
        return 0
    return subprocess.run([str(chained), *args], input=stdin_text, text=True).returncode
