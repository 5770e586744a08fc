"""A real central repository and a clone for tests: what engineers push to."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


def git(cwd: Path, *args: str) -> str:
    """Run git and return its output (raises with git's message)."""
    env = dict(os.environ, GIT_AUTHOR_NAME="Test Author", GIT_AUTHOR_EMAIL="author@example.test",
               GIT_COMMITTER_NAME="Test Author", GIT_COMMITTER_EMAIL="author@example.test")
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout.strip()


@dataclass
class CentralRepo:
    bare: Path
    clone: Path

    def commit(self, message: str, files: dict[str, str]) -> str:
        """Write files in the clone and commit them; returns the sha."""
        for name, content in files.items():
            path = self.clone / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        git(self.clone, "add", "-A")
        git(self.clone, "commit", "--quiet", "-m", message)
        return git(self.clone, "rev-parse", "HEAD")

    def push(self) -> None:
        git(self.clone, "push", "--quiet", "origin", "main")


def make_central_repo(root: Path) -> CentralRepo:
    """An empty bare repository on `main` and a clone of it."""
    bare, clone = root / "central.git", root / "clone"
    git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    git(root, "clone", "--quiet", str(bare), str(clone))
    return CentralRepo(bare, clone)
