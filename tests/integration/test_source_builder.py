"""The git source, the builder and the test runner against real repositories."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.fleet.local.builder import ReleaseBuilder
from deployer.exceptions import SourceError
from deployer.source import GitSource
from deployer.tests_runner import run_tests
from tests.gitrepo import CentralRepo, git, make_central_repo

pytestmark = pytest.mark.integration


@pytest.fixture
def central(tmp_path: Path) -> CentralRepo:
    repo = make_central_repo(tmp_path)
    repo.commit("first", {"app/main.py": "print('v1')\n", "test_ok.py": "def test_ok():\n    assert True\n"})
    repo.push()
    return repo


@pytest.fixture
def source(central: CentralRepo, tmp_path: Path) -> GitSource:
    return GitSource(repository=str(central.bare), branch="main", mirror_dir=tmp_path / "work" / "mirror.git")


def test_discovers_new_commits_in_order_once(central: CentralRepo, source: GitSource) -> None:
    head = source.fetch()
    assert [c.sha for c in source.new_commits(set())] == [head]
    a = central.commit("second", {"app/main.py": "print('v2')\n"})
    b = central.commit("third: with a body\n\nmore words", {"app/main.py": "print('v3')\n"})
    central.push()
    assert source.fetch() == b
    found = source.new_commits({head})
    assert [c.sha for c in found] == [a, b]
    assert found[1].title == "third: with a body" and found[1].author == "Test Author"
    assert source.new_commits({head, a, b}) == []


def test_merge_commits_count_once_along_the_first_parent(central: CentralRepo, source: GitSource) -> None:
    base = source.fetch()
    git(central.clone, "checkout", "--quiet", "-b", "feature")
    central.commit("feature work", {"feature.txt": "x\n"})
    git(central.clone, "checkout", "--quiet", "main")
    central.commit("main work", {"main.txt": "y\n"})
    git(central.clone, "merge", "--quiet", "--no-ff", "-m", "Merge feature", "feature")
    central.push()
    titles = [c.title for c in (source.fetch(), source.new_commits({base}))[1]]
    assert titles == ["main work", "Merge feature"]


def test_errors_name_the_problem(tmp_path: Path, central: CentralRepo) -> None:
    with pytest.raises(SourceError, match="cannot clone"):
        GitSource(repository=str(tmp_path / "missing.git"), branch="main", mirror_dir=tmp_path / "m1").fetch()
    with pytest.raises(SourceError, match="cannot fetch develop"):
        GitSource(repository=str(central.bare), branch="develop", mirror_dir=tmp_path / "m2").fetch()


def test_builds_a_release_directory_once_and_prunes(central: CentralRepo, source: GitSource, tmp_path: Path) -> None:
    first = source.fetch()
    second = central.commit("second", {"app/main.py": "print('v2')\n"})
    central.push()
    source.fetch()
    builder = ReleaseBuilder(source=source, releases_dir=tmp_path / "releases")
    artifact = builder.build(first)
    assert Path(artifact.location, "app", "main.py").read_text() == "print('v1')\n"
    assert Path(artifact.location, "REVISION").read_text().strip() == first
    assert builder.build(first) == artifact  # reused, not rebuilt
    builder.build(second)
    assert builder.prune(keep=[second]) == [first]
    assert builder.existing(first) is None and builder.existing(second) is not None


def test_archive_fetches_a_commit_the_mirror_does_not_have_yet(central: CentralRepo, source: GitSource,
                                                               tmp_path: Path) -> None:
    source.fetch()
    newer = central.commit("newer", {"app/main.py": "print('new')\n"})
    central.push()
    dest = source.archive(newer, tmp_path / "checkout")
    assert (dest / "app" / "main.py").read_text() == "print('new')\n"


def test_runs_the_test_command_at_a_commit(central: CentralRepo, source: GitSource, tmp_path: Path) -> None:
    good = source.fetch()
    bad = central.commit("break it", {"test_ok.py": "def test_ok():\n    assert 1 == 2\n"})
    central.push()
    source.fetch()
    command = "python -m pytest -q -p no:cacheprovider test_ok.py"
    passed = run_tests(source=source, sha=good, command=command, timeout_s=60, runs_dir=tmp_path / "runs")
    assert passed.passed and passed.exit_code == 0 and "1 passed" in passed.log
    failed = run_tests(source=source, sha=bad, command=command, timeout_s=60, runs_dir=tmp_path / "runs")
    assert not failed.passed and "assert 1 == 2" in failed.log and "exit code 1" in failed.reason
    slow = run_tests(source=source, sha=good, command="sleep 30", timeout_s=0.5, runs_dir=tmp_path / "runs")
    assert not slow.passed and "did not finish within 0.5s" in slow.reason and slow.duration_s < 10
    assert list((tmp_path / "runs").iterdir()) == []  # scratch checkouts are cleaned up
