"""`deployer hooks install / uninstall`: put the gate's git hooks into a repository, and take them out.

A bare (central) repository gets pre-receive and post-receive; a working repository gets
pre-push. A hook already there that is not ours is kept as `<name>.chained` and run first
by ours; uninstalling puts it back. Installing twice changes nothing the second time.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from deployer.exceptions import DeployerError

HOOKS_SOURCE = Path(__file__).resolve().parents[1] / "hooks"
MARKER = "deployer-managed-hook"
LIBRARY = "deployer_hook.py"
SERVER_HOOKS = ("pre-receive", "post-receive")
CLIENT_HOOKS = ("pre-push",)


class HookInstallError(DeployerError):
    """The repository or the options cannot take the hooks; the message says what to fix."""


@dataclass
class InstallResult:
    repo: Path
    hooks_dir: Path
    bare: bool
    installed: list[str] = field(default_factory=list)
    chained: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line per thing done, for the CLI."""
        kind = "bare repository" if self.bare else "working repository"
        lines = [f"{self.repo} ({kind}), hooks in {self.hooks_dir}"]
        lines += [f"  installed {n}" for n in self.installed]
        lines += [f"  kept the existing {n} as {n}.chained (runs first)" for n in self.chained]
        lines += [f"  {n} already installed, unchanged" for n in self.unchanged]
        lines += [f"  removed {n}" for n in self.removed]
        lines += [f"  restored the earlier {n}" for n in self.restored]
        return "\n".join(lines)


def _git(repo: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise HookInstallError(f"git {' '.join(args)} failed in {repo}: {result.stderr.strip()}")
    return result.stdout.strip()


def locate(repo: Path) -> tuple[bool, Path]:
    """(is bare, hooks folder) of a repository; HookInstallError when it is not one."""
    repo = Path(repo)
    if not repo.is_dir():
        raise HookInstallError(f"--repo {repo}: no such folder; give the path of a git repository")
    if subprocess.run(["git", "rev-parse", "--git-dir"], cwd=repo, capture_output=True).returncode != 0:
        raise HookInstallError(f"--repo {repo}: not a git repository; give the central (bare) repository or a clone")
    bare = _git(repo, "rev-parse", "--is-bare-repository") == "true"
    hooks = Path(_git(repo, "rev-parse", "--git-path", "hooks"))
    return bare, (hooks if hooks.is_absolute() else (repo / hooks)).resolve()


def _ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(errors="replace")[:2000]
    except OSError:
        return False


def _copy_executable(src: Path, dest: Path) -> None:
    shutil.copyfile(src, dest)
    dest.chmod(dest.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH | stat.S_IRUSR)


def install(repo: Path, *, server: str | None = None, token: str | None = None, fail_mode: str | None = None,
            protected: list[str] | None = None, fast_checks: str | None = None,
            timeout: float | None = None, only: tuple[str, ...] | None = None) -> InstallResult:
    """Install the hooks that fit the repository (or just `only` of them) and write their git config."""
    if fail_mode is not None and fail_mode not in ("open", "closed"):
        raise HookInstallError(f"--fail-mode: {fail_mode!r} is not allowed; use open or closed")
    if server is not None and not server.startswith(("http://", "https://")):
        raise HookInstallError(f"--server: {server!r} is not a URL; use e.g. http://127.0.0.1:8000")
    if not (HOOKS_SOURCE / LIBRARY).is_file():
        raise HookInstallError(f"the hook scripts are missing from {HOOKS_SOURCE}; reinstall deployer from source")
    bare, hooks_dir = locate(repo)
    hooks_dir.mkdir(parents=True, exist_ok=True)
    result = InstallResult(Path(repo), hooks_dir, bare)
    names = SERVER_HOOKS if bare else CLIENT_HOOKS
    if only is not None:
        unknown = set(only) - set(names)
        if unknown:
            raise HookInstallError(f"{', '.join(sorted(unknown))}: not a hook for a {'bare' if bare else 'working'} "
                                   f"repository; choose from {', '.join(names)}")
        names = tuple(n for n in names if n in only)
    _copy_executable(HOOKS_SOURCE / LIBRARY, hooks_dir / LIBRARY)
    for name in names:
        target, source = hooks_dir / name, HOOKS_SOURCE / name
        if target.exists() and _ours(target):
            if target.read_bytes() == source.read_bytes():
                result.unchanged.append(name)
                continue
        elif target.exists() or target.is_symlink():
            chained = hooks_dir / f"{name}.chained"
            if chained.exists():
                raise HookInstallError(f"{target} is not ours and {chained} exists already; move one of them away")
            target.rename(chained)
            result.chained.append(name)
        _copy_executable(source, target)
        result.installed.append(name)
    settings = {"url": server.rstrip("/") if server else None, "token": token, "failMode": fail_mode,
                "protected": ",".join(protected) if protected else None, "fastChecks": fast_checks,
                "timeout": f"{timeout:g}" if timeout is not None else None}
    for key, value in settings.items():
        if value is not None:
            _git(repo, "config", f"deployer.{key}", value)
    if bare:
        # Without it, `git push -o deploy-override=...` is refused by git itself.
        _git(repo, "config", "receive.advertisePushOptions", "true")
    return result


def uninstall(repo: Path) -> InstallResult:
    """Remove our hooks and their config, and put back any hook they had chained."""
    bare, hooks_dir = locate(repo)
    result = InstallResult(Path(repo), hooks_dir, bare)
    for name in (*SERVER_HOOKS, *CLIENT_HOOKS):
        target, chained = hooks_dir / name, hooks_dir / f"{name}.chained"
        if target.exists() and _ours(target):
            target.unlink()
            result.removed.append(name)
            if chained.exists():
                chained.rename(target)
                result.restored.append(name)
    (hooks_dir / LIBRARY).unlink(missing_ok=True)
    _git(repo, "config", "--remove-section", "deployer", check=False)
    return result
