"""The merge gate's pure decision: every refusal, in order, with a reason that says what to do."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deployer.gate import GateFacts, KnownBad, LockFact, Refusal, addresses, decide, referenced_shas

SHA = "c" * 40
CULPRIT = "badc0ffee1234567890abcdef1234567890abcd"
OK = {"tests": ("success", "tests passed"), "bench": ("success", "no route worse")}


def facts(**kw: object) -> GateFacts:
    base: dict[str, object] = dict(branch="main", sha=SHA, protected=True, required=("tests", "bench"), checks=OK)
    base.update(kw)
    return GateFacts(**base)  # type: ignore[arg-type]


def test_a_checked_commit_may_be_merged() -> None:
    decision = decide(facts())
    assert decision.allowed and decision.refusal is None and "tests, bench" in decision.reason


def test_other_branches_are_never_gated() -> None:
    decision = decide(facts(branch="feature/x", protected=False, lock=LockFact("ana", "incident", "x"), checks={}))
    assert decision.allowed and "never gated" in decision.reason


def test_a_lock_names_who_why_since_and_until() -> None:
    decision = decide(facts(lock=LockFact("token:ana", "incident 42", "2026-11-30 04:00 UTC", "05:00 UTC")))
    assert not decision.allowed and decision.refusal is Refusal.LOCKED
    for part in ("token:ana", "incident 42", "since 2026-11-30 04:00 UTC", "until 05:00 UTC", "unlocked"):
        assert part in decision.reason


def test_a_freeze_refuses_like_a_lock_and_says_until_when() -> None:
    frozen = LockFact("ana", "black friday", "2026-11-27 00:00 UTC", "2026-11-30 06:00 UTC")
    decision = decide(facts(freeze=frozen))
    assert not decision.allowed and decision.refusal is Refusal.FROZEN
    for part in ("frozen by ana", "black friday", "since 2026-11-27 00:00 UTC", "until 2026-11-30 06:00 UTC",
                 "after the freeze ends"):
        assert part in decision.reason
    open_ended = decide(facts(freeze=LockFact("ana", "incident", "now")))
    assert "until someone unfreezes" in open_ended.reason
    assert decide(facts(branch="topic", protected=False, freeze=frozen)).allowed


def test_known_bad_main_refuses_unless_the_commit_reverts_or_fixes_the_culprit() -> None:
    bad = KnownBad(release_id=7, culprits=(CULPRIT,), reason="wave 0 analysis: fail")
    refused = decide(facts(known_bad=bad, message="add a filter"))
    assert refused.refusal is Refusal.KNOWN_BAD and "release 7" in refused.reason and CULPRIT[:12] in refused.reason
    for message in (f"Reverts {CULPRIT[:7]}", f"fixes {CULPRIT}",
                    f'Revert "x"\n\nThis reverts commit {CULPRIT}.', f"Fix: thing\n\nFixes: {CULPRIT[:10]}"):
        assert decide(facts(known_bad=bad, message=message)).allowed, message
    assert not decide(facts(known_bad=bad, message=f"Reverts {CULPRIT[:6]}")).allowed  # too short to be sure
    assert not decide(facts(known_bad=bad, message="Reverts 1234567")).allowed      # another commit


def test_a_commit_that_failed_its_tests_ahead_makes_main_known_bad_until_reverted() -> None:
    bad = KnownBad(release_id=0, culprits=(CULPRIT,), reason="its tests failed ahead of release")
    decision = decide(facts(known_bad=bad))
    assert not decision.allowed and decision.refusal is Refusal.KNOWN_BAD
    assert "marked bad before its release" in decision.reason and "release 0" not in decision.reason
    assert f"Reverts {CULPRIT[:12]}" in decision.reason
    assert decide(facts(known_bad=bad, message=f"Revert it\n\nThis reverts commit {CULPRIT}.")).allowed


def test_a_long_backlog_makes_merges_wait() -> None:
    decision = decide(facts(backlog=21, max_backlog=20))
    assert decision.refusal is Refusal.BACKLOG and "21" in decision.reason and "limit 20" in decision.reason
    assert decide(facts(backlog=20, max_backlog=20)).allowed


@pytest.mark.parametrize(("checks", "refusal", "words"), [
    ({}, Refusal.CHECKS_MISSING, "never checked"),
    ({"tests": ("success", "")}, Refusal.CHECKS_MISSING, "bench missing"),
    ({"tests": ("running", ""), "bench": ("queued", "")}, Refusal.CHECKS_RUNNING, "still running"),
    ({"tests": ("success", ""), "bench": ("failure", "route feed: CPU per request +31%")}, Refusal.CHECKS_FAILED,
     "route feed: CPU per request +31%"),
    ({"tests": ("error", "could not run"), "bench": ("success", "")}, Refusal.CHECKS_FAILED, "could not run"),
])
def test_checks_must_have_passed(checks: dict[str, tuple[str, str]], refusal: Refusal, words: str) -> None:
    decision = decide(facts(checks=checks))
    assert not decision.allowed and decision.refusal is refusal and words in decision.reason


def test_the_order_of_refusals_lock_first_then_known_bad_then_backlog_then_checks() -> None:
    bad = KnownBad(release_id=3, culprits=(CULPRIT,))
    lock = LockFact("ana", "freeze", "now")
    frozen = LockFact("ben", "release freeze", "now")
    assert decide(facts(lock=lock, freeze=frozen, known_bad=bad, backlog=99, checks={})).refusal is Refusal.LOCKED
    assert decide(facts(freeze=frozen, known_bad=bad, backlog=99, checks={})).refusal is Refusal.FROZEN
    assert decide(facts(known_bad=bad, backlog=99, checks={})).refusal is Refusal.KNOWN_BAD
    assert decide(facts(backlog=99, checks={})).refusal is Refusal.BACKLOG


@given(st.text(max_size=300))
def test_any_message_is_read_without_error_and_references_are_hex(message: str) -> None:
    refs = referenced_shas(message)
    assert all(len(r) >= 7 and set(r) <= set("0123456789abcdef") for r in refs)
    assert addresses(message, ()) is False


@given(st.booleans(), st.booleans(), st.booleans(), st.integers(0, 50),
       st.sampled_from(["success", "failure", "running", "missing"]))
def test_decisions_are_total_and_a_refusal_always_has_a_reason(locked: bool, frozen: bool, bad: bool, backlog: int,
                                                               state: str) -> None:
    checks = {} if state == "missing" else {"tests": (state, ""), "bench": (state, "")}
    decision = decide(facts(lock=LockFact("a", "b", "c") if locked else None,
                            freeze=LockFact("d", "e", "f", "g") if frozen else None,
                            known_bad=KnownBad(1, (CULPRIT,)) if bad else None, backlog=backlog, checks=checks))
    assert decision.allowed == (not locked and not frozen and not bad and backlog <= 20 and state == "success")
    assert decision.reason and "\n" not in decision.reason
    assert (decision.refusal is None) == decision.allowed
