"""The lead-time planner, pure: which tested commits go into the next release.

Every merged commit's tests run ahead, as soon as it is discovered. The planner then picks
the next release from the commits whose tests passed, oldest first (deploying a commit
deploys everything before it), with as few commits as possible, never more than
`max_batch`, but enough that every commit waiting now reaches the whole fleet within the
lead-time goal, given how long releases have recently taken and how fast commits arrive.

Fewer commits per release means a failure blames fewer commits; more commits per release
means the queue drains faster. The rule, for backlog commits 1..N (oldest first), a batch
size b and a release duration D: commit i ships at the end of release ceil(i / b), so its
lead time is `age_i + ceil(i / b) * D`. The planner takes the smallest b that keeps every
one within the goal and, so that the queue does not grow without end, at least the number
of commits that arrive during one release. When no b is enough it takes `max_batch` and
says the goal is out of reach.

Bisection of a failed batch, bad commits and the commits behind them keep the rules of
`deployer.batching`: a culprit never ships and its followers wait for a fix or a revert.
No I/O, no clock: `now` and the history are passed in.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from deployer.batching import CommitRow, ReleasePlan, plan_next_release
from deployer.model import CommitStatus, ReleaseKind


class TestState(str, Enum):
    """Where a commit's ahead-of-time test run stands."""

    __test__ = False  # not a pytest test class

    NOT_STARTED = "not_started"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True)
class CandidateCommit:
    """One commit of the branch, oldest first, as the planner sees it."""

    sha: str
    status: CommitStatus
    tests: TestState
    merged_at: float  # seconds on the same clock as `now`


@dataclass(frozen=True)
class PlannerConfig:
    max_batch: int = 3
    lead_time_goal_s: float = 30 * 60.0
    default_release_s: float = 120.0  # used until releases have been timed
    history: int = 10                 # how many recent releases estimate the next one's duration

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if self.lead_time_goal_s <= 0:
            raise ValueError("the lead-time goal must be positive")


@dataclass(frozen=True)
class Decision:
    """The next release (`plan`), or why there is none (`waiting`), and how it was chosen."""

    plan: ReleasePlan | None
    reason: str
    batch_size: int = 0
    expected_release_s: float = 0.0
    predicted_max_lead_s: float = 0.0
    goal_met: bool = True


def expected_release_duration(recent_s: Sequence[float], config: PlannerConfig) -> float:
    """The median duration of the last `history` releases (robust to one slow release)."""
    recent = [d for d in recent_s if d > 0][-config.history:]
    return statistics.median(recent) if recent else config.default_release_s


def arrival_rate(merged_at: Sequence[float], now: float, *, window_s: float) -> float:
    """Commits merged per second over the last `window_s` seconds."""
    if window_s <= 0:
        return 0.0
    return sum(1 for t in merged_at if now - window_s <= t <= now) / window_s


def choose_batch_size(ages_s: Sequence[float], ready: int, release_s: float, rate_per_s: float,
                      config: PlannerConfig) -> tuple[int, float, bool]:
    """(batch size, predicted worst lead time, goal met) for a backlog with these ages, oldest first.

    `ready` is how many of the oldest commits can ship now (tests passed); the batch never
    exceeds it.
    """
    if ready < 1:
        raise ValueError("nothing is ready to ship")
    limit = min(config.max_batch, ready)
    keep_up = max(1, math.ceil(rate_per_s * release_s - 1e-9))

    def worst(b: int) -> float:
        return max(age + math.ceil((i + 1) / b) * release_s for i, age in enumerate(ages_s))

    for b in range(1, limit + 1):
        if b >= min(keep_up, limit) and worst(b) <= config.lead_time_goal_s:
            return b, worst(b), True
    return limit, worst(limit), False


def plan_release(commits: Sequence[CandidateCommit], *, now: float, recent_release_s: Sequence[float],
                 config: PlannerConfig, rate_window_s: float = 3600.0) -> Decision:
    """Choose the next release, or say why nothing can ship now."""
    rows = [CommitRow(c.sha, c.status) for c in commits]
    bisect = plan_next_release(rows, config.max_batch)
    if bisect is not None and bisect.kind is ReleaseKind.BISECT:
        return Decision(plan=bisect, reason="bisecting a failed batch to find the culprit",
                        batch_size=len(bisect.commit_shas))
    pending = [c for c in commits if c.status is CommitStatus.PENDING]
    if not pending:
        return Decision(plan=None, reason="no new commits")
    ready = 0
    for commit in pending:
        if commit.tests is not TestState.PASSED:
            break
        ready += 1
    if ready == 0:
        first = pending[0]
        state = {TestState.NOT_STARTED: "waiting to be tested", TestState.RUNNING: "being tested",
                 TestState.FAILED: "failed its tests"}[first.tests]
        return Decision(plan=None, reason=f"the oldest new commit {first.sha[:12]} is {state}")
    release_s = expected_release_duration(recent_release_s, config)
    rate = arrival_rate([c.merged_at for c in commits], now, window_s=rate_window_s)
    ages = [max(0.0, now - c.merged_at) for c in pending]
    size, worst, met = choose_batch_size(ages, ready, release_s, rate, config)
    chosen = {c.sha for c in pending[:size]}
    last = pending[size - 1].sha
    order = {c.sha: i for i, c in enumerate(commits)}
    # Commits that waited behind a culprit ship with the first newer commit (the fix or revert).
    shas = tuple(c.sha for c in commits
                 if order[c.sha] <= order[last] and (c.sha in chosen or c.status is CommitStatus.BLOCKED))
    why = (f"{size} of {len(pending)} waiting commit(s) ({ready} tested): every one reaches the fleet within "
           f"{worst / 60:.1f} min at {release_s:.0f} s per release" if met else
           f"{size} commit(s), the most allowed: the backlog needs {worst / 60:.1f} min, over the "
           f"{config.lead_time_goal_s / 60:.0f}-min goal")
    return Decision(plan=ReleasePlan(ReleaseKind.DEPLOY, last, shas), reason=why, batch_size=size,
                    expected_release_s=release_s, predicted_max_lead_s=worst, goal_met=met)


def supersedes(queued: ReleasePlan, newer: ReleasePlan, order: dict[str, int]) -> bool:
    """Whether `newer` should replace a release that is queued and has not started.

    Only ordinary deploys are replaced, and only by a plan that reaches further along the
    branch (a bisection step is never thrown away).
    """
    if queued.kind is not ReleaseKind.DEPLOY or newer.kind is not ReleaseKind.DEPLOY:
        return False
    return order.get(newer.sha, -1) > order.get(queued.sha, -1)
