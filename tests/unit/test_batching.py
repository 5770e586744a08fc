"""Release batching and the culprit search, checked against a simulated branch."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from deployer.batching import CommitRow, ReleasePlan, plan_next_release, settle
from deployer.model import CommitStatus, ReleaseKind

C = CommitStatus


def rows(**statuses: CommitStatus) -> list[CommitRow]:
    return [CommitRow(sha, status) for sha, status in statuses.items()]


def test_nothing_to_do() -> None:
    assert plan_next_release([], 3) is None
    assert plan_next_release(rows(a=C.SHIPPED, b=C.BAD, c=C.BLOCKED), 3) is None


def test_batches_at_most_max_pending_commits_oldest_first() -> None:
    plan = plan_next_release(rows(a=C.SHIPPED, b=C.PENDING, c=C.PENDING, d=C.PENDING, e=C.PENDING), 3)
    assert plan == ReleasePlan(ReleaseKind.DEPLOY, "d", ("b", "c", "d"))


def test_blocked_commits_ship_with_the_next_new_commit() -> None:
    plan = plan_next_release(rows(a=C.BAD, b=C.BLOCKED, c=C.PENDING), 3)
    assert plan == ReleasePlan(ReleaseKind.DEPLOY, "c", ("b", "c"))


def test_single_commit_failure_names_the_culprit_and_blocks_what_follows() -> None:
    commits = rows(a=C.PENDING, b=C.PENDING)
    release = ReleasePlan(ReleaseKind.DEPLOY, "a", ("a",))
    assert settle(commits, release, succeeded=False) == {"a": C.BAD, "b": C.BLOCKED}


def test_success_ships_every_commit_of_the_release() -> None:
    commits = rows(a=C.BLOCKED, b=C.PENDING)
    assert settle(commits, ReleasePlan(ReleaseKind.DEPLOY, "b", ("a", "b")), succeeded=True) == {
        "a": C.SHIPPED, "b": C.SHIPPED}


def test_abort_blames_nobody() -> None:
    commits = rows(a=C.PENDING, b=C.PENDING)
    assert settle(commits, ReleasePlan(ReleaseKind.DEPLOY, "b", ("a", "b")), succeeded=False, blame=False) == {
        "a": C.BLOCKED, "b": C.BLOCKED}


def test_failed_fix_is_the_new_culprit_and_blocked_commits_keep_waiting() -> None:
    commits = rows(a=C.BAD, b=C.BLOCKED, fix=C.PENDING)
    assert settle(commits, ReleasePlan(ReleaseKind.DEPLOY, "fix", ("b", "fix")), succeeded=False) == {"fix": C.BAD}


def simulate(n: int, bad: int | None, max_batch: int) -> tuple[dict[str, CommitStatus], int]:
    """Run the release loop over n commits where commit `bad` (if any) breaks everything after it."""
    shas = [f"c{i}" for i in range(n)]
    status = {s: C.PENDING for s in shas}
    releases = 0
    while (plan := plan_next_release([CommitRow(s, status[s]) for s in shas], max_batch)) is not None:
        releases += 1
        assert releases < 4 * n + 5, "the release loop does not terminate"
        head = shas.index(plan.sha)
        broken = bad is not None and head >= bad
        status.update(settle([CommitRow(s, status[s]) for s in shas], plan, succeeded=not broken))
    return status, releases


@given(st.integers(1, 12), st.data(), st.integers(1, 5))
@settings(max_examples=300, deadline=None)
def test_culprit_search_finds_exactly_the_bad_commit(n: int, data: st.DataObject, max_batch: int) -> None:
    bad = data.draw(st.one_of(st.none(), st.integers(0, n - 1)))
    status, _ = simulate(n, bad, max_batch)
    for i in range(n):
        expected = C.SHIPPED if bad is None or i < bad else C.BAD if i == bad else C.BLOCKED
        assert status[f"c{i}"] is expected, (i, bad, status)


def test_bisect_takes_logarithmic_extra_releases() -> None:
    _, releases = simulate(4, 3, 4)
    # one failed batch [c0..c3], then c1 (pass, ships c0 c1), then c2 (pass) -> c3 is the culprit
    assert releases == 3
