"""The demo's workspace: a central bare repository seeded from sample_app/, an engineer's clone, a config.

Engineers' actions (commit, push, revert) use the git command line, as engineers do.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployer.demo.scenario import ScriptedCommit, apply_edits
from deployer.hooks_install import HookInstallError, install

PLATFORM_ROOT = Path(__file__).resolve().parents[2]
SEED_MESSAGE = "Import Snapgram, the photo-sharing app"
APP_GITIGNORE = "__pycache__/\n*.pyc\n*.db\n*.db-wal\n*.db-shm\n.pytest_cache/\n"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def repo(self) -> Path:
        return self.root / "app.git"

    @property
    def clone(self) -> Path:
        return self.root / "clone"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"


def sample_app_source() -> Path:
    """Where the sample app's package lives (found without importing it)."""
    spec = importlib.util.find_spec("sample_app")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the sample_app package is not installed")
    return Path(spec.origin).parent


def git(cwd: Path, *args: str, author: str | None = None) -> str:
    """Run git in `cwd` and return its output; raises CalledProcessError with git's message."""
    env = dict(os.environ)
    if author:
        email = author.lower().replace(" ", ".") + "@snapgram.example"
        env.update(GIT_AUTHOR_NAME=author, GIT_AUTHOR_EMAIL=email, GIT_COMMITTER_NAME=author,
                   GIT_COMMITTER_EMAIL=email)
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def stop_leftovers(workspace: Workspace) -> None:
    """Stop processes a previous demo in this workspace left running (e.g. after kill -9)."""
    if workspace.pids.is_dir():
        for pidfile in workspace.pids.glob("*.pid"):
            try:
                os.killpg(int(pidfile.read_text().strip()), signal.SIGKILL)
            except (ValueError, ProcessLookupError, PermissionError):
                pass


def create(root: Path, *, base_config: dict[str, Any], overrides: dict[str, Any]) -> Workspace:
    """Wipe and create the workspace: repository, clone, hook and config."""
    workspace = Workspace(root.resolve())
    if workspace.root.exists():
        shutil.rmtree(workspace.root)
    workspace.root.mkdir(parents=True)
    workspace.logs.mkdir()
    workspace.pids.mkdir()
    git(workspace.root, "init", "--quiet", "--bare", "--initial-branch=main", str(workspace.repo))
    git(workspace.root, "clone", "--quiet", str(workspace.repo), str(workspace.clone))
    shutil.copytree(sample_app_source(), workspace.clone / "sample_app",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
    (workspace.clone / ".gitignore").write_text(APP_GITIGNORE)
    git(workspace.clone, "add", "-A")
    git(workspace.clone, "commit", "--quiet", "-m", SEED_MESSAGE, author="Ana Lima")
    git(workspace.clone, "push", "--quiet", "origin", "main")
    config = _merge(base_config, overrides)
    workspace.config.write_text(yaml.safe_dump(config, sort_keys=False))
    return workspace


def install_push_hook(workspace: Workspace, api_url: str, token: str = "") -> bool:
    """Install the post-receive hook alone; False when the hooks are not available."""
    try:
        install(workspace.repo, server=api_url, token=token or None, only=("post-receive",))
    except HookInstallError:
        return False
    return True


def install_hooks(workspace: Workspace, api_url: str, token: str) -> None:
    """Install the gate (pre-receive) and the push report (post-receive) in the central repository."""
    # Fail closed: a demo whose gate silently let everything through would show nothing.
    install(workspace.repo, server=api_url, token=token, fail_mode="closed", only=("pre-receive", "post-receive"))


def commit(workspace: Workspace, scripted: ScriptedCommit, shas: dict[str, str]) -> str:
    """Make one scripted commit in the clone (not pushed); returns its sha."""
    if scripted.reverts:
        git(workspace.clone, "revert", "--no-edit", shas[scripted.reverts], author=scripted.author)
    else:
        touched = apply_edits(workspace.clone, scripted)
        git(workspace.clone, "add", *touched)
        trailer = ["-m", f"Fixes {shas[scripted.fixes]}"] if scripted.fixes else []
        git(workspace.clone, "commit", "--quiet", "-m", scripted.title, *trailer, author=scripted.author)
    return git(workspace.clone, "rev-parse", "HEAD")


def push_branch(workspace: Workspace, branch: str) -> str:
    """Push the clone's HEAD to a (topic) branch of the central repository; returns git's output."""
    result = subprocess.run(["git", "push", "--quiet", "--force", "origin", f"HEAD:refs/heads/{branch}"],
                            cwd=workspace.clone, capture_output=True, text=True, check=True)
    return (result.stdout + result.stderr).strip()


@dataclass(frozen=True)
class PushResult:
    accepted: bool
    output: str     # what the hooks said (a refusal's reason)


def push(workspace: Workspace) -> str:
    """Push the clone's main to the central repository; returns the hooks' output (a refusal raises)."""
    result = subprocess.run(["git", "push", "--quiet", "origin", "main"], cwd=workspace.clone,
                            capture_output=True, text=True, check=True)
    return (result.stdout + result.stderr).strip()


def merge(workspace: Workspace) -> PushResult:
    """Push (merge) the clone's main to the central repository through its gate; a refusal is an answer."""
    result = subprocess.run(["git", "push", "--quiet", "origin", "main"], cwd=workspace.clone,
                            capture_output=True, text=True)
    return PushResult(result.returncode == 0, (result.stdout + result.stderr).strip())


def abandon(workspace: Workspace) -> None:
    """After a refused merge: put the clone's main back on the central main (the branch keeps the work)."""
    git(workspace.clone, "reset", "--quiet", "--hard", "origin/main")


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for dotted, value in overrides.items():
        node = merged
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return merged
