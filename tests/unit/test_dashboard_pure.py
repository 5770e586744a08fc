"""Pure pieces of the dashboard: roles, commit marks, DORA figures, charts, the session-secret rule."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
import threading
from pathlib import Path

import pytest

from dashboards.charts import series_chart
from deployer import batching, dora
from deployer.accounts import BadInput, check_name, check_password, parse_role, session_secret
from deployer.batching import CommitRow
from deployer.exceptions import ConfigError
from deployer.memo import Memo
from deployer.model import CommitStatus, ReleaseKind, Role
from deployer.pipeline import Status
from deployer.settings import load_settings

P, S, B, K = CommitStatus.PENDING, CommitStatus.SHIPPED, CommitStatus.BAD, CommitStatus.BLOCKED


def rows(*statuses: CommitStatus) -> list[CommitRow]:
    return [CommitRow(f"c{i}", s) for i, s in enumerate(statuses)]


def test_roles_include_the_ones_below() -> None:
    assert Role.ADMIN.allows(Role.RELEASE_MANAGER) and Role.ADMIN.allows(Role.VIEWER)
    assert Role.RELEASE_MANAGER.allows(Role.VIEWER) and not Role.RELEASE_MANAGER.allows(Role.ADMIN)
    assert not Role.VIEWER.allows(Role.RELEASE_MANAGER)
    assert parse_role("release-manager") is Role.RELEASE_MANAGER
    with pytest.raises(BadInput, match="viewer, release_manager, admin"):
        parse_role("boss")


def test_names_and_passwords_are_checked() -> None:
    assert check_name("ana.b@x") == "ana.b@x"
    for bad in ("", " ana", "a/b", "x" * 101):
        with pytest.raises(BadInput, match="name"):
            check_name(bad)
    with pytest.raises(BadInput, match="at least 12"):
        check_password("short")


def test_marking_a_commit_bad_holds_back_the_unshipped_commits_after_it() -> None:
    changes = batching.mark_bad(rows(S, P, P, P), "c2")
    assert changes == {"c2": B, "c3": K}
    assert batching.plan_next_release([CommitRow(c.sha, changes.get(c.sha, c.status)) for c in rows(S, P, P, P)],
                                      3).commit_shas == ("c1",)


def test_marking_it_good_again_releases_what_it_held_back_up_to_the_next_bad_one() -> None:
    assert batching.mark_good(rows(S, B, K, B, K), "c1") == {"c1": P, "c2": P}


def test_a_rollback_release_judges_no_commit() -> None:
    plan = batching.ReleasePlan(ReleaseKind.ROLLBACK, "c0", ())
    assert batching.settle(rows(S, S, P), plan, succeeded=False) == {}
    assert batching.settle(rows(S, S, P), plan, succeeded=True) == {}


def test_dora_figures() -> None:
    now = datetime(2026, 1, 31, tzinfo=timezone.utc)

    def at(hours: float) -> datetime:
        return now - timedelta(hours=hours)

    finished = [
        dora.Finished(Status.SUCCEEDED, ReleaseKind.DEPLOY, at(50), at(49), [at(51), at(53)]),  # leads 2h, 4h
        dora.Finished(Status.SUCCEEDED, ReleaseKind.DEPLOY, at(20), at(19), [at(20)]),           # lead 1h
        dora.Finished(Status.ROLLED_BACK, ReleaseKind.DEPLOY, at(10), at(9.5), [at(11)]),        # restore 30 min
        dora.Finished(Status.SUCCEEDED, ReleaseKind.BOOTSTRAP, None, at(100), []),
    ]
    figures = dora.compute(finished, days=7)
    assert figures.deploys == 2 and figures.deploys_per_day == pytest.approx(2 / 7, abs=0.01)
    assert figures.median_lead_time_s == 2 * 3600
    assert figures.change_failure_rate == pytest.approx(1 / 3, abs=0.001)
    assert figures.median_time_to_restore_s == 1800
    empty = dora.compute([], days=30)
    assert empty.median_lead_time_s is None and empty.change_failure_rate is None


def test_chart_draws_both_series_with_gaps_and_scale() -> None:
    svg = series_chart("error_rate", [0.0, None, 0.4, 0.5], [0.0, 0.0, 0.01, 0.0], interval_s=2)
    assert svg.startswith("<svg") and svg.count("<polyline") == 2
    assert 'data-metric="error_rate"' in svg and "4 intervals of 2s" in svg and ">0.5<" in svg
    assert "no samples" in series_chart("x", [], [])
    assert "&lt;b&gt;" in series_chart("<b>", [1.0], [1.0])  # names are escaped


@pytest.mark.parametrize("secret", ["changeme", "Placeholder", "short-but-not-placeholder"])
def test_placeholder_or_short_secrets_are_refused(tmp_path: Path, secret: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"source: {{repository: x.git}}\nauth: {{secret_key: {secret}}}\n")
    with pytest.raises(ConfigError, match="auth.secret_key: is a placeholder") as caught:
        load_settings(config, environ={})
    assert f"\"{secret}\"" not in str(caught.value)  # never echo a secret back


def test_a_missing_secret_is_generated_once_privately_and_kept(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("source: {repository: x.git}\nworkdir: w\n")
    settings = load_settings(config, environ={})
    first = session_secret(settings)
    assert len(first) >= 48 and session_secret(settings) == first
    path = tmp_path / "w" / "session-secret"
    assert path.stat().st_mode & 0o777 == 0o600
    configured = load_settings(config, environ={"DEPLOYER__AUTH__SECRET_KEY": "k" * 40})
    assert session_secret(configured) == "k" * 40


def test_memo_serves_the_last_value_while_one_refresh_runs() -> None:
    now = [0.0]
    memo = Memo(5.0, clock=lambda: now[0])
    calls: list[int] = []
    release = threading.Event()

    def compute() -> int:
        calls.append(1)
        if len(calls) > 1:
            release.wait(5)
        return len(calls)

    assert memo.get("k", compute) == 1 and memo.get("k", compute) == 1 and len(calls) == 1
    now[0] = 6.0
    assert memo.get("k", compute) == 1  # stale: served at once, refreshed in the background
    assert memo.get("k", compute) == 1 and len(calls) == 2  # only one refresh at a time
    release.set()
    deadline = threading.Event()
    for _ in range(100):
        if memo.get("k", compute) == 2:
            break
        deadline.wait(0.02)
    assert memo.get("k", compute) == 2
