"""The post-deploy watch at work: measure the live release, ask `post_deploy.decide`, roll back.

While no deployment is in flight the controller calls `tick()`; once per interval it
scrapes every host's /metrics, notices crashes (a host down that the fleet says is not
running, or a process start time that changed without the platform restarting it), turns
the counters into one fleet-wide window (none in the warm-up after the release
succeeded: fresh processes are slower than warm ones), records the live version's typical figures (the
yardstick for the next release), and acts on the decision.

A rollback is a new `rollback` release to the previous good one, on the fast path (no
bake: that version already proved itself), created in the same transaction that marks the
harmful release rolled back, writes the evidence on it and in the audit log, and makes its
commits suspects (or the culprit, if it held one) for the culprit search. The pipeline is
not locked: the culprit search and the commits behind it go on without a human.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session

from canary.counters import histogram_quantile
from canary.scrape import HostReading, host_interval, parse_exposition
from deployer import batching, store
from deployer.fleet.base import Fleet, Host
from deployer.model import AuditEvent, Deployment, Release, ReleaseKind, VersionHealth, utcnow
from deployer.pipeline import Status, plan_waves, rollout_order
from deployer.post_deploy import Crash, Decision, Figures, Policy, Thresholds, Window, decide, figures_of
from deployer.settings import Settings, WatchThresholds

log = logging.getLogger(__name__)
ACTOR = "post-deploy watch"
KEEP_WINDOWS = 120          # the live version's figures are medians over its last windows
SAVE_EVERY = 6              # windows between two writes of those figures


def policy_of(settings: Settings) -> Policy:
    """The pure policy from the `post_deploy` settings."""
    def limits(t: WatchThresholds) -> Thresholds:
        return Thresholds(max_crashes=t.max_crashes, crash_window_s=t.crash_window, error_ratio=t.error_ratio,
                          error_increase=t.error_increase, latency_ratio=t.latency_ratio,
                          latency_increase_s=t.latency_increase, bad_windows=t.bad_windows,
                          min_requests=t.min_requests)
    pd = settings.post_deploy
    return Policy(watch_s=pd.watch, strict=limits(pd.strict), relaxed=limits(pd.relaxed))


@dataclass
class _HostTrack:
    reading: HostReading | None = None
    down: bool = False


@dataclass
class _Live:
    release_id: int
    sha: str
    succeeded_wall: float
    deployments: int            # the newest deployment's id when the watch began on this release
    hosts: dict[str, _HostTrack] = field(default_factory=dict)
    crashes: list[Crash] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    unsaved: int = 0
    harm_reported: bool = False


class PostDeployWatch:
    """Watches the live release between deployments; `tick()` is cheap when nothing is due."""

    def __init__(self, *, settings: Settings, engine: Engine, fleet: Fleet,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.engine = engine
        self.fleet = fleet
        self.clock = clock
        self.wall = wall
        self.policy = policy_of(settings)
        self._client = httpx.Client(timeout=settings.analysis.scrape_timeout)
        self._live: _Live | None = None
        self._next_at = 0.0

    def close(self) -> None:
        self._client.close()

    def tick(self) -> None:
        """Measure once per interval while no deployment runs; roll back when the decision says so."""
        if not self.settings.post_deploy.enabled:
            return
        now = self.clock()
        if now < self._next_at:
            return  # the database is read once per interval, not on every controller tick
        with store.session_scope(self.engine) as session:
            deploying = store.active_deployment(session) is not None
            deployments = store.latest_deployment_id(session)
        if deploying or (self._live is not None and self._live.deployments != deployments):
            # A deployment moves hosts on purpose: keep what the leaving release showed (the
            # next one's yardstick), then start afresh on whatever the deployment leaves live.
            # A deployment that began and ended between two looks (a canary that crashed and was
            # rolled back in seconds) restarted hosts too: its id tells, so those restarts are
            # never taken for crashes of the live release.
            if self._live is not None and self._live.unsaved:
                self._save_figures(self._live)
            self._live = None
            self._next_at = now + self.settings.post_deploy.interval
            return
        with store.session_scope(self.engine) as session:
            release = store.last_good_release(session)
            if release is None or release.id is None:
                return
            if self._live is None or self._live.release_id != release.id:
                finished = release.finished_at or release.created_at
                self._live = _Live(release.id, release.sha, _epoch(finished), deployments)
        self._next_at = now + self.settings.post_deploy.interval
        live = self._live
        assert live is not None
        known_crashes = len(live.crashes)
        window = self._measure(live, now)
        with store.session_scope(self.engine) as session:
            overlapped = store.latest_deployment_id(session) != deployments
        if overlapped:
            # A deployment started while the hosts were being read: what moved may be its doing.
            del live.crashes[known_crashes:]
            self._live = None
            return
        since_success = max(0.0, self.wall() - live.succeeded_wall)
        if window is not None and since_success >= self.settings.post_deploy.warmup:
            live.windows = (live.windows + [window])[-KEEP_WINDOWS:]
            live.unsaved += 1
        with store.session_scope(self.engine) as session:
            previous = self._previous_figures(session, live)
        decision = decide(policy=self.policy, since_success_s=since_success, now=now,
                          crashes=live.crashes, windows=live.windows, previous=previous)
        if decision.rollback:
            self._act(live, decision)
        elif live.unsaved >= SAVE_EVERY:
            self._save_figures(live)

    # --- measuring -------------------------------------------------------------------------

    def _measure(self, live: _Live, now: float) -> Window | None:
        hosts = self.fleet.hosts()
        requests = errors = 0.0
        buckets: dict[float, float] = {}
        complete = True
        for host in hosts:
            track = live.hosts.setdefault(host.name, _HostTrack())
            reading = self._scrape(host)
            if reading is None:
                if not track.down and track.reading is not None and not self.fleet.probe(host).running:
                    live.crashes.append(Crash(host.name, now, "down"))
                    log.warning("post-deploy watch: %s is down on %s", host.name, live.sha[:12])
                track.down = track.down or track.reading is not None
                track.reading = None
                complete = False
                continue
            previous = track.reading
            if previous is not None and not track.down and _restarted(previous, reading):
                live.crashes.append(Crash(host.name, now, "restarted"))
                log.warning("post-deploy watch: %s restarted on its own on %s", host.name, live.sha[:12])
            track.reading, track.down = reading, False
            if previous is None:
                complete = False
                continue
            interval = host_interval(previous, reading)
            requests += interval.requests
            errors += interval.errors
            for le, count in interval.buckets.items():
                buckets[le] = buckets.get(le, 0.0) + count
        if not complete or not hosts:
            return None
        return Window(requests=requests, errors=errors, p99_s=histogram_quantile(0.99, list(buckets.items())))

    def _scrape(self, host: Host) -> HostReading | None:
        try:
            response = self._client.get(host.address.rstrip("/") + "/metrics")
            response.raise_for_status()
            return parse_exposition(response.text)
        except (httpx.HTTPError, ValueError):
            return None

    # --- figures ------------------------------------------------------------------------------

    def _previous_figures(self, session: Session, live: _Live) -> Figures | None:
        release = session.get(Release, live.release_id)
        if release is None or not release.previous_sha:
            return None
        health = session.get(VersionHealth, release.previous_sha)
        return Figures.from_dict(health.figures) if health is not None and health.figures else None

    def _save_figures(self, live: _Live) -> None:
        figures = figures_of(live.windows, min_requests=self.policy.strict.min_requests)
        live.unsaved = 0
        if figures is None:
            return
        with store.session_scope(self.engine) as session:
            health = session.get(VersionHealth, live.sha) or VersionHealth(sha=live.sha)
            health.figures, health.updated_at = figures.to_dict(), utcnow()
            session.add(health)

    # --- acting ---------------------------------------------------------------------------------

    def _act(self, live: _Live, decision: Decision) -> None:
        with store.session_scope(self.engine) as session:
            release = store.get_release(session, release_id=live.release_id)
            if release.kind in (ReleaseKind.BOOTSTRAP, ReleaseKind.ROLLBACK) or not release.previous_sha:
                # Nothing newer to blame: the harm is reported once, for a human.
                if not live.harm_reported:
                    store.audit(session, kind="post_deploy_harm", actor=ACTOR, release_id=release.id,
                                message=f"release {release.id} ({release.sha[:12]}) is hurting the fleet, but it is "
                                        f"a {release.kind.value} release with nothing to roll back to: "
                                        + "; ".join(decision.reasons), data=decision.evidence)
                    live.harm_reported = True
                return
            deployment = roll_back_release(session, settings=self.settings, release=release, decision=decision)
        log.warning("post-deploy watch: release %s rolled back (deployment %s): %s", live.release_id, deployment,
                    "; ".join(decision.reasons))
        self._live = None


def roll_back_release(session: Session, *, settings: Settings, release: Release, decision: Decision) -> int:
    """Mark `release` rolled back with its evidence and queue a fast rollback to the previous good one.

    One transaction (the caller's): the release's new status, its commits' suspicion, the
    evidence and the rollback deployment are written together or not at all.
    """
    assert release.id is not None
    reasons = "; ".join(decision.reasons)
    release.status = Status.ROLLED_BACK
    session.add(release)
    session.flush()
    target = store.last_good_release(session)
    assert target is not None and target.artifact, "a deployed release always has a good one before it"
    health = session.get(VersionHealth, release.sha) or VersionHealth(sha=release.sha)
    health.evidence = {"reasons": decision.reasons, **decision.evidence}
    health.rolled_back_release_id, health.updated_at = release.id, utcnow()
    session.add(health)
    commits = store.branch_commits(session)
    plan = batching.ReleasePlan(release.kind, release.sha, tuple(release.commit_shas))
    changes = batching.settle([batching.CommitRow(c.sha, c.status) for c in commits], plan, succeeded=False)
    by_sha = {c.sha: c for c in commits}
    for sha, status in changes.items():
        by_sha[sha].status = status
        session.add(by_sha[sha])
    # A status change of the release, so its audit event carries from/to like a transition's; it
    # names the release's deployment, so the release's own timeline shows it with its evidence.
    shipped = store.deployment_of(session, release_id=release.id)
    session.add(AuditEvent(
                kind="post_deploy_rollback", actor=ACTOR, release_id=release.id,
                deployment_id=shipped.id if shipped is not None else None,
                from_status=Status.SUCCEEDED.value, to_status=Status.ROLLED_BACK.value,
                message=f"release {release.id} ({release.sha[:12]}) rolled back after it succeeded "
                        f"({decision.sensitivity.value} watch): {reasons}",
                data={**decision.evidence, "reasons": decision.reasons,
                      "commits": {k: v.value for k, v in changes.items()}, "target_release": target.id}))
    host_names = [h.name for h in store.host_states(session)]
    canary, baseline, order = rollout_order(host_names, settings.rollout.canary_hosts)
    wave_plan = plan_waves(len(host_names), settings.rollout.canary_hosts, settings.rollout.waves)
    rollback = Release(sha=target.sha, kind=ReleaseKind.ROLLBACK, previous_sha=release.sha, commit_shas=[],
                       artifact=target.artifact, started_by=ACTOR)
    session.add(rollback)
    session.flush()
    deployment = Deployment(
        release_id=rollback.id, version=target.sha, previous_version=release.sha, previous_artifact=release.artifact,
        artifact=target.artifact, waves=len(wave_plan), wave_plan=wave_plan, host_order=order, canary_hosts=canary,
        baseline_hosts=baseline, max_extensions=settings.rollout.max_extensions, skip_analysis=True,
        max_rollback_failures=settings.rollout.rollback_max_failures,
        reason=f"post-deploy rollback of release {release.id} to release {target.id}: {reasons}")
    session.add(deployment)
    session.flush()
    assert deployment.id is not None
    store.audit(session, kind="rollback_requested", actor=ACTOR, deployment_id=deployment.id, release_id=rollback.id,
                message=f"rollback to release {target.id} ({target.sha[:12]}, fast path, no bake): {reasons}",
                data={"target_release": target.id, "sha": target.sha, "skip_analysis": True,
                      "rolled_back_release": release.id})
    return deployment.id


def _restarted(previous: HostReading, current: HostReading) -> bool:
    return not math.isnan(previous.start_time) and not math.isnan(current.start_time) and \
        previous.start_time != current.start_time


def _epoch(value: object) -> float:
    """A stored datetime (naive UTC on SQLite) as epoch seconds."""
    assert isinstance(value, datetime)
    aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    return aware.timestamp()
