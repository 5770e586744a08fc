"""The dashboard's checks pages: a commit's benchmark shown route by route, behind the sign-in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dashboards.app import create_app
from deployer import store
from deployer.benchcheck import compare
from deployer.model import CheckState, CommitCheck, Role
from deployer.settings import load_settings

pytestmark = pytest.mark.integration
SHA = "fe" * 20


def test_a_commits_checks_and_its_benchmark_routes_are_shown(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("source: {repository: central.git}\nworkdir: work\n")
    app = create_app(load_settings(config, environ={}))
    service = app.state.service
    service.accounts.add_user(name="ana", role=Role.VIEWER, password="correct horse battery")
    # Twelve paired rounds, as the platform runs by default (fewer cannot show a change at 98%).
    base = {"feed": {"cpu_ms": [10.0, 10.2, 9.9, 10.1, 10.0, 9.8] * 2, "latency_ms": [12.0, 12.1, 11.9, 12.2, 12.0, 11.8] * 2}}
    slow = {"feed": {"cpu_ms": [13.1, 13.0, 13.3, 12.9, 13.2, 13.0] * 2,
                     "latency_ms": [15.0, 15.2, 14.9, 15.1, 15.3, 15.0] * 2}}
    verdict = compare(base, slow)
    with store.session_scope(service.engine) as session:
        session.add(CommitCheck(sha=SHA, name="bench", state=CheckState.FAILURE, detail=verdict.summary,
                                target_sha="ab" * 20, report=verdict.as_report()))
        session.add(CommitCheck(sha=SHA, name="tests", state=CheckState.SUCCESS, detail="tests passed in 3.0s"))
    with TestClient(app) as client:
        assert client.get(f"/checks/{SHA}", follow_redirects=False).status_code in (302, 303, 307)
        page = client.get("/signin")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        client.post("/signin", data={"name": "ana", "password": "correct horse battery", "csrf_token": csrf})
        shown = client.get(f"/checks/{SHA}")
        assert shown.status_code == 200
        assert "route feed: CPU per request +" in shown.text and "worse than the allowance" in shown.text
        assert "tests passed in 3.0s" in shown.text
        listing = client.get("/checks")
        assert listing.status_code == 200 and f"/checks/{SHA}" in listing.text
        assert client.get("/checks/not-a-sha").status_code == 422
    service.engine.dispose()
