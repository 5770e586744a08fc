"""The balancer's pool: who is in rotation, round-robin shares, in-flight bookkeeping."""

from __future__ import annotations

from collections import Counter

import pytest

from deployer.fleet.local.balancer_pool import Pool, Upstream


def make_pool(*names: str) -> Pool:
    pool = Pool()
    for name in names:
        up, _ = pool.put(name, f"http://{name}.test/")
        pool.set_healthy(up, True)
    return pool


def pick(pool: Pool, exclude: set[str] | None = None) -> str:
    up = pool.choose(exclude or set())
    assert up is not None
    return up.name


def get(pool: Pool, name: str) -> Upstream:
    up = pool.get(name)
    assert up is not None
    return up


def test_round_robin_gives_equal_shares() -> None:
    pool = make_pool("a", "b", "c")
    picks = Counter(pick(pool) for _ in range(300))
    assert picks == {"a": 100, "b": 100, "c": 100}


@pytest.mark.parametrize("out", ["a", "b", "c", "d"])
def test_shares_stay_equal_when_one_host_is_out(out: str) -> None:
    pool = make_pool("a", "b", "c", "d")
    get(pool, out).enabled = False
    picks = Counter(pick(pool) for _ in range(300))
    assert set(picks) == {"a", "b", "c", "d"} - {out}
    assert set(picks.values()) == {100}


def test_only_enabled_and_healthy_hosts_are_in_rotation() -> None:
    pool = make_pool("a", "b", "c")
    get(pool, "a").enabled = False
    pool.set_healthy(get(pool, "b"), False)
    assert [u.name for u in pool.in_rotation()] == ["c"]
    assert {pick(pool) for _ in range(5)} == {"c"}


def test_choose_skips_excluded_and_returns_none_when_nothing_left() -> None:
    pool = make_pool("a", "b")
    assert pick(pool, {"a"}) == "b"
    assert pool.choose({"a", "b"}) is None
    assert Pool().choose() is None


def test_new_host_is_out_of_rotation_until_checked() -> None:
    pool = Pool()
    up, changed = pool.put("a", "http://a.test")
    assert changed and not up.in_rotation and pool.choose() is None


def test_put_same_address_is_a_noop_and_new_address_needs_a_check() -> None:
    pool = make_pool("a")
    up, changed = pool.put("a", "http://a.test")
    assert not changed and up.in_rotation
    generation = up.generation
    up, changed = pool.put("a", "http://a2.test")
    assert changed and not up.healthy and up.generation == generation + 1


def test_in_flight_and_idle_event() -> None:
    pool = make_pool("a")
    up = get(pool, "a")
    assert up.idle.is_set()
    up.begin()
    up.begin()
    assert up.in_flight == 2 and not up.idle.is_set()
    up.end()
    assert not up.idle.is_set()
    up.end()
    assert up.in_flight == 0 and up.idle.is_set()


def test_entering_rotation_wakes_waiters() -> None:
    pool = Pool()
    up, _ = pool.put("a", "http://a.test")
    assert not pool.rotation_changed.is_set()
    pool.set_healthy(up, True)
    assert pool.rotation_changed.is_set()


def test_remove_forgets_the_host() -> None:
    pool = make_pool("a", "b")
    assert pool.remove("a") is not None and "a" not in pool
    assert pool.remove("a") is None
    assert [u.name for u in pool.all()] == ["b"]
