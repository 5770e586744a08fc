"""The wave budget settings: counts or shares, checked against the fleet, and the old max_parallel alias."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from deployer.exceptions import ConfigError
from deployer.rollout_budget import Budget
from deployer.settings import load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("source: {repository: repo.git}\n" + text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    return info.value.problems


def test_defaults_keep_two_hosts_at_a_time(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), environ={})
    assert settings.rollout_budget(6) == Budget(max_unavailable=2, max_surge=0, min_healthy=0)
    assert settings.deprecations == []


def test_shares_resolve_against_the_fleet(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "rollout: {max_unavailable: 5%, max_surge: '10%', min_healthy: 90%}\n"),
                             environ={})
    assert settings.rollout_budget(10_000) == Budget(max_unavailable=500, max_surge=1000, min_healthy=9000)


def test_the_environment_sets_the_budget(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), environ={"DEPLOYER__ROLLOUT__MAX_UNAVAILABLE": "25%"})
    assert settings.rollout.max_unavailable == "25%"


def test_max_parallel_is_read_as_max_unavailable_with_a_warning(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="deployer.settings"):
        settings = load_settings(write(tmp_path, "fleet: {max_parallel: 3}\n"), environ={})
    assert settings.rollout_budget(6).max_unavailable == 3
    assert "fleet.max_parallel: is deprecated; use rollout.max_unavailable: 3" in caplog.text


def test_max_parallel_beside_max_unavailable_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, "fleet: {max_parallel: 3}\nrollout: {max_unavailable: 2}\n") == [
        "fleet.max_parallel: is deprecated and rollout.max_unavailable is set too; remove fleet.max_parallel"]


@pytest.mark.parametrize(("text", "expected"), [
    ("rollout: {max_unavailable: lots}\n",
     'rollout.max_unavailable: "lots" is not a count or a share; use e.g. 2 or "10%"'),
    ("rollout: {max_surge: 150%}\n", 'rollout.max_surge: "150%" is not between 0% and 100%; use e.g. "10%"'),
    ("rollout: {min_healthy: -1}\n", "rollout.min_healthy: -1 is negative; use e.g. 2 or \"10%\""),
    ("rollout: {max_unavailable: 0, max_surge: 0, min_healthy: 100%}\n",
     "rollout.min_healthy: '100%' keeps all 6 hosts serving and max_surge is 0, so no host could ever be "
     "replaced; lower min_healthy or allow a surge"),
])
def test_bad_budgets_name_the_field_and_the_fix(tmp_path: Path, text: str, expected: str) -> None:
    assert problems(tmp_path, text) == [expected]


def test_the_simulated_fleet_takes_ten_thousand_hosts_but_real_ones_do_not(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "fleet: {backend: sim, hosts: 10000, failure_rate: 0.01}\n"),
                             environ={})
    assert settings.fleet.hosts == 10_000 and settings.fleet.backend == "sim"
    assert problems(tmp_path, "fleet: {backend: local, hosts: 10000}\n") == [
        "fleet.hosts: 10000 is out of range; use a value less than or equal to 200"]
    assert problems(tmp_path, "fleet: {backend: sim, start_median: 3s, start_p95: 1s}\n") == [
        'fleet.start_p95: 1s is below start_median (3s); use e.g. "3s"']
