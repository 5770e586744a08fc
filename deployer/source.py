"""The git source: the only module that imports GitPython.

The controller keeps a bare mirror of the central repository in its workdir, fetches
it (on a timer, or at once when a push hook pokes the API), lists the commits merged
on the branch since the ones it knows, and archives a commit into a folder for the
test run and the build.
"""

from __future__ import annotations

import io
import logging
import shutil
import tarfile
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import git
from filelock import FileLock

from deployer.exceptions import SourceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author: str
    message: str
    committed_at: datetime

    @property
    def title(self) -> str:
        return self.message.strip().splitlines()[0] if self.message.strip() else ""


class GitSource:
    """A bare mirror of `repository` kept in `mirror_dir`, following `branch`."""

    def __init__(self, *, repository: str, branch: str, mirror_dir: Path) -> None:
        self.repository = repository
        self.branch = branch
        self.mirror_dir = Path(mirror_dir)
        self._lock = threading.Lock()
        # Workers and the controller may share one mirror: git refuses concurrent ref updates.
        self._file_lock = FileLock(str(self.mirror_dir) + ".lock", thread_local=False)
        self._repo: git.Repo | None = None

    def _open(self) -> git.Repo:
        if self._repo is not None:
            return self._repo
        try:
            self.mirror_dir.parent.mkdir(parents=True, exist_ok=True)
            # Clone beside the final place and rename, under the lock: another process (a worker)
            # never opens a half-made mirror, and one killed mid-clone leaves none behind.
            with self._file_lock:
                if not (self.mirror_dir / "HEAD").exists():
                    if self.mirror_dir.exists():
                        shutil.rmtree(self.mirror_dir)
                    scratch = self.mirror_dir.with_name(f".{self.mirror_dir.name}-{uuid.uuid4().hex[:8]}")
                    try:
                        git.Repo.clone_from(self.repository, scratch, bare=True)
                        scratch.rename(self.mirror_dir)
                    finally:
                        shutil.rmtree(scratch, ignore_errors=True)
                self._repo = git.Repo(self.mirror_dir)
        except git.GitCommandError as exc:
            raise SourceError(f"cannot clone {self.repository}: {exc.stderr.strip() or exc}") from None
        except git.NoSuchPathError:
            raise SourceError(f"no git repository at {self.repository}") from None
        return self._repo

    def fetch(self) -> str:
        """Bring the mirror up to date; returns the branch's head sha."""
        with self._lock:
            repo = self._open()
            refspec = f"+refs/heads/{self.branch}:refs/heads/{self.branch}"
            try:
                with self._file_lock:
                    repo.git.fetch(self.repository, refspec, "--prune", "--quiet")
            except git.GitCommandError as exc:
                raise SourceError(f"cannot fetch {self.branch} from {self.repository}: "
                                  f"{exc.stderr.strip() or exc}") from None
            return self._head(repo)

    def _head(self, repo: git.Repo) -> str:
        try:
            return repo.commit(f"refs/heads/{self.branch}").hexsha
        except (git.BadName, ValueError):
            raise SourceError(f"branch {self.branch!r} not found in {self.repository}") from None

    def fetch_ref(self, ref: str) -> str:
        """Fetch one ref of the central repository (a branch, a pull request's head) into refs/seen/; its sha."""
        if not ref.startswith("refs/") or ".." in ref or any(ch.isspace() for ch in ref):
            raise SourceError(f"ref {ref!r} is not a full ref name such as refs/heads/feature")
        local = "refs/seen/" + ref[len("refs/"):]
        with self._lock:
            repo = self._open()
            try:
                repo.git.fetch(self.repository, f"+{ref}:{local}", "--quiet", "--no-tags")
                return repo.commit(local).hexsha
            except git.GitCommandError as exc:
                raise SourceError(f"cannot fetch {ref} from {self.repository}: {exc.stderr.strip() or exc}") from None

    def tree_of(self, sha: str) -> str:
        """The tree sha of a commit (what a merge's checks can be reused by)."""
        with self._lock:
            try:
                return self._open().commit(sha).tree.hexsha
            except (git.BadName, ValueError):
                raise SourceError(f"unknown commit {sha}") from None

    def head(self) -> str:
        """The branch head in the mirror (without fetching)."""
        with self._lock:
            return self._head(self._open())

    def new_commits(self, known: set[str], *, limit: int = 500) -> list[CommitInfo]:
        """Commits on the branch's first-parent line not in `known`, oldest first.

        Walking stops at the first known commit: everything before it was seen already.
        A merge commit counts as one change, as it does for people reading `git log
        --first-parent`.
        """
        with self._lock:
            repo = self._open()
            found: list[CommitInfo] = []
            for commit in repo.iter_commits(f"refs/heads/{self.branch}", first_parent=True, max_count=limit):
                if commit.hexsha in known:
                    break
                found.append(self._info(commit))
            return list(reversed(found))

    def info(self, sha: str) -> CommitInfo:
        """Author, message and time of one commit."""
        with self._lock:
            try:
                return self._info(self._open().commit(sha))
            except (git.BadName, ValueError):
                raise SourceError(f"unknown commit {sha}") from None

    @staticmethod
    def _info(commit: git.Commit) -> CommitInfo:
        message = commit.message if isinstance(commit.message, str) else commit.message.decode()
        return CommitInfo(sha=commit.hexsha, author=str(commit.author.name or ""),
                          message=message, committed_at=commit.committed_datetime)

    def has(self, sha: str) -> bool:
        """Whether the mirror holds commit `sha`."""
        with self._lock:
            try:
                self._open().git.cat_file("-e", f"{sha}^{{commit}}")
                return True
            except git.GitCommandError:
                return False

    def archive(self, sha: str, dest: Path) -> Path:
        """Extract the tree of `sha` into `dest` (created; must not exist); fetches if needed."""
        if not self.has(sha):
            self.fetch()
        buffer = io.BytesIO()
        with self._lock:
            try:
                self._open().archive(buffer, treeish=sha, format="tar")
            except git.GitCommandError as exc:
                raise SourceError(f"cannot archive {sha}: {exc.stderr.strip() or exc}") from None
        buffer.seek(0)
        dest.mkdir(parents=True)
        try:
            with tarfile.open(fileobj=buffer) as tar:
                tar.extractall(dest, filter="data")
        except (tarfile.TarError, OSError):
            shutil.rmtree(dest, ignore_errors=True)
            raise
        return dest
