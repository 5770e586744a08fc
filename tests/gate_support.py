"""A running platform (a real `deployer serve` process) and a central repository with the gate's hooks installed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deployer.fleet.local.procs import free_port_block
from deployer.hooks_install import install
from deployer.model import Role
from deployer.service import DeployService
from deployer.settings import Settings, load_settings
from tests.gitrepo import CentralRepo, git, make_central_repo

REPO = Path(__file__).resolve().parents[1]
# The test repository's own test command: fails when app.txt says "broken".
CHECK_SCRIPT = 'import pathlib, sys\nsys.exit(1 if "broken" in pathlib.Path("app.txt").read_text() else 0)\n'


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; its value, or AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Platform:
    url: str
    settings: Settings
    service: DeployService
    proc: subprocess.Popen[bytes] | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    log: Path | None = None

    def api(self, method: str, path: str, *, token: str | None = None, body: Any = None,
            timeout: float = 30) -> tuple[int, Any]:
        """(status, JSON) of a request to the running platform."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {token or self.tokens['release_manager']}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def checks_done(self, sha: str, count: int) -> list[dict[str, Any]] | None:
        """The commit's checks once `count` of them have finished, else None."""
        status, checks = self.api("GET", f"/api/v1/checks/{sha}")
        finished = [c for c in checks if c["state"] in ("success", "failure", "error")] if status == 200 else []
        return checks if len(finished) >= count else None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL the whole process group if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def write_config(root: Path, repository: Path, *, port: int, extra: dict[str, Any] | None = None) -> Path:
    """A config.yaml for a platform on `port` over `repository`."""
    config: dict[str, Any] = {
        "source": {"repository": str(repository), "branch": "main", "poll_interval": "1h"},
        "workdir": "work", "api": {"host": "127.0.0.1", "port": port},
        "pipeline": {"test_command": "python check.py", "test_timeout": "60s"},
        "gate": {"required_checks": ["tests"], "max_backlog": 5},
    }
    for section, values in (extra or {}).items():
        config.setdefault(section, {}).update(values) if isinstance(values, dict) else config.update({section: values})
    root.mkdir(parents=True, exist_ok=True)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def running_platform(root: Path, repository: Path, *, extra: dict[str, Any] | None = None) -> Iterator[Platform]:
    """`deployer serve` on a free port over a fresh database, with a token per role; stopped afterwards."""
    port = free_port_block(1)
    config = write_config(root, repository, port=port, extra=extra)
    settings = load_settings(config, environ={})
    service = DeployService.from_settings(settings)
    platform = Platform(url=f"http://127.0.0.1:{port}", settings=settings, service=service, log=root / "serve.log")
    for role in Role:
        platform.tokens[role.value] = service.accounts.create_token(name=f"{role.value}-bot", role=role).secret
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOYER__")}
    with open(platform.log, "wb") as log:
        platform.proc = subprocess.Popen([sys.executable, "-P", "-m", "deployer.cli", "-c", str(config), "serve"],
                                         cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
    try:
        wait_until(lambda: _healthy(platform), timeout=60, interval=0.2, what="deployer serve to answer")
        yield platform
    finally:
        platform.stop()
        service.engine.dispose()


def _healthy(platform: Platform) -> bool:
    if platform.proc is not None and platform.proc.poll() is not None:
        raise AssertionError(f"deployer serve exited: {platform.log.read_text()[-2000:] if platform.log else ''}")
    try:
        with urllib.request.urlopen(platform.url + "/healthz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def central_with_hooks(root: Path, platform_url: str, token: str, *, fail_mode: str = "closed",
                       timeout: float = 3.0, files: dict[str, str] | None = None) -> CentralRepo:
    """A bare central repository seeded with a first commit on main, the server hooks installed."""
    central = make_central_repo(root)
    central.commit("first commit", {"check.py": CHECK_SCRIPT, "app.txt": "version 1\n", **(files or {})})
    central.push()
    install(central.bare, server=platform_url, token=token, fail_mode=fail_mode, timeout=timeout)
    return central


@dataclass
class PushResult:
    code: int
    output: str
    seconds: float


def push(clone: Path, *args: str, timeout: float = 120) -> PushResult:
    """`git push origin ARGS` from the clone: exit code, everything git printed, wall time."""
    started = time.monotonic()
    result = subprocess.run(["git", "push", "origin", *args], cwd=clone, capture_output=True, text=True,
                            timeout=timeout)
    return PushResult(result.returncode, result.stdout + result.stderr, time.monotonic() - started)


def head(clone: Path) -> str:
    return git(clone, "rev-parse", "HEAD")


FEED = "sample_app/routes/feed.py"
BURN = '''

def _burn_cpu(seconds: float) -> None:
    """Spend `seconds` of CPU: the slowdown under test."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
'''


def slow_feed_source(original: str, cpu_ms: float) -> str:
    """feed.py's source with `cpu_ms` of extra CPU spent on every feed request."""
    text = original.replace("from typing import Annotated\n", "import time\nfrom typing import Annotated\n", 1)
    text = text.replace('router = APIRouter(prefix="/api", tags=["feed"])\n',
                        'router = APIRouter(prefix="/api", tags=["feed"])\n' + BURN, 1)
    marker = '    """Return the newest posts by user and whom they follow, with like and comment counts."""\n'
    assert marker in text, "feed.py changed: update slow_feed_source"
    return text.replace(marker, marker + f"    _burn_cpu({cpu_ms / 1000.0:.6f})\n", 1)


def route_cpu_ms(app_dir: Path, route: str = "feed", *, rounds: int = 3, requests: int = 5) -> float:
    """The median CPU milliseconds per request of one route, measured by the app's own benchmark there."""
    result = subprocess.run([sys.executable, "-m", "sample_app.bench", "--rounds", str(rounds), "--requests",
                             str(requests)], cwd=app_dir, capture_output=True, text=True, check=True)
    values = sorted(json.loads(result.stdout)["routes"][route]["cpu_ms"])
    return values[len(values) // 2]
