"""Prometheus file_sd targets: one group per host with host/role/version labels, rewritten only on change."""

from __future__ import annotations

import json
from pathlib import Path

from deployer.fleet.discovery import Target, TargetsFile, target_groups


def test_each_host_is_a_group_with_its_labels() -> None:
    groups = target_groups([Target("host-1", "http://127.0.0.1:8102", "canary", "b" * 40),
                            Target("host-0", "http://127.0.0.1:8101/", "baseline", None)])
    assert groups == [
        {"targets": ["127.0.0.1:8101"], "labels": {"host": "host-0", "role": "baseline", "version": "unknown"}},
        {"targets": ["127.0.0.1:8102"], "labels": {"host": "host-1", "role": "canary", "version": "b" * 40}},
    ]


def test_a_host_without_an_address_is_left_out() -> None:
    assert target_groups([Target("host-0", "", "idle", None), Target("host-1", "127.0.0.1:9", "idle", "a")]) == [
        {"targets": ["127.0.0.1:9"], "labels": {"host": "host-1", "role": "idle", "version": "a"}}]


def test_the_file_is_written_when_the_targets_change_only(tmp_path: Path) -> None:
    path = tmp_path / "prometheus" / "targets.json"
    targets = TargetsFile(path)
    one = [Target("host-0", "http://127.0.0.1:8101", "idle", "a")]
    assert targets.sync(one) is True
    assert json.loads(path.read_text())[0]["labels"]["version"] == "a"
    assert targets.sync(one) is False
    assert targets.sync([*one, Target("host-1", "http://127.0.0.1:8102", "canary", "b")]) is True
    assert [g["labels"]["host"] for g in json.loads(path.read_text())] == ["host-0", "host-1"]
    assert not [p for p in path.parent.iterdir() if p.name != "targets.json"]  # no temporary file left
    path.unlink()
    assert targets.sync(one + [Target("host-1", "http://127.0.0.1:8102", "canary", "b")]) is True  # rewritten
