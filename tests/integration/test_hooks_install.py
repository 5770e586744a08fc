"""`deployer hooks install / uninstall` on real repositories: idempotent, chaining, restoring."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.gitrepo import git, make_central_repo

pytestmark = pytest.mark.integration
EXISTING = "#!/bin/sh\n# the team's own hook\necho \"existing hook ran\" >&2\nexit 0\n"


def deployer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deployer.cli", *args], capture_output=True, text=True)


def test_install_chains_an_existing_hook_is_idempotent_and_uninstall_restores_it(tmp_path: Path) -> None:
    central = make_central_repo(tmp_path)
    hooks = central.bare / "hooks"
    (hooks / "post-receive").write_text(EXISTING)
    (hooks / "post-receive").chmod(0o755)
    first = deployer("hooks", "install", "--repo", str(central.bare), "--server", "http://127.0.0.1:9",
                     "--fail-mode", "open", "--timeout", "1")
    assert first.returncode == 0, first.stderr
    assert "installed pre-receive" in first.stdout and "kept the existing post-receive" in first.stdout
    assert (hooks / "post-receive.chained").read_text() == EXISTING
    assert git(central.bare, "config", "deployer.url") == "http://127.0.0.1:9"
    assert git(central.bare, "config", "receive.advertisePushOptions") == "true"
    again = deployer("hooks", "install", "--repo", str(central.bare))
    assert "pre-receive already installed, unchanged" in again.stdout and "kept" not in again.stdout
    central.commit("change", {"a.txt": "1\n"})
    pushed = subprocess.run(["git", "push", "origin", "main"], cwd=central.clone, capture_output=True, text=True)
    assert pushed.returncode == 0 and "existing hook ran" in pushed.stderr  # the chained hook still runs
    removed = deployer("hooks", "uninstall", "--repo", str(central.bare))
    assert "restored the earlier post-receive" in removed.stdout
    assert (hooks / "post-receive").read_text() == EXISTING
    assert not (hooks / "pre-receive").exists() and not (hooks / "deployer_hook.py").exists()
    assert not (hooks / "post-receive.chained").exists()


def test_a_working_repository_gets_pre_push(tmp_path: Path) -> None:
    central = make_central_repo(tmp_path)
    result = deployer("hooks", "install", "--repo", str(central.clone), "--fast-checks", "true")
    assert result.returncode == 0 and "installed pre-push" in result.stdout
    assert (central.clone / ".git" / "hooks" / "pre-push").is_file()


@pytest.mark.parametrize(("args", "words"), [
    (["--repo", "/nonexistent/repo"], "no such folder"),
    (["--repo", "/tmp", "--server", "127.0.0.1:8000"], "is not a URL"),
])
def test_bad_input_is_named(args: list[str], words: str) -> None:
    result = deployer("hooks", "install", *args)
    assert result.returncode != 0 and words in result.stderr
