"""Helpers shared by the fleet and balancer tests: real release directories, leftover processes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psutil

from deployer.fleet.base import Artifact
from deployer.fleet.local.procs import free_port_block

REPO = Path(__file__).resolve().parents[1]
__all__ = ["REPO", "free_port_block", "make_release", "processes_under"]


def make_release(root: Path, sha: str, *, prelude: str = "") -> Artifact:
    """Copy the real sample_app into root/releases/<sha>; `prelude` runs first in __main__."""
    dest = root / "releases" / sha
    shutil.copytree(REPO / "sample_app", dest / "sample_app", ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "REVISION").write_text(sha + "\n")
    if prelude:
        main = dest / "sample_app" / "__main__.py"
        text = main.read_text()
        future = "from __future__ import annotations\n"
        # `from __future__` must stay the first statement, so the prelude goes right after it.
        text = text.replace(future, future + prelude + "\n", 1) if future in text else prelude + "\n" + text
        main.write_text(text)
    return Artifact(sha, str(dest))


def processes_under(root: Path) -> list[int]:
    """Live processes whose working directory is inside root: everything a test started."""
    found = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info.get("cwd")
        if proc.pid == os.getpid() or not cwd:
            continue  # ourselves, gone, or a zombie
        if cwd == str(root) or cwd.startswith(str(root) + os.sep):
            found.append(proc.pid)
    return found
