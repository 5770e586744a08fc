"""Which commits go into the next release, and what a release's outcome means for them.

Pure functions over the branch's commits in order (oldest first). The rules:

* A release takes every blocked commit plus at most `max_batch` pending ones, oldest
  first; it deploys the newest of them (git history is cumulative).
* When a release that held one new commit fails, that commit is the culprit (bad).
  When it held several, they all become suspects and the next releases bisect them:
  deploy the middle one; a pass ships everything up to it, a fail moves the upper
  bound down. One suspect left is the culprit.
* Commits after a culprit contain its change, so they wait (blocked) until a newer
  commit arrives, normally the fix or the revert, and then ship with it.
* An operator abort blames nobody: its commits wait for a newer commit too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deployer.model import CommitStatus, ReleaseKind


@dataclass(frozen=True)
class CommitRow:
    sha: str
    status: CommitStatus


@dataclass(frozen=True)
class ReleasePlan:
    kind: ReleaseKind
    sha: str
    commit_shas: tuple[str, ...]


def plan_next_release(commits: Sequence[CommitRow], max_batch: int) -> ReleasePlan | None:
    """The next release to deploy, or None when there is nothing to do."""
    suspects = [c.sha for c in commits if c.status is CommitStatus.SUSPECT]
    if len(suspects) > 1:
        middle = (len(suspects) - 1) // 2
        return ReleasePlan(ReleaseKind.BISECT, suspects[middle], tuple(suspects[: middle + 1]))
    pending = [c.sha for c in commits if c.status is CommitStatus.PENDING][:max_batch]
    if not pending:
        return None
    last = pending[-1]
    chosen = [c.sha for c in commits
              if c.status is CommitStatus.BLOCKED or c.sha in pending]
    index = {c.sha: i for i, c in enumerate(commits)}
    chosen = [sha for sha in chosen if index[sha] <= index[last]]
    return ReleasePlan(ReleaseKind.DEPLOY, last, tuple(chosen))


def settle(commits: Sequence[CommitRow], release: ReleasePlan, *, succeeded: bool,
           blame: bool = True) -> dict[str, CommitStatus]:
    """New statuses for commits after `release` finished; only changed ones are returned.

    `blame=False` (an operator abort) makes the release's commits wait for a newer
    commit instead of being judged.
    """
    if release.kind is ReleaseKind.ROLLBACK:
        return {}  # going back to a known-good version judges no commit
    order = [c.sha for c in commits]
    status = {c.sha: c.status for c in commits}
    changes: dict[str, CommitStatus] = {}
    in_release = list(release.commit_shas)

    def mark(shas: Sequence[str], new: CommitStatus) -> None:
        for sha in shas:
            if status.get(sha) is not new:
                changes[sha] = new
                status[sha] = new

    if succeeded:
        mark(in_release, CommitStatus.SHIPPED)
        suspects = [s for s in order if status[s] is CommitStatus.SUSPECT]
        if len(suspects) == 1:
            _culprit(order, status, suspects[0], mark)
        return changes
    if not blame:
        mark(in_release, CommitStatus.BLOCKED)
        return changes
    if release.kind is ReleaseKind.BISECT:
        suspects = [s for s in order if status[s] is CommitStatus.SUSPECT]
        cut = suspects.index(release.sha)
        mark(suspects[cut + 1:], CommitStatus.BLOCKED)
        if cut == 0:
            _culprit(order, status, release.sha, mark)
        return changes
    fresh = [s for s in in_release if status[s] is CommitStatus.PENDING]
    if len(fresh) <= 1:
        culprit = fresh[0] if fresh else release.sha
        mark([s for s in in_release if s != culprit], CommitStatus.BLOCKED)
        _culprit(order, status, culprit, mark)
    else:
        mark([s for s in in_release if s not in fresh], CommitStatus.BLOCKED)
        mark(fresh, CommitStatus.SUSPECT)
    return changes


def _culprit(order: list[str], status: dict[str, CommitStatus], culprit: str, mark) -> None:  # type: ignore[no-untyped-def]
    """Mark the culprit bad and make every later unfinished commit wait for a fix."""
    mark([culprit], CommitStatus.BAD)
    later = order[order.index(culprit) + 1:]
    mark([s for s in later if status[s] in (CommitStatus.PENDING, CommitStatus.SUSPECT)], CommitStatus.BLOCKED)


def mark_bad(commits: Sequence[CommitRow], sha: str) -> dict[str, CommitStatus]:
    """A human says `sha` is bad: it never ships, and later unshipped commits (which contain it) wait for a fix."""
    order = [c.sha for c in commits]
    status = {c.sha: c.status for c in commits}
    changes: dict[str, CommitStatus] = {}

    def mark(shas: Sequence[str], new: CommitStatus) -> None:
        for s in shas:
            if status.get(s) is not new:
                changes[s] = new
                status[s] = new

    _culprit(order, status, sha, mark)
    return changes


def mark_good(commits: Sequence[CommitRow], sha: str) -> dict[str, CommitStatus]:
    """Undo a bad mark: `sha` may ship again, and commits it held back are pending unless another bad one precedes."""
    order = [c.sha for c in commits]
    status = {c.sha: c.status for c in commits}
    changes: dict[str, CommitStatus] = {sha: CommitStatus.PENDING}
    status[sha] = CommitStatus.PENDING
    for s in order[order.index(sha) + 1:]:
        if status[s] is CommitStatus.BAD:
            break
        if status[s] is CommitStatus.BLOCKED:
            changes[s] = CommitStatus.PENDING
    return changes
