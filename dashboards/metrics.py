"""The platform's own Prometheus metrics, read from the database at scrape time.

Everything is computed from the rows the controller writes, so any number of dashboard
replicas expose the same figures and a restart loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from deployer.service import DeployService
from deployer.service import PlatformFigures

BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0, 86400.0)


def _histogram(name: str, doc: str, samples: dict[str, list[float]], label: str) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[label] if label else None)
    for key, values in sorted(samples.items()):
        buckets = [(str(b), float(sum(1 for v in values if v <= b))) for b in BUCKETS]
        buckets.append(("+Inf", float(len(values))))
        family.add_metric([key] if label else [], buckets, sum_value=float(sum(values)))
    return family


class PipelineCollector:
    """Hosts, the deployment in flight, outcomes, durations and the queue."""

    def __init__(self, service: DeployService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        status = self.service.status(releases=1)
        healthy = GaugeMetricFamily("deployer_host_healthy", "1 when the host answered its health check",
                                    labels=["host"])
        converged = GaugeMetricFamily("deployer_host_converged", "1 when the host runs its desired version",
                                      labels=["host"])
        for host in status.hosts:
            healthy.add_metric([host.name], 1.0 if host.healthy else 0.0)
            converged.add_metric([host.name], 1.0 if host.desired_version == host.observed_version else 0.0)
        yield healthy
        yield converged
        active = status.active
        in_flight = GaugeMetricFamily("deployer_deployment_in_progress", "1 while a deployment runs",
                                      labels=["status"])
        in_flight.add_metric([active.status if active else "idle"], 1.0 if active else 0.0)
        yield in_flight
        wave = GaugeMetricFamily("deployer_deployment_wave", "wave of the deployment in flight (0 = canary)")
        wave.add_metric([], float(active.wave) if active else -1.0)
        yield wave
        locked = GaugeMetricFamily("deployer_pipeline_locked", "1 while the pipeline is locked")
        locked.add_metric([], 1.0 if status.lock else 0.0)
        yield locked
        yield from self._figures(self.service.platform_figures())

    @staticmethod
    def _figures(f: PlatformFigures) -> Iterator[Metric]:
        releases = CounterMetricFamily("deployer_releases", "finished releases by kind and result",
                                       labels=["kind", "result"])
        for (kind, result), count in sorted(f.releases.items()):
            releases.add_metric([kind, result], float(count))
        yield releases
        rollbacks = CounterMetricFamily("deployer_rollbacks", "deployments rolled back (bad canary, host failure "
                                        "or abort)", labels=["trigger"])
        for trigger, count in sorted(f.rollbacks.items()):
            rollbacks.add_metric([trigger], float(count))
        yield rollbacks
        verdicts = CounterMetricFamily("deployer_verdicts", "decisive canary verdicts by result", labels=["result"])
        for result, count in sorted(f.verdicts.items()):
            verdicts.add_metric([result], float(count))
        yield verdicts
        queue = GaugeMetricFamily("deployer_queue_commits", "merged commits not yet on the fleet, by status",
                                  labels=["status"])
        for name, count in sorted(f.queue.items()):
            queue.add_metric([name], float(count))
        yield queue
        yield _histogram("deployer_stage_duration_seconds", "how long each kind of stage took", f.stage_seconds,
                         "stage")
        yield _histogram("deployer_lead_time_seconds", "merge to the whole fleet, per shipped commit",
                         {"": f.lead_times}, "")
        yield _histogram("deployer_bad_canary_to_rollback_seconds",
                         "a failed release's version started serving -> every host back", {"": f.restore_times}, "")


def build_registry(service: DeployService) -> CollectorRegistry:
    """A registry of this app's own (no process-global state, so several apps can coexist)."""
    registry = CollectorRegistry()
    registry.register(PipelineCollector(service))  # type: ignore[arg-type]
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition format and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
