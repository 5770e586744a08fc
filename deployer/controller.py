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
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from canary.verdict import Result
from deployer import batching, store
from deployer.analysis import AnalysisWindow, WindowFactory
from deployer.builder import ReleaseBuilder
from deployer.exceptions import DeployerError, HostFailed, InvalidTransition
from deployer.fleet.base import Artifact, Fleet, Host
from deployer.jobs import JobContext, build_job, run_tests_job
from deployer.model import (
    Command,
    CommandKind,
    Commit,
    CommitStatus,
    Deployment,
    HostRole,
    Release,
    ReleaseKind,
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
    entry_effects,
    plan_waves,
    rollout_order,
)
from deployer.queue import TaskQueue
from deployer.settings import Settings
from deployer.source import GitSource

log = logging.getLogger(__name__)
IDLE_RECONCILE_S = 5.0


@dataclass
class _Bake:
    deployment_id: int
    wave: int
    window: AnalysisWindow | None


class Controller:
    """Drives deployments one at a time; `run()` loops until told to stop."""

    def __init__(self, *, settings: Settings, engine: Engine, source: GitSource, builder: ReleaseBuilder,
                 fleet: Fleet, queue: TaskQueue, windows: WindowFactory,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.engine = engine
        self.source = source
        self.builder = builder
        self.fleet = fleet
        self.queue = queue
        self.windows = windows
        self.clock = clock
        self.job_context = JobContext(
            database_url=settings.database_url, repository=settings.repository, branch=settings.source.branch,
            workdir=str(settings.workdir_path), test_command=settings.pipeline.test_command,
            test_timeout_s=settings.pipeline.test_timeout)
        self._hosts = {h.name: h for h in fleet.hosts()}
        self._bake: _Bake | None = None
        self._poll_now = True
        self._last_poll = float("-inf")
        self._last_idle_reconcile = float("-inf")
        self._rollback_retry_at = 0.0

    # --- the loop -------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Recover, then tick until `stop` is set."""
        self.recover()
        while not stop.is_set():
            self.tick()
            stop.wait(self.settings.controller.tick)

    def tick(self) -> None:
        """One pass: commands, progress, discovery, next release. Errors are logged, not raised."""
        for step in (self._handle_commands, self._progress, self._discover, self._start_next_release):
            try:
                step()
            except Exception:
                log.exception("controller step %s failed; continuing", step.__name__)

    def recover(self) -> None:
        """On start: bootstrap if the database is empty, probe hosts, resume the deployment in flight."""
        store.init_db(self.engine)
        self.source.fetch()
        with store.session_scope(self.engine) as session:
            bootstrapped = store.last_good_release(session) is not None
            for host in self._hosts.values():
                state = store.host_state(session, name=host.name)
                state.address = host.address
        if not bootstrapped:
            self._bootstrap()
        self._observe_all()
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
            for name in self._hosts:
                state = store.host_state(session, name=name)
                state.desired_version, state.desired_artifact, state.role = head, artifact.location, HostRole.IDLE
                session.add(state)
        failures = self._converge(list(self._hosts))
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

    def _observe_all(self) -> None:
        """Probe every host and record what it says it runs."""
        statuses = {name: self.fleet.probe(host) for name, host in self._hosts.items()}
        with store.session_scope(self.engine) as session:
            for name, status in statuses.items():
                state = store.host_state(session, name=name)
                state.observed_version = status.version if status.running else None
                state.healthy = status.healthy
                state.detail = status.detail
                state.updated_at = utcnow()
                session.add(state)

    def _converge(self, names: list[str], *, parallel: int | None = None) -> list[str]:
        """Make each named host run its desired version; returns failure descriptions."""
        with store.session_scope(self.engine) as session:
            work = []
            for name in names:
                state = store.host_state(session, name=name)
                if state.desired_version is None or state.desired_artifact is None:
                    continue
                restart = state.restart_generation > state.restarted_generation
                if restart or state.observed_version != state.desired_version or not state.healthy:
                    work.append((name, Artifact(state.desired_version, state.desired_artifact), restart,
                                 state.restart_generation))
        if not work:
            return []
        work.sort(key=lambda item: not item[2])  # requested restarts (the baseline) start first
        width = max(1, min(len(work), parallel or self.settings.fleet.max_parallel))
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="deploy") as pool:
            outcomes = list(pool.map(lambda item: self._replace_host(*item), work))
        return [failure for failure in outcomes if failure]

    def _replace_host(self, name: str, artifact: Artifact, restart: bool, generation: int) -> str | None:
        host = self._hosts[name]
        try:
            result = (self.fleet.restart if restart else self.fleet.deploy)(host, artifact)
        except HostFailed as exc:
            probe = self.fleet.probe(host)
            with store.session_scope(self.engine) as session:
                state = store.host_state(session, name=name)
                state.observed_version = probe.version if probe.running else None
                state.healthy, state.detail, state.updated_at = probe.healthy, exc.reason[-500:], utcnow()
                session.add(state)
                store.audit(session, kind="host_failed", deployment_id=state.deployment_id,
                            message=f"{name} did not come up on {artifact.version[:12]}: {exc.reason[-300:]}",
                            data={"host": name, "version": artifact.version})
            return f"{name}: {exc.reason.splitlines()[0] if exc.reason else 'unhealthy'}"
        with store.session_scope(self.engine) as session:
            state = store.host_state(session, name=name)
            state.observed_version, state.healthy, state.detail = artifact.version, True, ""
            state.restarted_generation = max(state.restarted_generation, generation)
            state.updated_at = utcnow()
            session.add(state)
            if result.changed:
                store.audit(session, kind="host_deployed", deployment_id=state.deployment_id,
                            message=f"{name} runs {artifact.version[:12]} ({result.total_s:.1f}s)",
                            data={"host": name, "version": artifact.version, "drain_s": result.drain_s,
                                  "stop_s": result.stop_s, "start_s": result.start_s, "health_s": result.health_s})
        return None

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
                    event = {CommandKind.ABORT: Event.ABORT, CommandKind.PAUSE: Event.PAUSE,
                             CommandKind.RESUME: Event.RESUME, CommandKind.PROMOTE: Event.PROMOTE}[fresh.kind]
                    reason = f"{fresh.kind.value} by {fresh.actor}" + (f": {fresh.reason}" if fresh.reason else "")
                    try:
                        if event is Event.ABORT:
                            deployment.aborted = True
                        effects = store.apply_event(session, deployment=deployment, event=event, actor=fresh.actor,
                                                    reason=reason)
                        fresh.outcome = "done"
                        deployment_id = deployment.id
                    except InvalidTransition as exc:
                        deployment.aborted = False if event is Event.ABORT else deployment.aborted
                        fresh.outcome = f"refused: {exc}"
            session.add(fresh)
        if deployment_id is not None:
            self._carry_out(deployment_id, effects)

    # --- progress of the deployment in flight ------------------------------------------------

    def _progress(self) -> None:
        with store.session_scope(self.engine) as session:
            deployment = store.active_deployment(session)
        if deployment is None:
            self._reconcile_idle()
            return
        assert deployment.id is not None
        status, phase = deployment.status, deployment.phase
        if status is Status.QUEUED:
            self._advance(deployment.id, Event.START, f"{len(self._release_commits(deployment))} commit(s)")
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
        assert deployment.id is not None
        parallel = None
        if deployment.wave < deployment.waves - 1:
            # The wave's new hosts and the baseline restart at the same moment, as a fair
            # comparison needs (fresh processes are slower than warm ones).
            added = len(self._wave_hosts(deployment, deployment.wave))
            parallel = max(self.settings.fleet.max_parallel, added + len(deployment.baseline_hosts))
        failures = self._converge(list(self._hosts), parallel=parallel)
        if failures:
            self._advance(deployment.id, Event.HOST_FAILED, "; ".join(failures))
            return
        on_new = deployment.host_order[: deployment.wave_plan[deployment.wave]]
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
        verdict = bake.window.step(now)
        if verdict is None:
            return
        summary = verdict.to_dict()
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
        assert deployment.id is not None
        if self.clock() < self._rollback_retry_at:
            return
        failures = self._converge(list(self._hosts), parallel=len(self._hosts))
        if failures:
            self._rollback_retry_at = self.clock() + 2.0
            self._advance(deployment.id, Event.HOST_FAILED, "rollback: " + "; ".join(failures))
            return
        self._advance(deployment.id, Event.ROLLBACK_DONE,
                      f"every host is back on {(deployment.previous_version or '?')[:12]}")

    def _reconcile_idle(self) -> None:
        """With nothing deploying, restart any host that drifted from its desired version."""
        now = self.clock()
        if now - self._last_idle_reconcile < IDLE_RECONCILE_S:
            return
        self._last_idle_reconcile = now
        self._observe_all()
        failures = self._converge(list(self._hosts))
        if failures:
            log.warning("hosts could not be restored: %s", "; ".join(failures))

    # --- transitions and effects ----------------------------------------------------------------

    def _advance(self, deployment_id: int, event: Event, reason: str = "",
                 data: dict[str, Any] | None = None) -> None:
        with store.session_scope(self.engine) as session:
            deployment = store.get_deployment(session, deployment_id=deployment_id)
            effects = store.apply_event(session, deployment=deployment, event=event, reason=reason, data=data)
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
            elif isinstance(effect, Finish):
                self._bake = None
                self._finish(deployment_id, effect.status)
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
            for name in targets:
                state = store.host_state(session, name=name)
                state.desired_version, state.desired_artifact = deployment.version, deployment.artifact
                state.role = HostRole.CANARY if name in deployment.canary_hosts else HostRole.WAVE
                state.deployment_id = deployment_id
                session.add(state)
            if wave < deployment.waves - 1:
                for name in deployment.baseline_hosts:
                    state = store.host_state(session, name=name)
                    state.desired_version = deployment.previous_version
                    state.desired_artifact = deployment.previous_artifact
                    state.restart_generation = state.restarted_generation + 1
                    state.role, state.deployment_id = HostRole.BASELINE, deployment_id
                    session.add(state)
            store.start_stage(session, deployment_id=deployment_id, name=f"wave-{wave}",
                              detail=f"{len(targets)} host(s): {', '.join(targets)}")

    def _set_rollback_targets(self, deployment_id: int) -> None:
        with store.session_scope(self.engine) as session:
            deployment = store.get_deployment(session, deployment_id=deployment_id)
            for state in store.host_states(session):
                if state.deployment_id == deployment_id or state.desired_version == deployment.version:
                    state.desired_version = deployment.previous_version
                    state.desired_artifact = deployment.previous_artifact
                    state.role = HostRole.IDLE
                    state.restart_generation = state.restarted_generation
                    session.add(state)
        self._rollback_retry_at = 0.0

    def _bake_seconds(self, wave: int) -> float:
        return self.settings.rollout.canary_bake if wave == 0 else self.settings.rollout.wave_bake

    def _start_bake(self, deployment_id: int, wave: int) -> None:
        with store.session_scope(self.engine) as session:
            deployment = store.get_deployment(session, deployment_id=deployment_id)
            # Judge the hosts this wave added against the baseline restarted beside them.
            new_hosts = self._wave_hosts(deployment, wave)
            baseline = list(deployment.baseline_hosts)
            seconds = self._bake_seconds(wave)
            deployment.bake_started_at = utcnow()
            session.add(deployment)
            store.start_stage(session, deployment_id=deployment_id, name=f"bake-{wave}",
                              detail=f"{seconds:g}s: {', '.join(new_hosts)} against {', '.join(baseline)}")
        window = None
        if seconds > 0:
            window = self.windows(canary=[self._hosts[n] for n in new_hosts],
                                  baseline=[self._hosts[n] for n in baseline],
                                  bake_s=seconds, now=self.clock())
        self._bake = _Bake(deployment_id, wave, window)

    def _finish(self, deployment_id: int, status: Status) -> None:
        with store.session_scope(self.engine) as session:
            deployment = store.get_deployment(session, deployment_id=deployment_id)
            release = store.get_release(session, release_id=deployment.release_id)
            commits = store.branch_commits(session)
            plan = batching.ReleasePlan(release.kind, release.sha, tuple(release.commit_shas))
            rows = [batching.CommitRow(c.sha, c.status) for c in commits]
            changes = batching.settle(rows, plan, succeeded=status is Status.SUCCEEDED,
                                      blame=not deployment.aborted)
            by_sha = {c.sha: c for c in commits}
            for sha, new_status in changes.items():
                by_sha[sha].status = new_status
                session.add(by_sha[sha])
            for state in store.host_states(session):
                if state.deployment_id == deployment_id:
                    state.role = HostRole.IDLE
                    session.add(state)
            bad = [sha[:12] for sha, s in changes.items() if s is CommitStatus.BAD]
            store.audit(session, kind="release_finished", deployment_id=deployment_id, release_id=release.id,
                        message=f"release {release.id} {status.value}" + (f"; culprit {', '.join(bad)}" if bad else ""),
                        data={"status": status.value, "commits": {k: v.value for k, v in changes.items()}})
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

    def _start_next_release(self) -> None:
        with store.session_scope(self.engine) as session:
            if store.active_deployment(session) is not None or store.get_lock(session) is not None:
                return
            commits = store.branch_commits(session)
            plan = batching.plan_next_release([batching.CommitRow(c.sha, c.status) for c in commits],
                                              self.settings.pipeline.max_batch)
            if plan is None:
                return
            current = store.last_good_release(session)
            assert current is not None, "the controller bootstraps before it releases"
            names = list(self._hosts)
            canary, baseline, order = rollout_order(names, self.settings.rollout.canary_hosts)
            wave_plan = plan_waves(len(names), self.settings.rollout.canary_hosts, self.settings.rollout.waves)
            release = Release(sha=plan.sha, kind=plan.kind, previous_sha=current.sha,
                              commit_shas=list(plan.commit_shas))
            session.add(release)
            session.flush()
            deployment = Deployment(
                release_id=release.id, version=plan.sha, previous_version=current.sha,
                previous_artifact=current.artifact, waves=len(wave_plan), wave_plan=wave_plan, host_order=order,
                canary_hosts=canary, baseline_hosts=baseline,
                max_extensions=self.settings.rollout.max_extensions)
            session.add(deployment)
            for commit in store.commits_of(session, shas=plan.commit_shas):
                commit.release_id = release.id
                session.add(commit)
            session.flush()
            titles = {c.sha: (c.message.strip().splitlines() or [""])[0] for c in commits}
            store.audit(session, kind="release_created", deployment_id=deployment.id, release_id=release.id,
                        message=f"release {release.id} ({plan.kind.value}) of {len(plan.commit_shas)} commit(s) "
                                f"at {plan.sha[:12]}: " + "; ".join(titles[s] for s in plan.commit_shas),
                        data={"sha": plan.sha, "commits": list(plan.commit_shas)})


def _last_lines(text: str, count: int) -> str:
    return "\n".join(text.strip().splitlines()[-count:])
