"""The demo's production profile on one machine: PostgreSQL, Redis with rq workers, a Prometheus of its own.

`deployer demo --profile production` reads `config.production.yaml` instead of `config.yaml`,
gives the demo a fresh PostgreSQL database of its own (dropped and created again, like the
demo's workspace), starts a Prometheus that discovers the fleet through the targets file the
controller writes (file_sd, no reload when hosts change), and two `deployer worker` processes
that run the tests and builds from Redis. Everything else is the same scenario.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from deployer.exceptions import DeployerError
from deployer.scrape_targets import targets_path
from deployer.settings import Settings

PROFILE_CONFIG = "config.production.yaml"
WORKERS = 2
PROMETHEUS_CONFIG = """\
# Written by `deployer demo --profile production`. The fleet's hosts come from the targets file
# the controller rewrites whenever a host's address, role or version changes.
global:
  scrape_interval: {interval}
scrape_configs:
  - job_name: fleet
    scrape_interval: {interval}
    scrape_timeout: {timeout}
    file_sd_configs:
      - files: ['{targets}']
        refresh_interval: 1s
"""


def demo_database_url(base_config: dict[str, Any]) -> str:
    """The profile's database URL with `_demo` added to the database name."""
    url = str((base_config.get("database") or {}).get("url") or "")
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DeployerError(f"{PROFILE_CONFIG}: database.url: {url!r} is not a database URL; "
                            "use e.g. postgresql+psycopg://postgres@127.0.0.1:5432/deployer") from exc
    return parsed.set(database=f"{parsed.database or 'deployer'}_demo").render_as_string(hide_password=False)


def fresh_database(url: str) -> None:
    """Drop and create the demo's PostgreSQL database, so every demo starts from an empty one."""
    target = make_url(url)
    if not target.drivername.startswith("postgresql") or not target.database:
        raise DeployerError(f"{PROFILE_CONFIG}: database.url: {url!r} is not a PostgreSQL URL with a database name; "
                            "use e.g. postgresql+psycopg://postgres@127.0.0.1:5432/deployer_demo")
    name = target.database
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the server's own message says what is wrong (down, no rights)
        raise DeployerError(f"could not create the demo database {name} at {target.host}:{target.port}: {exc}") \
            from exc
    finally:
        admin.dispose()


class LocalPrometheus:
    """A Prometheus server for the demo, listening where `analysis.prometheus_url` says."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings = settings
        self.folder = folder
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> str:
        binary = shutil.which("prometheus")
        if binary is None:
            raise DeployerError("prometheus is not installed; install it (apt-get install prometheus, or "
                                "scripts/ensure-services.sh)")
        targets = targets_path(self.settings)
        if targets is None:
            raise DeployerError(f"{PROFILE_CONFIG}: analysis.file_sd is empty; the demo's Prometheus finds the "
                                "hosts through it (use e.g. prometheus/targets.json)")
        url = self.settings.analysis.prometheus_url.rstrip("/")
        address = urlsplit(url).netloc
        # Scrape at least twice per analysis interval, as the README asks.
        interval = max(0.5, self.settings.analysis.interval / 2)
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "prometheus.yml"
        # Prometheus durations take whole units: milliseconds.
        config.write_text(PROMETHEUS_CONFIG.format(interval=f"{round(interval * 1000)}ms",
                                                   timeout=f"{round(interval * 900)}ms", targets=targets))
        with open(self.folder / "prometheus.log", "ab") as log:
            self._proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={self.folder / 'tsdb'}",
                 f"--web.listen-address={address}"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise DeployerError(f"prometheus exited at start; see {self.folder / 'prometheus.log'}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=1.0).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise DeployerError(f"prometheus did not become ready at {url} within {timeout_s:g}s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
