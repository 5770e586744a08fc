"""Prometheus finds hosts through the fleet's file_sd targets, and its series match a direct scrape.

A real Prometheus reads the targets file the fleet writes (`deployer.fleet.discovery`); a
host added to the file is scraped without a reload, with its host, role and version labels.
Then the same traffic goes to both hosts (the canary's likes fail) while a direct scrape
runs beside Prometheus, and the judge's series from PromQL are compared with the scraped ones.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from canary.sources import PrometheusSource, ScrapeCollector
from deployer.fleet.discovery import Target, TargetsFile
from tests.integration.test_prometheus_canary import PATTERN, ROOT, Processes, bad_release, free_port, request, seed
from tests.integration.test_prometheus_canary import wait_until as wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INTERVAL_S = 2.0
TRAFFIC_S = 20.0
CONFIG = """\
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: fleet
    scrape_interval: 1s
    scrape_timeout: 900ms
    file_sd_configs:
      - files: ['{path}']
        refresh_interval: 1s
"""


def _query(client: httpx.Client, url: str, promql: str) -> list[dict[str, object]]:
    body = client.get(f"{url}/api/v1/query", params={"query": promql}).json()
    return list(body["data"]["result"])


def test_file_sd_discovers_hosts_and_promql_matches_the_direct_scrape(tmp_path: Path) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("the prometheus binary is not installed (scripts/ensure-services.sh installs it)")
    procs = Processes()
    client = httpx.Client(timeout=5.0)
    try:
        ports = {"baseline": free_port(), "canary": free_port()}
        cwd = {"baseline": ROOT, "canary": bad_release(tmp_path)}
        for role, port in ports.items():
            env = {**os.environ, "SAMPLE_APP_DATABASE_URL": f"sqlite:///{tmp_path / role}.db",
                   "SAMPLE_APP_VERSION": f"v-{role}", "PYTHONPATH": str(cwd[role])}
            procs.start([sys.executable, "-m", "sample_app", "--host", "127.0.0.1", "--port", str(port),
                         "--log-level", "warning"], cwd=cwd[role], env=env, log=tmp_path / f"{role}.log")
        urls = {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}
        for role, url in urls.items():
            wait_for(lambda u=url: client.get(f"{u}/healthz").status_code == 200, 30, f"{role} host healthy")
            seed(client, url)

        targets = TargetsFile(tmp_path / "sd" / "targets.json")
        baseline = Target("host-0", urls["baseline"], "baseline", "v-baseline")
        targets.sync([baseline])
        (tmp_path / "prometheus.yml").write_text(CONFIG.format(path=targets.path))
        prom_port = free_port()
        procs.start([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                     f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                    cwd=tmp_path, env=dict(os.environ), log=tmp_path / "prometheus.log")
        prom = f"http://127.0.0.1:{prom_port}"
        wait_for(lambda: client.get(f"{prom}/-/ready").status_code == 200, 30, "prometheus ready")
        wait_for(lambda: _query(client, prom, 'up{host="host-0",role="baseline"} == 1'), 30, "host-0 scraped")

        # A new host appears in the file: scraped with its labels, no reload of Prometheus.
        added = time.monotonic()
        targets.sync([baseline, Target("host-1", urls["canary"], "canary", "v-canary")])
        wait_for(lambda: _query(client, prom, 'up{host="host-1",role="canary",version="v-canary"} == 1'), 30,
                 "host-1 discovered through the targets file")
        print(f"\nfile_sd: a new host was scraped {time.monotonic() - added:.1f}s after it was written")

        stop = threading.Event()

        def traffic() -> None:
            i = 0
            while not stop.is_set():
                for url in urls.values():
                    request(client, url, PATTERN[i % len(PATTERN)])
                i += 1
                stop.wait(0.09)

        collector = ScrapeCollector([urls["canary"]], [urls["baseline"]], interval_s=INTERVAL_S)
        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        # Start on a scrape of Prometheus's own rhythm: both sources then cover the same seconds.
        time.sleep(2.0)
        start = time.time()
        collector.scrape()
        tick = time.monotonic()
        try:
            while time.time() - start < TRAFFIC_S:
                tick += INTERVAL_S
                time.sleep(max(0.0, tick - time.monotonic()))
                collector.scrape()
        finally:
            stop.set()
            worker.join(10)
        end = time.time()
        scraped_b, scraped_c = collector.samples()
        collector.close()
        time.sleep(3.0)  # Prometheus's last scrapes of the window land
        prom_b, prom_c = PrometheusSource(prom).fetch(
            canary=[f"127.0.0.1:{ports['canary']}"], baseline=[f"127.0.0.1:{ports['baseline']}"],
            start=start, end=end, step_s=INTERVAL_S)
        assert not prom_b.problems and not prom_c.problems, (prom_b.problems, prom_c.problems)

        def total(samples: object, name: str) -> float:
            return sum(v for v in samples.series[name] if not math.isnan(v))  # type: ignore[attr-defined]

        report = {}
        for role, scraped, promql in (("baseline", scraped_b, prom_b), ("canary", scraped_c, prom_c)):
            for name in ("requests", "errors"):
                report[f"{role}.{name}"] = (total(scraped, name), round(total(promql, name), 1))
        print(f"direct scrape vs PromQL totals over {end - start:.0f}s: {report}")
        # Prometheus's increase() extrapolates to each step's edges and samples at its own instants,
        # so totals agree within a margin, not exactly: 15% on requests, 25% (or 8) on the rarer errors,
        # and the error rates the judge compares within 3 points.
        for key, (a, b) in report.items():
            margin = 0.15 * a if key.endswith("requests") else max(8.0, 0.25 * a)
            assert abs(a - b) <= margin, (key, a, b)
        for role in ("baseline", "canary"):
            direct = report[f"{role}.errors"][0] / report[f"{role}.requests"][0]
            promql = report[f"{role}.errors"][1] / report[f"{role}.requests"][1]
            assert abs(direct - promql) <= 0.03, (role, direct, promql)
        assert total(scraped_c, "errors") > 20 and total(scraped_b, "errors") == 0
        assert total(prom_c, "errors") > 20 and total(prom_b, "errors") == 0
        assert abs(len(prom_c) - len(scraped_c)) <= 2
    finally:
        client.close()
        procs.stop_all()
