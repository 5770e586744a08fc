"""The Grafana dashboard loads, is well formed, and asks only for metrics /metrics really exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dashboards.app import create_app
from deployer.settings import load_settings
from tests.dashboard_support import seed_history

pytestmark = pytest.mark.integration
DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "grafana" / "deployer.json"
FUNCTIONS = {"sum", "by", "increase", "rate", "histogram_quantile", "max", "count", "le", "without"}


def test_grafana_dashboard_matches_the_metrics(tmp_path: Path) -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels) >= 8
    for p in panels:
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]) and p["targets"], p["title"]
        assert p["datasource"]["type"] == "prometheus"
    (tmp_path / "config.yaml").write_text("source: {repository: central.git}\nworkdir: work\n")
    app = create_app(load_settings(tmp_path / "config.yaml", environ={}))
    seed_history(app.state.service.engine, releases=30, hosts=3)
    exposed = set(re.findall(r"^# TYPE (\w+) (\w+)", TestClient(app).get("/metrics").text, re.M))
    names = {n.removesuffix("_total") for n, _ in exposed}  # counters are typed with or without the suffix
    histograms = {n for n, kind in exposed if kind == "histogram"}
    counters = {n.removesuffix("_total") for n, kind in exposed if kind == "counter"}
    wanted = set()
    for p in panels:
        for target in p["targets"]:
            # Leave out label matchers, ranges, strings and grouping labels: what remains are metric names.
            expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"|by \([^)]*\)", "", target["expr"])
            wanted |= {w for w in re.findall(r"[a-z_][a-z0-9_]*", expr) if w not in FUNCTIONS}
    for metric in wanted:
        base = metric.removesuffix("_bucket").removesuffix("_total")
        assert base in names, f"{metric} is not exposed by /metrics"
        if metric.endswith("_bucket"):
            assert base in histograms, metric
        if metric.endswith("_total"):
            assert base in counters, metric
    assert {"deployer_releases", "deployer_rollbacks", "deployer_verdicts", "deployer_queue_commits",
            "deployer_stage_duration_seconds", "deployer_lead_time_seconds",
            "deployer_bad_canary_to_rollback_seconds"} <= {m.removesuffix("_bucket").removesuffix("_total")
                                                          for m in wanted}
