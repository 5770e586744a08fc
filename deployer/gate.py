"""The merge gate's decision, pure: facts in, allowed or one line saying why not and what to do.

No I/O and no clock: the service gathers the facts (lock, last release, backlog, checks)
and this module decides, so every rule is tested exhaustively without a database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

# "Reverts <sha>", "Fixes <sha>" (any case) and git revert's own "This reverts commit <sha>."
_REFERENCE = re.compile(r"\b(?:reverts?|fix(?:es|ed)?|this reverts commit)\s*:?\s+([0-9a-f]{7,64})\b",
                        re.IGNORECASE)
MIN_SHA = 7


class Refusal(str, Enum):
    """Why a merge is refused; the value is stable for hooks and reports."""

    LOCKED = "locked"
    FROZEN = "frozen"
    KNOWN_BAD = "known_bad"
    BACKLOG = "backlog"
    CHECKS_MISSING = "checks_missing"
    CHECKS_RUNNING = "checks_running"
    CHECKS_FAILED = "checks_failed"


@dataclass(frozen=True)
class LockFact:
    holder: str
    reason: str
    since: str  # already formatted by the caller (the clock is not ours)
    until: str | None = None


@dataclass(frozen=True)
class KnownBad:
    """The last release failed (or, `release_id` 0, a merged commit failed its tests ahead of any release);
    `culprits` are the commits blamed for it (or all it carried)."""

    release_id: int
    culprits: tuple[str, ...]
    reason: str = ""


@dataclass(frozen=True)
class GateFacts:
    branch: str
    sha: str
    protected: bool
    message: str = ""                       # messages of the commits being merged
    lock: LockFact | None = None
    freeze: LockFact | None = None          # an ad-hoc deploy freeze refuses merges like a lock
    known_bad: KnownBad | None = None
    backlog: int = 0
    max_backlog: int = 20
    required: Sequence[str] = ()
    checks: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # name -> (state, detail)


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reason: str
    refusal: Refusal | None = None


def referenced_shas(message: str) -> set[str]:
    """Lower-case sha prefixes the message says it reverts or fixes."""
    return {m.group(1).lower() for m in _REFERENCE.finditer(message)}


def addresses(message: str, culprits: Sequence[str]) -> bool:
    """True when the message reverts or fixes one of the culprits (by a prefix of at least 7 characters)."""
    refs = referenced_shas(message)
    return any(c.lower().startswith(r) for r in refs for c in culprits if len(r) >= MIN_SHA)


def decide(facts: GateFacts) -> GateDecision:
    """Whether pushing or merging `facts.sha` to `facts.branch` is allowed now."""
    short = facts.sha[:12]
    if not facts.protected:
        return GateDecision(True, f"{facts.branch} is not a protected branch; it is never gated")
    if facts.lock is not None:
        lock = facts.lock
        until = f" until {lock.until}" if lock.until else ""
        return GateDecision(False, f"deploys are locked by {lock.holder} since {lock.since}{until}: "
                                   f"{lock.reason or 'no reason given'}; merge after it is unlocked",
                            Refusal.LOCKED)
    if facts.freeze is not None:
        freeze = facts.freeze
        until = f"until {freeze.until}" if freeze.until else "until someone unfreezes"
        return GateDecision(False, f"deploys are frozen by {freeze.holder} since {freeze.since} {until}: "
                                   f"{freeze.reason or 'no reason given'}; merge after the freeze ends",
                            Refusal.FROZEN)
    if facts.known_bad is not None and not addresses(facts.message, facts.known_bad.culprits):
        bad = facts.known_bad
        names = ", ".join(c[:12] for c in bad.culprits) or "unknown"
        # Release 0: no release failed; the culprit was marked bad before one (its tests failed ahead, or by hand).
        failed = f"release {bad.release_id} failed" if bad.release_id else "a merged commit was marked bad before its release"
        return GateDecision(False, f"{facts.branch} is known-bad: {failed}"
                                   f"{' (' + bad.reason + ')' if bad.reason else ''}, culprit {names}; "
                                   f"merge a commit that says \"Reverts {bad.culprits[0][:12] if bad.culprits else '<sha>'}\" "
                                   f"or \"Fixes <sha>\" (or a git revert) first", Refusal.KNOWN_BAD)
    if facts.backlog > facts.max_backlog:
        return GateDecision(False, f"{facts.backlog} merged commits are not deployed yet (limit "
                                   f"{facts.max_backlog}); wait for the pipeline to catch up", Refusal.BACKLOG)
    missing, running, failed = [], [], []
    for name in facts.required:
        state, detail = facts.checks.get(name, ("missing", ""))
        if state == "missing":
            missing.append(name)
        elif state in ("queued", "running"):
            running.append(name)
        elif state != "success":
            failed.append(f"{name}: {detail or state}")
    if failed:
        return GateDecision(False, f"checks failed for {short}: {'; '.join(failed)}; push a fix and wait for its "
                                   f"checks", Refusal.CHECKS_FAILED)
    if missing:
        return GateDecision(False, f"{short} was never checked ({', '.join(missing)} missing); push it to a "
                                   f"branch first and merge once its checks pass", Refusal.CHECKS_MISSING)
    if running:
        return GateDecision(False, f"checks of {short} are still running ({', '.join(running)}); merge once "
                                   f"they pass", Refusal.CHECKS_RUNNING)
    passed = ", ".join(facts.required) or "none required"
    return GateDecision(True, f"{short} may be merged to {facts.branch} (checks: {passed})")
