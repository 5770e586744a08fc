"""The lead-time planner: batch sizes against backlog and goal, supersession, bad commits."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployer.batching import ReleasePlan
from deployer.model import CommitStatus, ReleaseKind
from deployer.planner import (
    CandidateCommit,
    PlannerConfig,
    TestState,
    arrival_rate,
    choose_batch_size,
    expected_release_duration,
    plan_release,
    supersedes,
)

C = CommitStatus
T = TestState
MIN = 60.0
CONFIG = PlannerConfig(max_batch=3, lead_time_goal_s=30 * MIN, default_release_s=5 * MIN)


def commits(*specs: tuple[str, CommitStatus, TestState, float]) -> list[CandidateCommit]:
    return [CandidateCommit(sha, status, tests, merged) for sha, status, tests, merged in specs]


def backlog(n: int, *, now: float, spacing: float, tests: TestState = T.PASSED) -> list[CandidateCommit]:
    """n pending commits, the newest merged at `now`, one every `spacing` seconds."""
    return [CandidateCommit(f"c{i:03d}", C.PENDING, tests, now - (n - 1 - i) * spacing) for i in range(n)]


def test_one_fresh_commit_ships_alone() -> None:
    decision = plan_release(backlog(1, now=1000, spacing=0), now=1000, recent_release_s=[300], config=CONFIG)
    assert decision.plan == ReleasePlan(ReleaseKind.DEPLOY, "c000", ("c000",))
    assert decision.goal_met and decision.batch_size == 1


def test_a_short_backlog_ships_one_commit_at_a_time_when_the_goal_allows() -> None:
    # 3 commits, 5-min releases: the third ships after 15 min; well within 30.
    decision = plan_release(backlog(3, now=10_000, spacing=60), now=10_000, recent_release_s=[300] * 5,
                            config=CONFIG)
    assert decision.batch_size == 1 and decision.plan is not None and decision.plan.commit_shas == ("c000",)


def test_a_longer_backlog_batches_just_enough_to_meet_the_goal() -> None:
    # 8 commits waiting, 5-min releases: one at a time the last ships after 40 min (> 30); two at a
    # time after 20 min.
    decision = plan_release(backlog(8, now=10_000, spacing=1), now=10_000, recent_release_s=[300] * 5,
                            config=CONFIG)
    assert decision.batch_size == 2 and decision.goal_met
    assert decision.plan is not None and decision.plan.commit_shas == ("c000", "c001")


@pytest.mark.parametrize(("waited_min", "size"), [(0, 1), (15, 2), (18, 3)])
def test_commits_that_already_waited_need_bigger_batches(waited_min: float, size: int) -> None:
    # Six commits merged together `waited_min` ago, 5-min releases, a 30-min goal.
    now = 10_000.0
    commits_ = backlog(6, now=now - waited_min * MIN, spacing=0)
    decision = plan_release(commits_, now=now, recent_release_s=[300] * 5, config=CONFIG)
    assert decision.batch_size == size and decision.goal_met


def test_goal_out_of_reach_takes_max_batch_and_says_so() -> None:
    decision = plan_release(backlog(30, now=10_000, spacing=1), now=10_000, recent_release_s=[300] * 5,
                            config=CONFIG)
    assert decision.batch_size == 3 and not decision.goal_met and "over the" in decision.reason


def test_never_more_than_max_batch() -> None:
    config = PlannerConfig(max_batch=2, lead_time_goal_s=MIN)
    decision = plan_release(backlog(10, now=10_000, spacing=1), now=10_000, recent_release_s=[300], config=config)
    assert decision.batch_size == 2


def test_keeps_up_with_the_arrival_rate() -> None:
    # One commit every 2 min and 5-min releases: one-at-a-time would let the queue grow forever.
    now = 100_000.0
    history = [CandidateCommit(f"s{i}", C.SHIPPED, T.PASSED, now - 3600 + i * 120) for i in range(29)]
    decision = plan_release(history + backlog(3, now=now, spacing=1), now=now, recent_release_s=[300] * 5,
                            config=CONFIG)
    assert decision.batch_size == 3


def test_only_tested_commits_ship_and_an_untested_one_holds_the_ones_behind_it() -> None:
    now = 1000.0
    c = commits(("a", C.PENDING, T.PASSED, now), ("b", C.PENDING, T.RUNNING, now), ("c", C.PENDING, T.PASSED, now))
    decision = plan_release(c, now=now, recent_release_s=[], config=PlannerConfig(max_batch=3, lead_time_goal_s=1))
    assert decision.plan is not None and decision.plan.commit_shas == ("a",)
    waiting = plan_release(c[1:], now=now, recent_release_s=[], config=CONFIG)
    assert waiting.plan is None and "being tested" in waiting.reason


@pytest.mark.parametrize(("state", "words"), [(T.NOT_STARTED, "waiting to be tested"), (T.RUNNING, "being tested"),
                                               (T.FAILED, "failed its tests")])
def test_says_why_nothing_ships(state: TestState, words: str) -> None:
    decision = plan_release(commits(("a", C.PENDING, state, 0.0)), now=1.0, recent_release_s=[], config=CONFIG)
    assert decision.plan is None and words in decision.reason


def test_nothing_new() -> None:
    decision = plan_release(commits(("a", C.SHIPPED, T.PASSED, 0.0), ("b", C.BAD, T.FAILED, 1.0)), now=2.0,
                            recent_release_s=[], config=CONFIG)
    assert decision.plan is None and decision.reason == "no new commits"


def test_bad_commits_never_ship_and_blocked_ones_ship_with_the_fix() -> None:
    c = commits(("a", C.SHIPPED, T.PASSED, 0), ("b", C.BAD, T.PASSED, 1), ("c", C.BLOCKED, T.PASSED, 2),
                ("d", C.PENDING, T.PASSED, 3))
    decision = plan_release(c, now=10, recent_release_s=[], config=CONFIG)
    assert decision.plan == ReleasePlan(ReleaseKind.DEPLOY, "d", ("c", "d"))


def test_blocked_commits_wait_while_nothing_newer_passed() -> None:
    c = commits(("b", C.BAD, T.PASSED, 1), ("c", C.BLOCKED, T.PASSED, 2), ("d", C.PENDING, T.RUNNING, 3))
    assert plan_release(c, now=10, recent_release_s=[], config=CONFIG).plan is None


def test_a_bisection_goes_first() -> None:
    c = commits(("a", C.SUSPECT, T.PASSED, 0), ("b", C.SUSPECT, T.PASSED, 1), ("c", C.SUSPECT, T.PASSED, 2),
                ("d", C.PENDING, T.PASSED, 3))
    decision = plan_release(c, now=10, recent_release_s=[], config=CONFIG)
    assert decision.plan is not None and decision.plan.kind is ReleaseKind.BISECT


def test_release_duration_is_the_median_of_recent_releases() -> None:
    config = PlannerConfig(history=3, default_release_s=99)
    assert expected_release_duration([], config) == 99
    assert expected_release_duration([10, 1000, 20, 30, 40], config) == 30
    assert expected_release_duration([0, -1], config) == 99


def test_arrival_rate_counts_the_window_only() -> None:
    assert arrival_rate([0, 50, 90, 100], now=100, window_s=50) == pytest.approx(3 / 50)
    assert arrival_rate([1, 2], now=100, window_s=0) == 0.0


def test_supersession_only_replaces_a_deploy_with_a_newer_deploy() -> None:
    order = {"a": 0, "b": 1, "c": 2}
    queued = ReleasePlan(ReleaseKind.DEPLOY, "a", ("a",))
    assert supersedes(queued, ReleasePlan(ReleaseKind.DEPLOY, "b", ("a", "b")), order)
    assert not supersedes(queued, ReleasePlan(ReleaseKind.DEPLOY, "a", ("a",)), order)
    assert not supersedes(ReleasePlan(ReleaseKind.BISECT, "b", ("a", "b")),
                          ReleasePlan(ReleaseKind.DEPLOY, "c", ("c",)), order)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        PlannerConfig(max_batch=0)
    with pytest.raises(ValueError, match="goal"):
        PlannerConfig(lead_time_goal_s=0)
    with pytest.raises(ValueError, match="nothing is ready"):
        choose_batch_size([1.0], 0, 60, 0, CONFIG)


@settings(max_examples=300, deadline=None)
@given(ages=st.lists(st.floats(0, 7200), min_size=1, max_size=30).map(lambda a: sorted(a, reverse=True)),
       ready_share=st.floats(0.01, 1), release_s=st.floats(10, 1200), rate=st.floats(0, 0.05),
       max_batch=st.integers(1, 5), goal=st.floats(60, 7200))
def test_batch_size_properties(ages: list[float], ready_share: float, release_s: float, rate: float,
                               max_batch: int, goal: float) -> None:
    ready = max(1, int(len(ages) * ready_share))
    config = PlannerConfig(max_batch=max_batch, lead_time_goal_s=goal)
    size, worst, met = choose_batch_size(ages, ready, release_s, rate, config)
    assert 1 <= size <= min(max_batch, ready)
    predicted = max(a + math.ceil((i + 1) / size) * release_s for i, a in enumerate(ages))
    assert worst == pytest.approx(predicted)
    if met:
        assert worst <= goal
        # As few as possible: every smaller batch either misses the goal or falls behind the arrivals.
        keep_up = max(1, math.ceil(rate * release_s - 1e-9))
        for smaller in range(1, size):
            smaller_worst = max(a + math.ceil((i + 1) / smaller) * release_s for i, a in enumerate(ages))
            assert smaller_worst > goal or smaller < min(keep_up, min(max_batch, ready))
    else:
        assert size == min(max_batch, ready)
