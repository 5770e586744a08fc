"""The platform's own Prometheus metrics, read from the database at scrape time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from deployer.service import DeployService


class PipelineCollector:
    """Hosts, the deployment in flight and release outcomes as gauges."""

    def __init__(self, service: DeployService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        status = self.service.status(releases=200)
        healthy = GaugeMetricFamily("deployer_host_healthy", "1 when the host answered its health check",
                                    labels=["host"])
        converged = GaugeMetricFamily("deployer_host_converged", "1 when the host runs its desired version",
                                      labels=["host"])
        for host in status["hosts"]:
            healthy.add_metric([host["name"]], 1.0 if host["healthy"] else 0.0)
            converged.add_metric([host["name"]],
                                 1.0 if host["desired_version"] == host["observed_version"] else 0.0)
        yield healthy
        yield converged
        active = status["active"]
        in_flight = GaugeMetricFamily("deployer_deployment_in_progress", "1 while a deployment runs",
                                      labels=["status"])
        in_flight.add_metric([active["status"] if active else "idle"], 1.0 if active else 0.0)
        yield in_flight
        wave = GaugeMetricFamily("deployer_deployment_wave", "wave of the deployment in flight (0 = canary)")
        wave.add_metric([], float(active["wave"]) if active else -1.0)
        yield wave
        outcomes = GaugeMetricFamily("deployer_recent_releases", "releases among the last 200, by status",
                                     labels=["status"])
        for name, count in sorted(Counter(r["status"] for r in status["releases"]).items()):
            outcomes.add_metric([name], float(count))
        yield outcomes
        locked = GaugeMetricFamily("deployer_pipeline_locked", "1 while the pipeline is locked")
        locked.add_metric([], 1.0 if status["lock"] else 0.0)
        yield locked


def build_registry(service: DeployService) -> CollectorRegistry:
    """A registry of this app's own (no process-global state, so several apps can coexist)."""
    registry = CollectorRegistry()
    registry.register(PipelineCollector(service))  # type: ignore[arg-type]
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition format and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
