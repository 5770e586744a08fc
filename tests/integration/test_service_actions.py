"""The service's actions and read models over a real SQLite database with a seeded history."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dashboards.app import create_app
from deployer import store
from deployer.exceptions import Conflict
from deployer.model import Commit, CommitStatus, ReleaseKind, Role
from deployer.service import DeployService
from deployer.settings import Settings, load_settings
from tests.dashboard_support import History, seed_history, sha_of
from tests.integration.test_store_and_queue import postgres_url  # noqa: F401 - a fixture

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The same queries on both databases the platform supports."""
    database = "" if request.param == "sqlite" else \
        f"database: {{url: '{request.getfixturevalue('postgres_url')}'}}\n"
    (tmp_path / "config.yaml").write_text("source: {repository: central.git}\nworkdir: work\n" + database)
    return load_settings(tmp_path / "config.yaml", environ={})


@pytest.fixture
def seeded(settings: Settings) -> Iterator[tuple[DeployService, History]]:
    service = DeployService.from_settings(settings)
    history = seed_history(service.engine, releases=40, hosts=4, active=False)
    yield service, history
    service.engine.dispose()


def test_rollback_creates_a_rollback_release_through_the_canary_and_locks(seeded: tuple[DeployService, History]) -> None:
    service, h = seeded
    target = h.last_good - 1
    while service.release(target).status != "succeeded":
        target -= 1
    done = service.rollback(target, actor="ana", reason="errors since the last release")
    detail = service.release(done.release_id)
    assert detail.release.kind is ReleaseKind.ROLLBACK and detail.status == "queued"
    assert detail.version == sha_of(target) and detail.previous_version == sha_of(h.last_good)
    assert not detail.skip_analysis and detail.release.started_by == "ana"
    lock = service.status().lock
    assert lock is not None and lock.holder == "ana" and f"release {target}" in lock.reason
    with pytest.raises(Conflict, match="abort it first"):
        service.rollback(target, actor="ana", reason="again")
    assert [e.kind for e in service.audit(limit=2)] == ["lock", "rollback_requested"]


def test_rollback_is_refused_with_a_reason(seeded: tuple[DeployService, History]) -> None:
    service, h = seeded
    with pytest.raises(Conflict, match="only a release that reached the whole fleet"):
        service.rollback(h.failed_canary, actor="ana", reason="x")
    with pytest.raises(Conflict, match="already runs"):
        service.rollback(h.last_good, actor="ana", reason="x")


def test_fast_path_skips_the_bake(seeded: tuple[DeployService, History]) -> None:
    service, h = seeded
    done = service.rollback(1, actor="ana", reason="fast", skip_analysis=True)
    assert service.release(done.release_id).skip_analysis


def test_mark_bad_and_good_and_retry(seeded: tuple[DeployService, History]) -> None:
    service, h = seeded
    engine = service.engine
    with store.session_scope(engine) as session:
        session.add(Commit(sha="f" * 40, position=h.releases + 1, author="ana", message="new"))
        session.add(Commit(sha="e" * 40, position=h.releases + 2, author="ben", message="newer"))
    service.mark_commit("f" * 12, bad=True, actor="ana", reason="breaks login")
    statuses = {c.sha: c.status for c in service.commits()}
    assert statuses["f" * 40] is CommitStatus.BAD and statuses["e" * 40] is CommitStatus.BLOCKED
    with pytest.raises(Conflict, match="already marked bad"):
        service.mark_commit("f" * 40, bad=True, actor="ana")
    with pytest.raises(Conflict, match="already on the fleet"):
        service.mark_commit(sha_of(h.last_good), bad=True, actor="ana")
    service.mark_commit("f" * 40, bad=False, actor="ana", reason="fixed upstream")
    statuses = {c.sha: c.status for c in service.commits()}
    assert statuses["f" * 40] is CommitStatus.PENDING and statuses["e" * 40] is CommitStatus.PENDING
    retried = service.retry(h.failed_tests, actor="ana", reason="flaky runner")
    assert retried.commits == [sha_of(h.failed_tests)]
    with pytest.raises(Conflict, match="only a failed or aborted release"):
        service.retry(h.last_good, actor="ana")
    with pytest.raises(Conflict, match="nothing to retry"):
        service.retry(h.failed_tests, actor="ana")


def test_releases_page_by_keyset_with_filters(seeded: tuple[DeployService, History]) -> None:
    service, h = seeded
    first = service.releases(limit=10)
    assert [r.release.id for r in first.items] == list(range(h.releases, h.releases - 10, -1))
    second = service.releases(limit=10, before=first.next_before)
    assert second.items[0].release.id == h.releases - 10
    failed = service.releases(status="rolled_back", limit=100)
    assert failed.items and all(r.release.status == "rolled_back" for r in failed.items)
    ana = service.releases(author="ana", limit=100)
    assert ana.items and all(r.authors == ["ana"] for r in ana.items)
    assert all(r.commits[0].title.startswith("change number") for r in first.items)


def test_overview_counts_dora_from_the_database(seeded: tuple[DeployService, History]) -> None:
    service, h = seeded
    overview = service.overview()
    assert overview.fleet_version == sha_of(h.last_good)
    week = overview.dora[0]
    assert week.deploys > 0 and week.change_failure_rate is not None and 0 < week.change_failure_rate < 1
    assert week.median_lead_time_s is not None and week.median_time_to_restore_s is not None


def test_failed_canary_page_shows_each_metric_chart_and_explanation(settings: Settings) -> None:
    app = create_app(settings)
    service: DeployService = app.state.service
    h = seed_history(service.engine, releases=10, hosts=4)
    service.accounts.add_user(name="ana", role=Role.VIEWER, password="p" * 12)
    client = TestClient(app)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/signin").text).group(1)
    client.post("/signin", data={"name": "ana", "password": "p" * 12, "csrf_token": csrf})
    page = client.get(f"/releases/{h.failed_canary}").text
    assert 'data-metric="error_rate" data-class="high"' in page and "<svg" in page
    assert "far more errors" in page and "sequential error test" in page
    export = client.get("/api/v1/audit.jsonl?kind=transition")
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert len(lines) == 3 * h.releases and all(e["kind"] == "transition" for e in lines)
    assert lines[0]["id"] < lines[-1]["id"] and "from" in lines[0]

