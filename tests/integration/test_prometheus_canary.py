"""Canary analysis against real sample-app processes, through a real Prometheus server and direct scrapes.

One run starts three hosts (a baseline, a good canary and a bad canary whose likes fail),
a Prometheus scraping them every second, drives the same traffic at all three for about
25 seconds while two ScrapeCollectors scrape every 2 seconds, then judges each canary
against the baseline from both sources. Every process started here is stopped, whatever happens.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from canary.config import DEFAULT_CONFIG
from canary.judge import judge, replay
from canary.report import explain_text
from canary.samples import Samples
from canary.sources import PrometheusSource, ScrapeCollector
from canary.verdict import Result, Verdict

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
INTERVAL_S = 2.0
TRAFFIC_S = 24.0
LIKE_ANCHOR = '    """Like a post; liking twice is harmless."""\n'
BAD_LIKE = LIKE_ANCHOR + '    raise RuntimeError("like counter shard is not reachable")\n'
# The same mix at every host: feeds, likes (30%) and single posts.
PATTERN = ("feed", "like", "post", "feed", "like", "feed", "post", "like", "feed", "post")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Processes:
    """Processes started by this module, each in its own process group."""

    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, args: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.started:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def wait_until(check: object, timeout: float, what: str) -> None:
    """Poll check() until it is true, failing the test with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def bad_release(tmp: Path) -> Path:
    """Copy the sample app into a release directory and break its like route."""
    release = tmp / "bad-release"
    shutil.copytree(ROOT / "sample_app", release / "sample_app",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests"))
    posts = release / "sample_app" / "routes" / "posts.py"
    text = posts.read_text()
    if text.count(LIKE_ANCHOR) != 1:
        pytest.fail(f"anchor {LIKE_ANCHOR.strip()!r} not found once in sample_app/routes/posts.py; "
                    "update the bad build of this test")
    posts.write_text(text.replace(LIKE_ANCHOR, BAD_LIKE))
    return release


def seed(client: httpx.Client, base: str) -> None:
    for user in ("alice", "bob"):
        r = client.post(f"{base}/api/users", json={"username": user})
        assert r.status_code in (201, 409), r.text  # 409: the app already has this user
    client.post(f"{base}/api/posts", data={"author": "alice", "caption": "hello"},
                files={"image": ("a.png", PNG, "image/png")}).raise_for_status()


def request(client: httpx.Client, base: str, kind: str) -> int:
    if kind == "feed":
        return client.get(f"{base}/api/feed", params={"user": "bob"}).status_code
    if kind == "like":
        return client.post(f"{base}/api/posts/1/like", json={"user": "bob"}).status_code
    return client.get(f"{base}/api/posts/1").status_code


PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sample_app
    scrape_interval: 1s
    scrape_timeout: 900ms
    static_configs:
{targets}
"""


@dataclass
class Run:
    """What one traffic run produced."""

    instances: dict[str, str]
    prometheus_url: str
    start: float
    end: float
    like_status: dict[str, set[int]]
    scraped: dict[str, tuple[Samples, Samples]]
    first_interim_fail: dict[str, int | None]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("the prometheus binary is not installed (apt-get install -y prometheus)")
    tmp = tmp_path_factory.mktemp("canary-prom")
    procs = Processes()
    try:
        ports = {"baseline": free_port(), "good": free_port(), "bad": free_port()}
        cwd = {"baseline": ROOT, "good": ROOT, "bad": bad_release(tmp)}
        for name, port in ports.items():
            env = {**os.environ, "SAMPLE_APP_DATABASE_URL": f"sqlite:///{tmp / name}.db",
                   "SAMPLE_APP_VERSION": name, "PYTHONPATH": str(cwd[name])}
            procs.start([sys.executable, "-m", "sample_app", "--host", "127.0.0.1", "--port", str(port),
                         "--log-level", "warning"], cwd=cwd[name], env=env, log=tmp / f"{name}.log")
        instances = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        urls = {name: f"http://{inst}" for name, inst in instances.items()}
        client = httpx.Client(timeout=5.0)
        for name, url in urls.items():
            wait_until(lambda u=url: client.get(f"{u}/healthz").status_code == 200, 30, f"{name} host healthy")
            assert client.get(f"{url}/version").json()["version"] == name
            seed(client, url)

        prom_port = free_port()
        targets = "\n".join(f"      - targets: ['{inst}']\n        labels: {{role: {name}}}"
                            for name, inst in instances.items())
        (tmp / "prometheus.yml").write_text(PROMETHEUS_CONFIG.format(targets=targets))
        procs.start([prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                     f"--web.listen-address=127.0.0.1:{prom_port}"], cwd=tmp, env=dict(os.environ),
                    log=tmp / "prometheus.log")
        prom_url = f"http://127.0.0.1:{prom_port}"
        wait_until(lambda: client.get(f"{prom_url}/-/ready").status_code == 200, 30, "prometheus ready")

        def all_up() -> bool:
            r = client.get(f"{prom_url}/api/v1/query", params={"query": 'up{job="sample_app"} == 1'}).json()
            return len(r["data"]["result"]) == 3

        wait_until(all_up, 30, "prometheus scraping all three hosts")

        like_status: dict[str, set[int]] = {name: set() for name in urls}
        stop = threading.Event()

        def traffic() -> None:
            i = 0
            while not stop.is_set():
                kind = PATTERN[i % len(PATTERN)]
                for name, url in urls.items():
                    status = request(client, url, kind)
                    if kind == "like":
                        like_status[name].add(status)
                i += 1
                stop.wait(0.09)  # about 10 requests per second per host

        collectors = {"good": ScrapeCollector([urls["good"]], [urls["baseline"]], interval_s=INTERVAL_S),
                      "bad": ScrapeCollector([urls["bad"]], [urls["baseline"]], interval_s=INTERVAL_S)}
        first_fail: dict[str, int | None] = {"good": None, "bad": None}
        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        start = time.time()
        try:
            for c in collectors.values():
                c.scrape()
            tick = time.monotonic()
            while time.time() - start < TRAFFIC_S:
                tick += INTERVAL_S
                time.sleep(max(0.0, tick - time.monotonic()))
                for name, c in collectors.items():
                    c.scrape()
                    b, cn = c.samples()
                    if first_fail[name] is None and judge(DEFAULT_CONFIG, b, cn, final=False).result is Result.FAIL:
                        first_fail[name] = len(cn)
        finally:
            stop.set()
            worker.join(10)
        end = time.time()
        scraped = {name: c.samples() for name, c in collectors.items()}
        for c in collectors.values():
            c.close()
        time.sleep(1.5)  # let Prometheus take its last scrape of the window
        client.close()
        yield Run(instances, prom_url, start, end, like_status, scraped, first_fail)
    finally:
        procs.stop_all()


def test_the_bad_build_really_is_bad(run: Run) -> None:
    assert run.like_status["bad"] == {500}
    assert run.like_status["good"] == run.like_status["baseline"] == {200}


def prometheus_samples(run: Run, canary: str) -> tuple[Samples, Samples]:
    source = PrometheusSource(run.prometheus_url)
    b, c = source.fetch(canary=[run.instances[canary]], baseline=[run.instances["baseline"]],
                        canary_labels={"role": canary}, start=run.start, end=run.end, step_s=INTERVAL_S)
    assert not b.problems and not c.problems, (b.problems, c.problems)
    assert len(c) >= 10
    assert sum(v for v in c.series["requests"] if v == v) > 100
    return b, c


def _explain(v: Verdict) -> str:
    return "\n" + explain_text(v)


def test_prometheus_bad_canary_fails(run: Run) -> None:
    b, c = prometheus_samples(run, "bad")
    v = replay(DEFAULT_CONFIG, b, c)
    print(_explain(v))  # shown with -rP: what the analysis saw
    assert v.result is Result.FAIL, _explain(v)
    assert v.decided_at is not None and v.decided_at <= 4, _explain(v)
    assert v.metric("errors_sequential").classification.value == "high"


def test_prometheus_good_canary_passes(run: Run) -> None:
    b, c = prometheus_samples(run, "good")
    v = judge(DEFAULT_CONFIG, b, c, final=True)
    print(_explain(v))
    assert v.result is Result.PASS, _explain(v)


def test_direct_scrape_bad_canary_fails_within_a_few_intervals(run: Run) -> None:
    b, c = run.scraped["bad"]
    assert not c.problems and len(c) >= 10
    assert sum(c.series["errors"]) > 20 and sum(b.series["errors"]) == 0
    assert run.first_interim_fail["bad"] is not None and run.first_interim_fail["bad"] <= 5
    assert judge(DEFAULT_CONFIG, b, c, final=True).result is Result.FAIL


def test_direct_scrape_good_canary_passes(run: Run) -> None:
    b, c = run.scraped["good"]
    assert run.first_interim_fail["good"] is None
    v = judge(DEFAULT_CONFIG, b, c, final=True)
    print(_explain(v))
    assert v.result is Result.PASS, _explain(v)


def test_prometheus_down_is_inconclusive(run: Run) -> None:
    source = PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    b, c = source.fetch(canary=[run.instances["good"]], baseline=[run.instances["baseline"]],
                        start=run.start, end=run.end, step_s=INTERVAL_S)
    assert c.problems
    v = judge(DEFAULT_CONFIG, b, c, final=True)
    assert v.result is Result.INCONCLUSIVE and "prometheus" in v.reason


def test_prometheus_without_data_for_the_hosts_is_inconclusive(run: Run) -> None:
    source = PrometheusSource(run.prometheus_url)
    b, c = source.fetch(canary=["127.0.0.1:1"], baseline=[run.instances["baseline"]],
                        start=run.start, end=run.end, step_s=INTERVAL_S)
    assert c.problems and not b.problems
    assert judge(DEFAULT_CONFIG, b, c, final=True).result is Result.INCONCLUSIVE
