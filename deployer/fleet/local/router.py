"""The built-in router: a balancer process to start or adopt, stop, and drain and enable hosts through.

The balancer runs in its own session so it keeps serving while the controller is down;
its pid and start time live in `state_dir/balancer.json`, its output in
`state_dir/balancer.log`. Admin calls that fail because it is not running are not fatal
for a deploy (no traffic flows, so none can fail): they become notes on the DeployResult.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deployer.exceptions import DeployerError
from deployer.fleet.local import procs
from deployer.fleet.local.balancer_client import BalancerClient, BalancerError
from deployer.fleet.base import Host, HostTraffic

log = logging.getLogger(__name__)

# The directory that contains the `deployer` package, so `-m deployer.fleet.local.balancer` imports.
CODE_ROOT = Path(__file__).resolve().parents[3]
POLL_S = 0.02


class BalancerProcess:
    """One balancer process in front of the fleet's hosts (a Router)."""

    def __init__(
        self,
        *,
        state_dir: Path,
        bind: str,
        port: int,
        hosts: list[Host],
        health_path: str,
        health_interval_s: float,
        drain_timeout_s: float,
        start_timeout_s: float = 15.0,
    ) -> None:
        self.state_dir = state_dir
        self.bind = bind
        self.port = port
        self.hosts = hosts
        self.health_path = health_path
        self.health_interval_s = health_interval_s
        self.drain_timeout_s = drain_timeout_s
        self.start_timeout_s = start_timeout_s
        self.client = BalancerClient(self.url)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL for traffic and for the admin API."""
        return f"http://{self.bind}:{self.port}"

    @property
    def state_path(self) -> Path:
        """Where the balancer's pid and start time are recorded."""
        return self.state_dir / "balancer.json"

    def start(self) -> str:
        """Start the balancer, or adopt the one already running for this state_dir; return its URL."""
        with self._lock:
            ref = procs.ref_from_json(procs.read_json(self.state_path))
            if procs.is_alive(ref) and ref is not None:
                if self._wait_answering(None, timeout=2.0):
                    self._reconcile()
                    return self.url
                log.warning("balancer pid %d does not answer; replacing it", ref.pid)
                procs.terminate(ref, 5.0)
            if not procs.port_is_free(self.bind, self.port):
                raise DeployerError(f"balancer port {self.port} on {self.bind} is in use by another process")
            argv = [
                sys.executable,
                "-m",
                "deployer.fleet.local.balancer",
                "--host",
                self.bind,
                "--port",
                str(self.port),
                "--health-interval",
                str(self.health_interval_s),
                "--health-path",
                self.health_path,
            ]
            for host in self.hosts:
                argv += ["--upstream", f"{host.name}={host.address}"]
            pythonpath = os.pathsep.join(p for p in (str(CODE_ROOT), os.environ.get("PYTHONPATH", "")) if p)
            env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1"}
            log_path = self.state_dir / "balancer.log"
            offset = log_path.stat().st_size if log_path.exists() else 0
            self._proc, ref = procs.spawn(argv, cwd=self.state_dir, env=env, log_path=log_path)
            # Recorded before waiting: if we die now, the next controller can still stop it.
            procs.write_json_atomic(
                self.state_path, {**ref.to_json(), "port": self.port, "started_at": time.time()}
            )
            if not self._wait_answering(self._proc, timeout=self.start_timeout_s):
                self.stop()
                tail = procs.log_tail(log_path, offset)
                raise DeployerError(f"balancer did not start on port {self.port}; {log_path}:\n{tail}")
            log.info("balancer started on %s (pid %d)", self.url, ref.pid)
            return self.url

    def stop(self) -> None:
        """Stop the balancer process (SIGTERM, then SIGKILL) if it runs."""
        state = procs.read_json(self.state_path)
        ref = procs.ref_from_json(state)
        if ref is not None:
            procs.terminate(ref, 10.0, self._proc)
            procs.write_json_atomic(
                self.state_path, {**state, "pid": None, "start_time": None, "stopped_at": time.time()}
            )
        self._proc = None

    def close(self) -> None:
        """Release the admin client's connections."""
        self.client.close()

    def drain(self, host: Host, notes: list[str]) -> None:
        """Take `host` out of rotation and wait for its in-flight requests (bounded)."""
        try:
            info = self._call(host, lambda: self.client.drain(host.name, self.drain_timeout_s))
        except BalancerError as exc:
            notes.append(f"drain skipped: {exc}")
            log.warning("drain of %s skipped: %s", host.name, exc)
            return
        if not info.get("drained", False):
            notes.append(
                f"drain timed out after {self.drain_timeout_s:g}s with {info.get('in_flight')} in flight"
            )

    def enable(self, host: Host, address: str, notes: list[str]) -> None:
        """Point `host` at `address`, put it back in rotation, wait until the balancer's check lets it in."""
        try:
            self.client.set_address(host.name, address)  # a no-op when unchanged
        except BalancerError as exc:
            notes.append(f"enable skipped: {exc}")
            log.warning("enable of %s skipped: %s", host.name, exc)
            return
        deadline = time.monotonic() + max(2.0, 3 * self.health_interval_s)
        while True:
            try:
                info = self.client.enable(host.name)
            except BalancerError as exc:
                notes.append(f"enable skipped: {exc}")
                log.warning("enable of %s skipped: %s", host.name, exc)
                return
            if info.get("in_rotation"):
                return
            if time.monotonic() >= deadline:
                notes.append(f"not in rotation yet: {info.get('last_error') or 'health check pending'}")
                return
            time.sleep(POLL_S)

    def set_weight(self, host: Host, weight: int) -> None:
        """The built-in balancer shares traffic equally: weight 0 takes the host out, any other puts it in."""
        if not 0 <= weight <= 256:
            raise DeployerError(f"weight {weight} for {host.name} is out of range; use 0-256")
        if weight == 0:
            self._call(host, lambda: self.client.drain(host.name, 0.0))
        else:
            self._call(host, lambda: self.client.enable(host.name))

    def traffic(self) -> dict[str, HostTraffic]:
        """Per-host in-flight and served counts as the balancer counts them."""
        try:
            hosts = self.client.hosts()
        except BalancerError as exc:
            raise DeployerError(f"built-in balancer at {self.url}: {exc}") from exc
        return {name: HostTraffic(in_flight=int(h.get("in_flight", 0)), served=int(h.get("served", 0)),
                                  in_rotation=bool(h.get("in_rotation")))
                for name, h in hosts.items()}

    def _call(self, host: Host, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run an admin call, registering the host first if the balancer does not know it."""
        try:
            return action()
        except BalancerError as exc:
            if exc.status != 404:
                raise
        self.client.set_address(host.name, host.address)
        return action()

    def _reconcile(self) -> None:
        """Make an adopted balancer's host list match this fleet (a no-op when it does)."""
        for host in self.hosts:
            try:
                self.client.set_address(host.name, host.address)
            except BalancerError as exc:
                log.warning("could not register %s with the balancer: %s", host.name, exc)

    def _wait_answering(self, proc: subprocess.Popen[bytes] | None, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.client.ping():
            if time.monotonic() >= deadline:
                return False
            if proc is None:
                time.sleep(POLL_S)
                continue
            try:
                proc.wait(timeout=POLL_S)  # a sleep that ends early if it crashed
                return False
            except subprocess.TimeoutExpired:
                pass
        return True
