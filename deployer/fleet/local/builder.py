"""Turn a commit into a release directory that local hosts run from (and Docker images are built from).

Release directories are kept (up to a limit) so that a rollback never rebuilds:
going back to a known-good version only restarts hosts on a folder that is there.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from deployer.exceptions import BuildError, SourceError
from deployer.fleet.base import Artifact
from deployer.source import GitSource

log = logging.getLogger(__name__)
REVISION_FILE = "REVISION"


class ReleaseBuilder:
    """Builds `releases_dir/<sha>/` from the source: the tree of the commit plus REVISION."""

    def __init__(self, *, source: GitSource, releases_dir: Path) -> None:
        self.source = source
        self.releases_dir = Path(releases_dir)

    def location(self, sha: str) -> Path:
        """Where the release directory of `sha` lives."""
        return self.releases_dir / sha

    def existing(self, sha: str) -> Artifact | None:
        """The artifact of `sha` if it was built already."""
        path = self.location(sha)
        revision = path / REVISION_FILE
        if revision.is_file() and revision.read_text().strip() == sha:
            return Artifact(version=sha, location=str(path))
        return None

    def build(self, sha: str) -> Artifact:
        """Build (or reuse) the release directory of `sha`; safe to call twice or concurrently."""
        found = self.existing(sha)
        if found is not None:
            return found
        self.releases_dir.mkdir(parents=True, exist_ok=True)
        # Build beside the final place and rename: a crash never leaves a half release
        # where a host could be started from.
        scratch = self.releases_dir / f".build-{sha[:12]}-{uuid.uuid4().hex[:8]}"
        try:
            self.source.archive(sha, scratch)
            if not any(scratch.iterdir()):
                raise BuildError(f"commit {sha[:12]} has an empty tree")
            (scratch / REVISION_FILE).write_text(sha + "\n")
            final = self.location(sha)
            if final.exists() and self.existing(sha) is None:
                shutil.rmtree(final)  # not a finished release of this commit (no matching REVISION)
            try:
                scratch.rename(final)
            except OSError:
                # A concurrent build of the same commit finished first; hosts may already run
                # from its directory, so it stays and this copy is dropped.
                if self.existing(sha) is None:
                    raise
        except SourceError as exc:
            raise BuildError(str(exc)) from None
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)
        log.info("built release %s in %s", sha[:12], final)
        return Artifact(version=sha, location=str(final))

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Delete release directories whose sha is not in `keep`; returns what was removed."""
        wanted = set(keep)
        removed = []
        if not self.releases_dir.is_dir():
            return removed
        for path in self.releases_dir.iterdir():
            if path.is_dir() and path.name not in wanted:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed
