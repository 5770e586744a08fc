"""Dashboard latency at scale: 10,000 releases, 200 hosts, 100,000 audit events, 8 concurrent clients.

Starts `deployer serve` as its own process over a freshly filled database, signs in once
(pages) and uses a viewer API token (API), then has 8 client threads request every main
page and API endpoint in turn. Prints one JSON line: p50/p95 (ms) per endpoint.

    python bench/dashboard.py [--releases 10000] [--hosts 200] [--events 100000] [--rounds 30]
                              [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deployer.fleet.local.procs import free_port_block  # noqa: E402
from deployer.model import Role  # noqa: E402
from deployer.service import DeployService  # noqa: E402
from deployer.settings import load_settings  # noqa: E402
from tests.dashboard_support import seed_history  # noqa: E402

PASSWORD = "bench password 1234"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=30, help="requests per endpoint per client")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary folder")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    config = root / "config.yaml"
    db = f"database: {{url: '{args.database_url}'}}\n" if args.database_url else ""
    config.write_text(f"source: {{repository: central.git}}\nworkdir: work\nfleet: {{hosts: {min(args.hosts, 200)}}}\n"
                      + db)
    settings = load_settings(config, environ={})
    service = DeployService.from_settings(settings)
    started = time.perf_counter()
    history = seed_history(service.engine, releases=args.releases, hosts=args.hosts, events=args.events)
    fill_s = time.perf_counter() - started
    service.accounts.add_user(name="bench", role=Role.VIEWER, password=PASSWORD)
    token = service.accounts.create_token(name="bench", role=Role.VIEWER).secret
    service.engine.dispose()

    port = free_port_block(1)
    server = subprocess.Popen([sys.executable, "-P", "-m", "deployer.cli", "-c", str(config), "serve", "--port",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                              start_new_session=True, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a loaded machine imports slowly
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        browser = httpx.Client(base_url=url, timeout=30)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/signin").text).group(1)  # type: ignore[union-attr]
        browser.post("/signin", data={"name": "bench", "password": PASSWORD, "csrf_token": csrf})
        cookies = dict(browser.cookies)
        middle = args.releases // 2
        pages = ["/", "/releases", "/releases?status=rolled_back", f"/releases?before={middle}",
                 "/releases?author=ana", f"/releases/{history.failed_canary}", "/fleet", "/audit",
                 "/audit?kind=lock", f"/audit?before={args.events // 2}"]
        api = ["/api/v1/overview", "/api/v1/status", "/api/v1/releases", f"/api/v1/releases?before={middle}",
               f"/api/v1/releases/{history.failed_canary}", "/api/v1/hosts", "/api/v1/audit", "/api/v1/events",
               "/metrics"]
        timings: dict[str, list[float]] = {p: [] for p in pages + api}
        failures: list[str] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            with httpx.Client(base_url=url, timeout=30, cookies=cookies,
                              headers={"Authorization": f"Bearer {token}"}) as http, \
                    httpx.Client(base_url=url, timeout=30, cookies=cookies) as pages_http:
                order = pages + api
                for r in range(args.rounds):
                    for path in order[(n + r) % len(order):] + order[:(n + r) % len(order)]:
                        conn = pages_http if path in pages else http
                        t0 = time.perf_counter()
                        try:
                            status = conn.get(path).status_code
                        except httpx.HTTPError as exc:
                            status = type(exc).__name__
                        elapsed = (time.perf_counter() - t0) * 1000
                        with lock:
                            timings[path].append(elapsed)
                            if status != 200:
                                failures.append(f"{path}: {status}")

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        total = sum(len(v) for v in timings.values())
        result = {
            "bench": "dashboard", "database": "postgresql" if args.database_url else "sqlite",
            "releases": args.releases, "hosts": args.hosts, "audit_events": history.events,
            "clients": args.clients, "requests": total, "requests_per_s": round(total / wall, 1),
            "fill_s": round(fill_s, 1), "failures": len(failures), "load_avg_1m": round(os.getloadavg()[0], 1),
            "p95_max_ms": round(max(percentile(v, 0.95) for v in timings.values()), 1),
            "endpoints": {p: {"p50_ms": round(statistics.median(v), 1), "p95_ms": round(percentile(v, 0.95), 1)}
                          for p, v in timings.items()},
        }
        print(json.dumps(result))
        return 1 if failures else 0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
