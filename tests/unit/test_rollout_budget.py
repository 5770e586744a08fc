"""Capacity-budgeted waves: the pure planner, checked by properties and by simulated waves."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployer.rollout_budget import AVAILABLE, Budget, HostPhase, next_batch, resolve_budget

P = HostPhase


# --- resolving counts and shares ---------------------------------------------------

@pytest.mark.parametrize(("size", "unavailable", "surge", "expected"), [
    (10, "25%", "25%", Budget(2, 3, 0)),          # unavailability rounds down, surge up (Kubernetes)
    (10_000, "5%", 0, Budget(500, 0, 0)),
    (30, "10%", "10%", Budget(3, 3, 0)),          # no float artefacts: 10% of 30 is 3 both ways
    (3, "10%", 0, Budget(1, 0, 0)),               # a share that rounds to nothing still lets one through
    (4, 2, 1, Budget(2, 1, 0)),
    (4, "2", "0", Budget(2, 0, 0)),
    (4, 10, 0, Budget(4, 0, 0)),                  # never more than the fleet
])
def test_resolve_budget(size: int, unavailable: int | str, surge: int | str, expected: Budget) -> None:
    assert resolve_budget(size, max_unavailable=unavailable, max_surge=surge) == expected


def test_floor_is_a_share_rounded_up() -> None:
    assert resolve_budget(10, max_unavailable="50%", max_surge=0, min_healthy="75%").min_healthy == 8


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_unavailable": "x%", "max_surge": 0}, "max_unavailable: \"x%\" is not a share"),
    ({"max_unavailable": "150%", "max_surge": 0}, "not between 0% and 100%"),
    ({"max_unavailable": -1, "max_surge": 0}, "negative"),
    ({"max_unavailable": 1.5, "max_surge": 0}, "not a whole number"),
    ({"max_unavailable": True, "max_surge": 0}, "not a count or a share"),
    ({"max_unavailable": 1, "max_surge": "many"}, "max_surge: \"many\""),
    ({"max_unavailable": 1, "max_surge": 0, "min_healthy": "100%"}, "no host could ever be replaced"),
])
def test_bad_budgets_name_the_field_and_the_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_budget(10, **kwargs)  # type: ignore[arg-type]


def test_a_budget_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot both be 0"):
        Budget(0, 0, 0)


# --- one decision ------------------------------------------------------------------

def fleet(n: int, phase: HostPhase = P.SERVING) -> dict[str, HostPhase]:
    return {f"h{i:05d}": phase for i in range(n)}


def test_starts_as_many_as_the_budget_allows_in_rollout_order() -> None:
    phases = fleet(10)
    decision = next_batch(wave=list(phases), phases=phases, budget=Budget(3, 0, 0), surge_capable=False)
    assert decision.replace == ("h00000", "h00001", "h00002") and decision.surge == ()


def test_surge_first_then_unavailability() -> None:
    phases = fleet(10)
    decision = next_batch(wave=list(phases), phases=phases, budget=Budget(1, 2, 0), surge_capable=True)
    assert decision.surge == ("h00000", "h00001") and decision.replace == ("h00002",)


def test_surge_is_ignored_by_a_backend_that_cannot_run_two_instances() -> None:
    phases = fleet(10)
    decision = next_batch(wave=list(phases), phases=phases, budget=Budget(1, 2, 0), surge_capable=False)
    assert decision.surge == () and decision.replace == ("h00000",)
    only_surge = next_batch(wave=list(phases), phases=phases, budget=Budget(0, 2, 0), surge_capable=False)
    assert only_surge.replace == ("h00000",), "a surge-only budget still moves one host at a time"


def test_hosts_outside_the_wave_that_are_down_use_the_budget() -> None:
    phases = fleet(10) | {"h00009": P.UNHEALTHY}
    decision = next_batch(wave=["h00000", "h00001"], phases=phases, budget=Budget(2, 0, 0), surge_capable=False)
    assert decision.replace == ("h00000",)


def test_the_floor_wins_over_the_budget() -> None:
    phases = fleet(10)
    decision = next_batch(wave=list(phases), phases=phases, budget=Budget(5, 0, 8), surge_capable=False)
    assert len(decision.replace) == 2


def test_a_down_host_of_the_wave_is_replaced_even_when_the_budget_is_used() -> None:
    phases = fleet(4) | {"h00000": P.UNHEALTHY, "h00001": P.REPLACING}
    decision = next_batch(wave=["h00000", "h00001", "h00002"], phases=phases, budget=Budget(1, 0, 0),
                          surge_capable=False)
    assert decision.replace == ("h00000",)


def test_a_failed_host_stops_the_wave_whatever_the_parallelism() -> None:
    phases = fleet(100) | {"h00003": P.FAILED}
    decision = next_batch(wave=list(phases), phases=phases, budget=Budget(50, 50, 0), surge_capable=True)
    assert decision.start == () and decision.stopped and "h00003" in decision.stopped


def test_complete_only_when_every_wave_host_is_done() -> None:
    phases = fleet(4) | {"h00000": P.DONE, "h00001": P.REPLACING}
    waiting = next_batch(wave=["h00000", "h00001"], phases=phases, budget=Budget(1, 0, 0), surge_capable=False)
    assert not waiting.complete and waiting.waiting
    phases["h00001"] = P.DONE
    assert next_batch(wave=["h00000", "h00001"], phases=phases, budget=Budget(1, 0, 0),
                      surge_capable=False).complete


def test_waits_with_a_reason_when_the_budget_is_used() -> None:
    phases = fleet(4) | {"h00000": P.REPLACING}
    decision = next_batch(wave=list(phases), phases=phases, budget=Budget(1, 0, 0), surge_capable=False)
    assert decision.start == () and not decision.complete and "budget in use" in (decision.waiting or "")


# --- properties over any fleet state -----------------------------------------------

phases_strategy = st.lists(st.sampled_from(list(HostPhase)), min_size=1, max_size=40)


@st.composite
def situations(draw: st.DrawFn) -> tuple[list[str], dict[str, HostPhase], Budget, bool]:
    states = draw(phases_strategy)
    phases = {f"h{i:03d}": p for i, p in enumerate(states)}
    names = list(phases)
    wave = draw(st.lists(st.sampled_from(names), unique=True, min_size=1))
    unavailable = draw(st.integers(0, len(names)))
    surge = draw(st.integers(0 if unavailable else 1, len(names)))
    floor = draw(st.integers(0, len(names)))
    return wave, phases, Budget(unavailable, surge, floor), draw(st.booleans())


def apply(phases: dict[str, HostPhase], decision_surge: tuple[str, ...],
          decision_replace: tuple[str, ...]) -> dict[str, HostPhase]:
    after = dict(phases)
    after.update({h: P.SURGING for h in decision_surge})
    after.update({h: P.REPLACING for h in decision_replace})
    return after


@settings(max_examples=400, deadline=None)
@given(situations())
def test_never_beyond_the_budget_nor_below_the_floor(case: tuple[list[str], dict[str, HostPhase], Budget, bool]) \
        -> None:
    wave, phases, budget, surge_capable = case
    decision = next_batch(wave=wave, phases=phases, budget=budget, surge_capable=surge_capable)
    after = apply(phases, decision.surge, decision.replace)

    def unavailable(p: dict[str, HostPhase]) -> int:
        return sum(1 for v in p.values() if v not in AVAILABLE)

    def available(p: dict[str, HostPhase]) -> int:
        return sum(1 for v in p.values() if v in AVAILABLE)

    limit = budget.max_unavailable if surge_capable or budget.max_unavailable else 1
    assert unavailable(after) <= max(limit, unavailable(phases))
    assert available(after) >= min(available(phases), budget.min_healthy)
    assert sum(1 for v in after.values() if v is P.SURGING) <= max(
        budget.max_surge if surge_capable else 0, sum(1 for v in phases.values() if v is P.SURGING))
    assert set(decision.start) <= set(wave), "only hosts of the wave are touched"
    assert all(phases[h] in (P.SERVING, P.UNHEALTHY) for h in decision.start), "nothing is started twice"
    if any(phases[h] is P.FAILED for h in wave):
        assert decision.start == () and decision.stopped
    if decision.complete:
        assert all(phases[h] is P.DONE for h in wave)


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 60), st.integers(0, 10), st.integers(0, 10), st.booleans())
def test_a_healthy_fleet_always_makes_progress(size: int, unavailable: int, surge: int, surge_capable: bool) -> None:
    if unavailable == 0 and surge == 0:
        surge = 1
    phases = fleet(size)
    decision = next_batch(wave=list(phases), phases=phases,
                          budget=Budget(min(unavailable, size), surge, 0), surge_capable=surge_capable)
    assert decision.start, "an idle, healthy fleet with a budget must start something"


# --- whole waves on a simulated fleet ----------------------------------------------

def simulate(size: int, budget: Budget, *, surge_capable: bool, fail: str | None = None,
             seed: int = 0) -> tuple[int, dict[str, HostPhase], str | None, int]:
    """Drive one 100% wave to its end; each replacement takes 1-3 steps. Returns (steps, phases, stop, peak)."""
    rng = random.Random(seed)
    phases = fleet(size)
    wave = list(phases)
    remaining: dict[str, int] = {}
    peak_unavailable = 0
    for step in range(10 * size + 10):
        decision = next_batch(wave=wave, phases=phases, budget=budget, surge_capable=surge_capable)
        if decision.complete or decision.stopped:
            return step, phases, decision.stopped, peak_unavailable
        for host in decision.surge:
            phases[host] = P.SURGING
            remaining[host] = rng.randint(1, 3)
        for host in decision.replace:
            phases[host] = P.REPLACING
            remaining[host] = rng.randint(1, 3)
        peak_unavailable = max(peak_unavailable, sum(1 for v in phases.values() if v not in AVAILABLE))
        for host in list(remaining):
            remaining[host] -= 1
            if remaining[host] == 0:
                del remaining[host]
                phases[host] = P.FAILED if host == fail else P.DONE
    raise AssertionError("the wave never ended")


@pytest.mark.parametrize("surge_capable", [False, True])
def test_ten_thousand_hosts_finish_within_the_budget(surge_capable: bool) -> None:
    budget = resolve_budget(10_000, max_unavailable="5%", max_surge="0%" if not surge_capable else "5%")
    steps, phases, stopped, peak = simulate(10_000, budget, surge_capable=surge_capable)
    assert stopped is None and all(p is P.DONE for p in phases.values())
    assert peak <= 500
    # About size / parallelism rounds of 1-3 steps each, not one host after another.
    assert steps <= 3 * 10_000 // (500 if not surge_capable else 1000) + 3


@pytest.mark.parametrize("seed", range(5))
def test_a_failing_host_stops_the_wave_and_nothing_starts_after_it(seed: int) -> None:
    budget = Budget(10, 0, 0)
    _, phases, stopped, _ = simulate(200, budget, surge_capable=False, fail="h00042", seed=seed)
    assert stopped and "h00042" in stopped
    started_after = [h for h, p in phases.items() if p is P.SERVING]
    assert started_after, "hosts behind the failure were never touched"
    assert sum(1 for p in phases.values() if p in (P.DONE, P.FAILED, P.REPLACING)) <= 42 + 1 + 3 * 10
