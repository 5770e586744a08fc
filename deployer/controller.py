"""The controller loop: read state -> pipeline.advance -> carry out effects through adapters.

Loop order (as Zuul's scheduler): operator commands first, then the progress of the
deployment in flight (job results, host convergence, analysis), then new commits.
Every tick catches and logs its errors and the loop goes on.

Crash safety comes from reconciliation: a host's desired version is committed before
the controller acts, `fleet.deploy` is a no-op when the host already runs it, and on
start the controller probes every host and replays the entry action of the state the
database says each deployment is in.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from canary.verdict import Result
from deployer import batching, freezes, releases, stage_log, store, waves
from deployer.analysis import AnalysisWindow, WindowFactory, metric_series
from deployer.bake_guard import dead_hosts
from deployer.check_recovery import abandon_orphaned_checks
from deployer.checks import CheckService
from deployer.exceptions import DeployerError, InvalidTransition
from deployer.fleet.base import Builder, Fleet, HostStatus
from deployer.jobs import JobContext, build_job, run_tests_job
from deployer.model import (
    COMMAND_EVENTS,
    CheckState,
    Command,
    CommandKind,
    Commit,
    CommitStatus,
    Deployment,
    HostRole,
    Release,
    ReleaseKind,
    Stage,
    StageStatus,
    Verdict,
    utcnow,
)
from deployer.pipeline import (
    AwaitOperator,
    Build,
    DeployWave,
    Effect,
    Event,
    ExtendBake,
    Finish,
    Phase,
    RollBack,
    RunTests,
    StartBake,
    Status,
    backoff_delay,
    entry_effects,
)
from deployer.queue import TaskQueue
from deployer.reconcile import Reconciler
from deployer.rotation import restore_rotation
from deployer.settings import Settings
from deployer.scrape_targets import TargetPublisher
from deployer.source import GitSource
from deployer.watch import PostDeployWatch

log = logging.getLogger(__name__)
IDLE_RECONCILE_S = 5.0
TESTS_AHEAD_SWEEP_S = 2.0


@dataclass
class _Bake:
    deployment_id: int
    wave: int
    window: AnalysisWindow | None


class Controller:
    """Drives deployments one at a time; `run()` loops until told to stop."""

    def __init__(self, *, settings: Settings, engine: Engine, source: GitSource, builder: Builder,
                 fleet: Fleet, queue: TaskQueue, windows: WindowFactory,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.engine = engine
        self.source = source
        self.builder = builder
        self.fleet = fleet
        self.queue = queue
        self.windows = windows
        self.clock = clock
        # Deploy windows are in calendar time (weekends, evenings); the loop's timing is monotonic.
        self.wall_clock = wall_clock
        self._blackouts = settings.windows.parsed()
        self._held: str | None = None  # why new releases are held back, as last audited
        # Tests that run ahead: the merge gate's `tests` check of each merged commit, on its own
        # workers (a pool of its own in-process, so builds never queue behind them; rq: the workers).
        self.checks = CheckService(engine, settings)
        self._last_tests_sweep = float("-inf")
        self.job_context = JobContext(
            database_url=settings.database_url, repository=settings.repository, branch=settings.source.branch,
            workdir=str(settings.workdir_path), test_command=settings.pipeline.test_command,
            test_timeout_s=settings.pipeline.test_timeout, settings=settings)
        self.hosts = Reconciler(engine=engine, fleet=fleet, workers=settings.controller.host_workers,
                                probe_workers=settings.controller.probe_workers)
        self._hosts = self.hosts.hosts
        self.budget = settings.rollout_budget(len(self._hosts))
        # Whole-fleet probes while idle run here, beside the tick, and are collected when done.
        self._probes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="observe")
        self._observing: Future[dict[str, HostStatus]] | None = None
        self._observing_since = 0   # the reconciler's moves() mark when those probes began
        # (deployment, wave) planned since the last host outcome: nothing new to plan until one arrives.
        self._planned: tuple[int, int] | None = None
        self._deployment_cache: tuple[tuple[int, Any], Deployment] | None = None
        self._bake: _Bake | None = None
        self._poll_now = True
        self._last_poll = float("-inf")
        self._last_idle_reconcile = float("-inf")
        self._rollback_retry_at = 0.0
        # Post-deploy watch (deployer/watch.py): the live release after it succeeded.
        self.watch = PostDeployWatch(settings=settings, engine=engine, fleet=fleet, clock=clock)
        # Prometheus file_sd targets (deployer/scrape_targets.py), rewritten when hosts change.
        self.targets = TargetPublisher(settings=settings, engine=engine, fleet=fleet)

    # --- the loop -------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Recover, then tick until `stop` is set."""
        self.recover()
        try:
            while not stop.is_set():
                self.tick()
                stop.wait(self.settings.controller.tick)
        finally:
            self.close()

    def close(self) -> None:
        """Let host replacements in progress finish and stop the worker threads."""
        self._probes.shutdown(wait=True, cancel_futures=True)
        self.hosts.close()

    def tick(self) -> None:
        """One pass: commands, progress, discovery, next release. Errors are logged, not raised."""
        for step in (self._handle_commands, self._progress, self.watch.tick, self.targets.tick, self._discover,
                     self._tests_ahead, self._start_next_release):
            try:
                step()
            except Exception:
                log.exception("controller step %s failed; continuing", step.__name__)

    def recover(self) -> None:
        """On start: bootstrap if the database is empty, probe hosts, resume the deployment in flight."""
        self.source.fetch()
        with store.session_scope(self.engine) as session:
            bootstrapped = store.last_good_release(session) is not None
            rows = store.host_states_named(session, names=list(self._hosts))
            for host in self._hosts.values():
                if rows[host.name].address != host.address:
                    rows[host.name].address = host.address
                    session.add(rows[host.name])
        self.hosts.load()
        if not bootstrapped:
            self._bootstrap()
        self.hosts.observe_all()
        # A host drained by a controller killed mid-replacement goes back in rotation (deployer/rotation.py).
        restore_rotation(engine=self.engine, fleet=self.fleet)
        # Tests-ahead runs that died with the previous controller are asked for again (deployer/check_recovery.py).
        if abandon_orphaned_checks(engine=self.engine, settings=self.settings):
            self._last_tests_sweep = float("-inf")
        with store.session_scope(self.engine) as session:
            deployment = store.active_deployment(session)
            if deployment is None:
                return
            effects = entry_effects(store.state_of(deployment))
            store.audit(session, kind="recovered", deployment_id=deployment.id, release_id=deployment.release_id,
                        message=f"controller restarted; resuming {deployment.status.value}"
                                + (f"/{deployment.phase.value}" if deployment.phase else ""))
            deployment_id = deployment.id
        assert deployment_id is not None
        self._carry_out(deployment_id, effects)

    # --- bootstrap and reconciliation --------------------------------------------------

    def _bootstrap(self) -> None:
        """First start: adopt the branch head as the fleet's version, deployed everywhere."""
        head = self.source.fetch()
        info = self.source.info(head)
        artifact = self.builder.build(head)
        log.info("bootstrapping the fleet on %s", head[:12])
        with store.session_scope(self.engine) as session:
            for state in store.host_states_named(session, names=list(self._hosts)).values():
                state.desired_version, state.desired_artifact, state.role = head, artifact.location, HostRole.IDLE
                session.add(state)
        # Start-up, before any tick: the one place that waits for hosts.
        failures = self.hosts.converge(list(self._hosts))
        if failures:
            raise DeployerError(f"bootstrap failed: {'; '.join(failures)}")
        with store.session_scope(self.engine) as session:
            commit = session.get(Commit, head)
            if commit is None:
                commit = Commit(sha=head, position=0, author=info.author, message=info.message,
                                committed_at=info.committed_at)
                store.add_commits(session, commits=[commit])
            release = Release(sha=head, kind=ReleaseKind.BOOTSTRAP, commit_shas=[head], status=Status.SUCCEEDED,
                              artifact=artifact.location, finished_at=utcnow())
            session.add(release)
            session.flush()
            commit.status, commit.release_id = CommitStatus.SHIPPED, release.id
            session.add(commit)
            store.audit(session, kind="bootstrap", release_id=release.id,
                        message=f"fleet of {len(self._hosts)} hosts started on {head[:12]} ({info.title})")

    # --- operator commands -----------------------------------------------------------------

    def _handle_commands(self) -> None:
        with store.session_scope(self.engine) as session:
            commands = store.pending_commands(session)
        for command in commands:
            self._handle_command(command)

    def _handle_command(self, command: Command) -> None:
        effects: list[Effect] = []
        deployment_id: int | None = None
        with store.session_scope(self.engine) as session:
            fresh = session.get(Command, command.id)
            assert fresh is not None
            fresh.handled_at = utcnow()
            if fresh.kind is CommandKind.POLL:
                self._poll_now = True
                fresh.outcome = "fetching"
            else:
                deployment = store.active_deployment(session)
                if deployment is None or (fresh.deployment_id not in (None, deployment.id)):
                    fresh.outcome = "ignored: that deployment is not in progress"
                else:
                    event = COMMAND_EVENTS[fresh.kind]
                    reason = f"{fresh.kind.value} by {fresh.actor}" + (f": {fresh.reason}" if fresh.reason else "")
                    try:
                        effects = store.apply_event(session, deployment=deployment, event=event, actor=fresh.actor,
                                                    reason=reason)
                    except InvalidTransition as exc:
                        fresh.outcome = f"refused: {exc}"
                    else:
                        # Set before settling: an aborted release's commits are not blamed.
                        deployment.aborted = event is Event.ABORT or deployment.aborted
                        assert deployment.id is not None
                        stage_log.record_event(session, deployment_id=deployment.id, event=event, effects=effects,
                                               reason=reason)
                        self._settle_if_finished(session, deployment, effects)
                        fresh.outcome = "done"
                        deployment_id = deployment.id
            session.add(fresh)
        if deployment_id is not None:
            self._carry_out(deployment_id, effects)

    # --- progress of the deployment in flight ------------------------------------------------

    def _progress(self) -> None:
        if self.hosts.poll():
            self._planned = None  # capacity freed or a host failed: plan again
        deployment = self._active_deployment()
        if deployment is None:
            self._reconcile_idle()
            return
        assert deployment.id is not None
        status, phase = deployment.status, deployment.phase
        if status is Status.QUEUED:
            self._start_queued(deployment)
        elif status is Status.TESTING:
            self._check_stage(deployment, "tests", Event.TESTS_PASSED, Event.TESTS_FAILED)
        elif status is Status.BUILDING:
            self._check_stage(deployment, "build", Event.BUILD_SUCCEEDED, Event.BUILD_FAILED)
        elif phase is Phase.DEPLOYING:
            self._deploy_wave(deployment)
        elif phase is Phase.BAKING:
            self._analyse(deployment)
        elif status is Status.ROLLING_BACK:
            self._roll_back(deployment)

    def _start_queued(self, deployment: Deployment) -> None:
        """Start a queued release: at the build when its commits passed their tests ahead, else at the tests.

        A deploy waits while the deploy window is closed (a rollback does not), and is superseded
        when the planner would now take further commits in its place.
        """
        assert deployment.id is not None
        passed = None
        with store.session_scope(self.engine) as session:
            release = store.get_release(session, release_id=deployment.release_id)
            if release.kind is not ReleaseKind.ROLLBACK:
                newer = releases.superseded_by(session, release=release, settings=self.settings,
                                               now=self.wall_clock())
                if newer is not None and newer.plan is not None:
                    superseded = f"superseded by a plan up to {newer.plan.sha[:12]}: {newer.reason}"
                else:
                    superseded = None
                if superseded is None and self._window_closed(session) is not None:
                    return  # held: the window or a freeze says so; newer commits may still supersede it
            else:
                superseded = None
            if superseded is None and self.settings.pipeline.tests_ahead:
                check = releases.passed_ahead(session, release=release)
                if check is not None:
                    session.add(Stage(deployment_id=deployment.id, name="tests", status=StageStatus.PASSED,
                                      started_at=check.started_at or check.created_at,
                                      finished_at=check.finished_at or utcnow(),
                                      detail=f"passed ahead of the release: {check.detail}", log=check.log))
                    passed = check.detail
            count = len(release.commit_shas)
        if superseded is not None:
            self._advance(deployment.id, Event.SUPERSEDE, superseded)
        elif passed is not None:
            self._advance(deployment.id, Event.START_TESTED, f"{count} commit(s), tests passed ahead: {passed}")
        else:
            self._advance(deployment.id, Event.START, f"{count} commit(s)")

    def _active_deployment(self) -> Deployment | None:
        """The deployment in flight, re-read only when it changed.

        Its row carries the host order of the whole fleet; only a transition (apply_event,
        which the controller alone calls) changes what the tick reads, and it stamps updated_at.
        """
        with store.session_scope(self.engine) as session:
            stamp = store.active_deployment_stamp(session)
            if stamp is None:
                self._deployment_cache = None
                return None
            cached = self._deployment_cache
            if cached is not None and cached[0] == stamp:
                return cached[1]
            deployment = store.get_deployment(session, deployment_id=stamp[0])
        self._deployment_cache = (stamp, deployment)
        return deployment

    def _release_commits(self, deployment: Deployment) -> list[str]:
        with store.session_scope(self.engine) as session:
            return list(store.get_release(session, release_id=deployment.release_id).commit_shas)

    def _check_stage(self, deployment: Deployment, name: str, passed: Event, failed: Event) -> None:
        assert deployment.id is not None
        with store.session_scope(self.engine) as session:
            stage = store.latest_stage(session, deployment_id=deployment.id, name=name)
        if stage is None:
            self._carry_out(deployment.id, [RunTests()] if name == "tests" else [Build()])
            return
        if stage.status is StageStatus.RUNNING:
            failure = self.queue.failure(f"{name}-{deployment.id}")
            if failure:
                with store.session_scope(self.engine) as session:
                    store.finish_stage(session, stage_id=stage.id, passed=False, detail=f"job died: {failure}")
            return
        ok = stage.status is StageStatus.PASSED
        detail = stage.detail if ok else f"{stage.detail}\n{_last_lines(stage.log, 12)}".strip()
        self._advance(deployment.id, passed if ok else failed, detail)

    def _deploy_wave(self, deployment: Deployment) -> None:
        """Start what the capacity budget allows, never waiting for a host; advance when the wave is done."""
        assert deployment.id is not None
        key = (deployment.id, deployment.wave)
        if self._planned == key:
            return  # nothing finished since the last plan: the budget cannot have freed up
        targets = deployment.host_order[: deployment.wave_plan[deployment.wave]]
        budget, wave = self.budget, list(targets)
        if deployment.wave < deployment.waves - 1:
            # The wave's new hosts and the baseline restart at the same moment, as a fair
            # comparison needs (fresh processes are slower than warm ones): baseline first.
            budget = waves.paired_budget(self.budget, baseline=len(deployment.baseline_hosts))
            wave = list(deployment.baseline_hosts) + [n for n in targets if n not in deployment.baseline_hosts]
        progress = waves.step(self.hosts, wave=wave, budget=budget)
        if progress.stopped is not None:
            # A failed host stops the wave at once: nothing more starts, the rollback takes over.
            self._advance(deployment.id, Event.HOST_FAILED, progress.stopped)
            return
        if not progress.complete:
            self._planned = key
            return
        on_new = targets
        self._advance(deployment.id, Event.WAVE_DEPLOYED,
                      f"wave {deployment.wave}: {len(on_new)}/{len(self._hosts)} hosts on "
                      f"{deployment.version[:12]}", data={"hosts": on_new})

    @staticmethod
    def _wave_hosts(deployment: Deployment, wave: int) -> list[str]:
        """The hosts a wave adds to the new version (wave 0: the canary hosts)."""
        start = deployment.wave_plan[wave - 1] if wave > 0 else 0
        return deployment.host_order[start: deployment.wave_plan[wave]]

    def _analyse(self, deployment: Deployment) -> None:
        assert deployment.id is not None
        bake = self._bake
        if bake is None or bake.deployment_id != deployment.id or bake.wave != deployment.wave:
            self._carry_out(deployment.id, [StartBake(deployment.wave)])
            return
        if bake.window is None:
            self._advance(deployment.id, Event.ANALYSIS_PASSED, "analysis skipped: the bake time is 0s")
            return
        now = self.clock()
        if not bake.window.due(now):
            return
        # A new-version host that died during its bake fails the wave (deployer/bake_guard.py).
        dead = dead_hosts(self.fleet, self._wave_hosts(deployment, deployment.wave))
        if dead:
            self._advance(deployment.id, Event.HOST_FAILED,
                          f"wave {deployment.wave}: {', '.join(dead)} stopped during the bake")
            return
        verdict = bake.window.step(now)
        if verdict is None:
            return
        summary = verdict.to_dict()
        if bake.window.last_samples is not None and self.settings.canary_config is not None:
            # The dashboard charts canary against baseline per metric, next to the decision.
            summary["series"] = metric_series(self.settings.canary_config, *bake.window.last_samples)
            summary["interval_s"] = bake.window.interval_s
        with store.session_scope(self.engine) as session:
            row = store.get_deployment(session, deployment_id=deployment.id)
            row.last_verdict = summary
            session.add(row)
        event = {Result.PASS: Event.ANALYSIS_PASSED, Result.FAIL: Event.ANALYSIS_FAILED,
                 Result.INCONCLUSIVE: Event.ANALYSIS_INCONCLUSIVE}.get(verdict.result)
        if event is None:
            return
        with store.session_scope(self.engine) as session:
            store.add_verdict(session, verdict=Verdict(
                deployment_id=deployment.id, wave=deployment.wave, result=verdict.result.value, score=verdict.score,
                reason=verdict.reason, report=summary, intervals=bake.window.intervals))
        self._advance(deployment.id, event, f"wave {deployment.wave} analysis: {verdict.result.value}: {verdict.reason}",
                      data={"score": verdict.score, "intervals": bake.window.intervals})

    def _roll_back(self, deployment: Deployment) -> None:
        """Start every host's way back (as wide as the host workers allow); advance once all are back or failed."""
        assert deployment.id is not None
        if self.clock() < self._rollback_retry_at:
            return
        self.hosts.start(self.hosts.pending())
        if self.hosts.pool.in_flight():
            return
        if self.hosts.failed:
            self._advance(deployment.id, Event.HOST_FAILED, f"rollback attempt {deployment.rollback_failures + 1} "
                          "failed: " + "; ".join(self.hosts.failure_texts()))
            return
        if self.hosts.pending():
            return
        self._advance(deployment.id, Event.ROLLBACK_DONE,
                      f"every host is back on {(deployment.previous_version or '?')[:12]}")

    def _reconcile_idle(self) -> None:
        """With nothing deploying, restart any host that drifted from its desired version."""
        observing = self._observing
        if observing is not None and observing.done():
            self._observing = None
            self.hosts.record_probes(observing.result(), since=self._observing_since)
            if self.hosts.failed:
                log.warning("hosts could not be restored: %s", "; ".join(self.hosts.failure_texts()))
            self.hosts.clear_failures()  # each idle pass tries the drifted hosts again
            self.hosts.start(self.hosts.pending())
        now = self.clock()
        if self._observing is not None or now - self._last_idle_reconcile < IDLE_RECONCILE_S:
            return
        self._last_idle_reconcile = now
        hosts = dict(self._hosts)
        self._observing_since = self.hosts.moves()
        self._observing = self._probes.submit(self._probe_all, hosts)

    def _probe_all(self, hosts: dict[str, Any]) -> dict[str, HostStatus]:
        """Probe every host, `controller.probe_workers` at a time (runs beside the tick)."""
        width = max(1, min(self.settings.controller.probe_workers, len(hosts)))
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="probe") as pool:
            names = list(hosts)
            return dict(zip(names, pool.map(lambda n: self.fleet.probe(hosts[n]), names)))

    # --- transitions and effects ----------------------------------------------------------------

    def _advance(self, deployment_id: int, event: Event, reason: str = "",
                 data: dict[str, Any] | None = None) -> None:
        with store.session_scope(self.engine) as session:
            deployment = store.get_deployment(session, deployment_id=deployment_id)
            effects = store.apply_event(session, deployment=deployment, event=event, reason=reason, data=data)
            stage_log.record_event(session, deployment_id=deployment_id, event=event, effects=effects, reason=reason)
            self._settle_if_finished(session, deployment, effects)
        log.info("deployment %s: %s -> %s %s", deployment_id, event.value, deployment.status.value, reason)
        self._carry_out(deployment_id, effects)

    def _carry_out(self, deployment_id: int, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, RunTests):
                self._submit(deployment_id, "tests", run_tests_job)
            elif isinstance(effect, Build):
                self._submit(deployment_id, "build", build_job)
            elif isinstance(effect, DeployWave):
                self._set_wave_targets(deployment_id, effect.wave)
            elif isinstance(effect, StartBake):
                self._start_bake(deployment_id, effect.wave)
            elif isinstance(effect, ExtendBake):
                window = self._bake.window if self._bake else None
                if window is not None and not window.troubled:
                    window.extend(self._bake_seconds(effect.wave))
                else:
                    # Samples with a source problem can never pass: start over on fresh ones.
                    self._start_bake(deployment_id, effect.wave)
            elif isinstance(effect, RollBack):
                self._bake = None
                self._set_rollback_targets(deployment_id)
                # Back off: a version that cannot start now rarely starts two seconds later.
                rollout = self.settings.rollout
                self._rollback_retry_at = self.clock() + backoff_delay(
                    effect.attempt, base_s=rollout.rollback_retry, cap_s=rollout.rollback_retry_max)
            elif isinstance(effect, Finish):
                self._bake = None
                self._prune_releases()
            elif isinstance(effect, AwaitOperator):
                self._bake = None
                with store.session_scope(self.engine) as session:
                    store.audit(session, kind="awaiting_operator", deployment_id=deployment_id,
                                message=effect.reason)

    def _submit(self, deployment_id: int, name: str, job: Callable[..., Any]) -> None:
        with store.session_scope(self.engine) as session:
            existing = store.latest_stage(session, deployment_id=deployment_id, name=name)
            if existing is not None and existing.status is not StageStatus.RUNNING:
                return  # finished while the controller was away; the next tick reads it
            stage = store.start_stage(session, deployment_id=deployment_id, name=name)
            stage_id = stage.id
        self.queue.submit(f"{name}-{deployment_id}", job, self.job_context, deployment_id, stage_id)

    def _set_wave_targets(self, deployment_id: int, wave: int) -> None:
        """Commit the desired version of the wave's hosts before touching any of them."""
        with store.session_scope(self.engine) as session:
            deployment = store.get_deployment(session, deployment_id=deployment_id)
            targets = deployment.host_order[: deployment.wave_plan[wave]]
            rows = store.host_states_named(session, names=targets + list(deployment.baseline_hosts))
            for name in targets:
                state = rows[name]
                _set_if_changed(state, desired_version=deployment.version, desired_artifact=deployment.artifact,
                                role=HostRole.CANARY if name in deployment.canary_hosts else HostRole.WAVE,
                                deployment_id=deployment_id)
                session.add(state)
            if wave < deployment.waves - 1:
                for name in deployment.baseline_hosts:
                    state = rows[name]
                    if state.restart_generation > state.restarted_generation and \
                            state.desired_version == deployment.previous_version:
                        continue  # replayed after a crash: the restart is already asked for
                    state.desired_version = deployment.previous_version
                    state.desired_artifact = deployment.previous_artifact
                    state.restart_generation = state.restarted_generation + 1
                    state.role, state.deployment_id = HostRole.BASELINE, deployment_id
                    session.add(state)
            store.start_stage(session, deployment_id=deployment_id, name=f"wave-{wave}",
                              detail=f"{len(targets)} host(s): {_names(targets)}")
        self._after_targets_changed()

    def _after_targets_changed(self) -> None:
        """Desired versions changed: re-read the book (one query) and forget the last wave's failures."""
        self.hosts.load()
        self.hosts.clear_failures()
        self._planned = None

    def _set_rollback_targets(self, deployment_id: int) -> None:
        with store.session_scope(self.engine) as session:
            deployment = store.get_deployment(session, deployment_id=deployment_id)
            for state in store.host_states(session):
                if state.deployment_id == deployment_id or state.desired_version == deployment.version:
                    _set_if_changed(state, desired_version=deployment.previous_version,
                                    desired_artifact=deployment.previous_artifact, role=HostRole.IDLE,
                                    restart_generation=state.restarted_generation)
                    session.add(state)
        self._after_targets_changed()

    def _bake_seconds(self, wave: int) -> float:
        return self.settings.rollout.canary_bake if wave == 0 else self.settings.rollout.wave_bake

    def _start_bake(self, deployment_id: int, wave: int) -> None:
        with store.session_scope(self.engine) as session:
            deployment = store.get_deployment(session, deployment_id=deployment_id)
            # Judge the hosts this wave added against the baseline restarted beside them; a wave of
            # thousands is judged on a seeded sample (analysis.max_hosts), not by scraping them all.
            # Kayenta's fairness rule: as many canary hosts as baseline hosts, so each role's sums
            # weigh the same traffic (20 new hosts against 1 baseline host fails healthy releases).
            sample = random.Random(deployment_id * 1000 + wave)
            baseline = _at_most(list(deployment.baseline_hosts), self.settings.analysis.max_hosts, sample)
            new_hosts = _at_most(self._wave_hosts(deployment, wave), len(baseline), sample)
            # A rollback's explicit fast path skips the bake (and so the analysis) on every wave.
            seconds = 0.0 if deployment.skip_analysis else self._bake_seconds(wave)
            deployment.bake_started_at = utcnow()
            session.add(deployment)
            store.start_stage(session, deployment_id=deployment_id, name=f"bake-{wave}",
                              detail=f"{seconds:g}s: {_names(new_hosts)} against {_names(baseline)}")
        window = None
        if seconds > 0:
            # Addresses as the fleet has them now: a container host moves to a new port per version.
            current = {h.name: h for h in self.fleet.hosts()}
            window = self.windows(canary=[current[n] for n in new_hosts],
                                  baseline=[current[n] for n in baseline],
                                  bake_s=seconds, now=self.clock())
        self._bake = _Bake(deployment_id, wave, window)

    def _settle_if_finished(self, session: Session, deployment: Deployment, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Finish):
                releases.settle(session, deployment=deployment, status=effect.status)

    def _prune_releases(self) -> None:
        """Delete release directories no host wants and no recent release names."""
        with store.session_scope(self.engine) as session:
            keep = {s.desired_version for s in store.host_states(session) if s.desired_version}
            keep |= {r.sha for r in store.recent_releases(session, limit=self.settings.pipeline.keep_releases)}
        self.builder.prune(keep)

    # --- new commits -------------------------------------------------------------------------

    def _discover(self) -> None:
        now = self.clock()
        if not self._poll_now and now - self._last_poll < self.settings.source.poll_interval:
            return
        self._poll_now = False
        self._last_poll = now
        self.source.fetch()
        with store.session_scope(self.engine) as session:
            found = self.source.new_commits(store.known_shas(session))
            if not found:
                return
            store.add_commits(session, commits=[
                Commit(sha=c.sha, position=0, author=c.author, message=c.message, committed_at=c.committed_at)
                for c in found])
            for c in found:
                store.audit(session, kind="commit_discovered", message=f"{c.sha[:12]} {c.title} ({c.author})",
                            data={"sha": c.sha})
        if self.settings.pipeline.tests_ahead:
            self._request_tests([c.sha for c in found])

    # --- tests that run ahead ----------------------------------------------------------------

    def _request_tests(self, shas: list[str]) -> None:
        branch = self.settings.source.branch
        for sha in shas:
            self.checks.request(sha, ref=f"refs/heads/{branch}", actor="controller", target_branch=branch,
                                names=["tests"])

    def _tests_ahead(self) -> None:
        """Mark a commit whose tests failed bad at once; ask again for tests that were never asked for."""
        if not self.settings.pipeline.tests_ahead:
            return
        with store.session_scope(self.engine) as session:
            commits = store.branch_commits(session)
            pending = [c for c in commits if c.status is CommitStatus.PENDING]
            if not pending:
                return
            active = store.active_deployment(session)
            in_flight = set(store.get_release(session, release_id=active.release_id).commit_shas) if active else set()
            results = releases.test_results(session, shas=[c.sha for c in pending])
            rows = [batching.CommitRow(c.sha, c.status) for c in commits]
            by_sha = {c.sha: c for c in commits}
            for commit in pending:
                check = results.get(commit.sha)
                if check is None or check.state is not CheckState.FAILURE or commit.sha in in_flight:
                    continue
                if by_sha[commit.sha].status is not CommitStatus.PENDING:
                    continue  # blocked by an older culprit marked in this pass: its failure is that one's
                changes = batching.mark_bad(rows, commit.sha)
                for sha, new_status in changes.items():
                    by_sha[sha].status = new_status
                    session.add(by_sha[sha])
                rows = [batching.CommitRow(c.sha, c.status) for c in commits]
                store.audit(session, kind="commit_tests_failed", actor="controller",
                            message=f"commit {commit.sha[:12]} failed its tests ahead of release and never ships; "
                                    f"{len(changes) - 1} commit(s) after it wait for a fix or a revert: "
                                    f"{check.detail[:300]}",
                            data={"sha": commit.sha, "check": check.id,
                                  "commits": {k: v.value for k, v in changes.items()}})
            now = self.clock()
            missing = []
            if now - self._last_tests_sweep >= TESTS_AHEAD_SWEEP_S:
                self._last_tests_sweep = now
                # Commits discovered before a restart, or whose request was lost, get theirs now.
                missing = [c.sha for c in pending if c.sha not in results
                           or results[c.sha].state is CheckState.QUEUED]
                # A run whose worker died with it (an in-process pool after a crash) would hold its
                # commit forever: past the test timeout it is the platform's error, and the release
                # runs the tests itself.
                limit = self.settings.pipeline.test_timeout + 60.0
                for check in results.values():
                    started = freezes.aware(check.started_at)
                    if check.state is CheckState.RUNNING and started is not None and \
                            (self.wall_clock() - started).total_seconds() > limit:
                        check.state, check.finished_at = CheckState.ERROR, utcnow()
                        check.detail = f"abandoned: no result {limit:.0f}s after it started"
                        session.add(check)
        if missing:
            self._request_tests(missing)

    def _window_closed(self, session: Session) -> str | None:
        """Why no new release may start now (a freeze or a blackout), or None; audits each change."""
        gate = freezes.window_gate(session, blackouts=self._blackouts, now=self.wall_clock())
        held = None if gate.open else gate.reason
        if held != self._held:
            if held is not None:
                store.audit(session, kind="deploys_held", message=f"new releases held back: {held}",
                            data={"reason": held, "until": gate.until.isoformat() if gate.until else None})
            elif self._held is not None:
                store.audit(session, kind="deploys_resumed", message="deploy window open again: new releases start")
            self._held = held
        return held

    def _start_next_release(self) -> None:
        with store.session_scope(self.engine) as session:
            if store.active_deployment_stamp(session) is not None or store.get_lock(session) is not None:
                return
            # Even while the deploy window is closed the next release is planned and queued (newer
            # commits may supersede it); it starts when the window opens.
            self._window_closed(session)
            releases.start_next(session, settings=self.settings, host_names=list(self._hosts),
                                now=self.wall_clock())

def _set_if_changed(row: Any, **values: Any) -> None:
    """Assign only what differs, so an unchanged host costs no UPDATE."""
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)


def _at_most(names: list[str], count: int, rng: random.Random) -> list[str]:
    """`names` itself when short enough, else a random sample of `count` of them in their rollout order."""
    if len(names) <= count:
        return names
    chosen = set(rng.sample(names, count))
    return [n for n in names if n in chosen]


def _names(names: list[str], shown: int = 20) -> str:
    """A readable list that stays short for a wave of thousands."""
    text = ", ".join(names[:shown])
    return text + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _last_lines(text: str, count: int) -> str:
    return "\n".join(text.strip().splitlines()[-count:])
