"""Database session and keyword-only data-access functions.

SQLite (WAL, busy timeout) by default, PostgreSQL by URL. Callers own the
transaction: functions here add and flush, `session_scope()` commits once, so a
status change and its audit event land together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, create_engine, func, select

from deployer import pipeline, schema
from deployer.exceptions import NotFound
from deployer.model import (
    AuditEvent,
    Command,
    CommandKind,
    Commit,
    CommitStatus,
    Deployment,
    HostState,
    Lock,
    Release,
    Stage,
    StageStatus,
    Verdict,
    utcnow,
)
from deployer.pipeline import Event, State, Status

ACTIVE_STATUSES = [s for s in Status if not s.terminal]


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL and a busy timeout so processes can share them."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa_event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def init_db(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent; a pre-migration database is adopted)."""
    schema.upgrade(engine)


def open_database(url: str, *, migrate: schema.MigrateMode = "auto") -> Engine:
    """An engine for `url` whose schema is migrated (`auto`) or checked to be current (`check`)."""
    engine = make_engine(url)
    schema.prepare(engine, mode=migrate)
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# --- deployments and the state machine ----------------------------------------------

def state_of(deployment: Deployment) -> State:
    """The pure state machine's view of a deployment row."""
    return State(status=deployment.status, phase=deployment.phase, wave=deployment.wave,
                 waves=deployment.waves, extensions=deployment.extensions,
                 max_extensions=deployment.max_extensions, paused_from=deployment.paused_from,
                 paused_phase=deployment.paused_phase, rollback_failures=deployment.rollback_failures,
                 max_rollback_failures=deployment.max_rollback_failures)


def apply_event(session: Session, *, deployment: Deployment, event: Event, actor: str = "controller",
                reason: str = "", data: dict[str, Any] | None = None) -> list[pipeline.Effect]:
    """Advance a deployment by `event`, writing the new state and its audit event together.

    This is the only place a deployment's status changes. Raises InvalidTransition
    (nothing written) when the event is not allowed.
    """
    before = state_of(deployment)
    after, effects = pipeline.advance(before, event)
    now = utcnow()
    for field in ("status", "phase", "wave", "extensions", "paused_from", "paused_phase", "rollback_failures"):
        setattr(deployment, field, getattr(after, field))
    deployment.updated_at = now
    if reason:
        deployment.reason = reason
    if after.status.terminal:
        deployment.finished_at = now
    session.add(deployment)
    release = session.get(Release, deployment.release_id)
    if release is not None:
        release.status = after.status
        if after.status.terminal:
            release.finished_at = now
        session.add(release)
    session.add(AuditEvent(
        at=now, actor=actor, kind="transition", deployment_id=deployment.id, release_id=deployment.release_id,
        from_status=_label(before), to_status=_label(after), event=event.value, message=reason, data=data or {}))
    session.flush()
    return effects


def _label(state: State) -> str:
    return state.status.value + (f"/{state.phase.value}" if state.phase else "")


def audit(session: Session, *, kind: str, message: str, actor: str = "controller",
          deployment_id: int | None = None, release_id: int | None = None,
          data: dict[str, Any] | None = None) -> AuditEvent:
    """Record something that happened that is not a status change."""
    entry = AuditEvent(actor=actor, kind=kind, deployment_id=deployment_id, release_id=release_id,
                       message=message, data=data or {})
    session.add(entry)
    session.flush()
    return entry


def active_deployment(session: Session) -> Deployment | None:
    """The deployment in progress (at most one runs at a time), oldest first."""
    query = (select(Deployment).where(col(Deployment.status).in_(ACTIVE_STATUSES))
             .order_by(col(Deployment.id)).limit(1))
    return session.exec(query).first()


def active_deployment_stamp(session: Session) -> tuple[int, Any] | None:
    """(id, updated_at) of the deployment in progress: a cheap look that skips its host lists."""
    query = (select(Deployment.id, Deployment.updated_at).where(col(Deployment.status).in_(ACTIVE_STATUSES))
             .order_by(col(Deployment.id)).limit(1))
    row = session.exec(query).first()
    return (row[0], row[1]) if row is not None else None


def latest_deployment_id(session: Session) -> int:
    """The id of the newest deployment, finished or not (0 when there is none)."""
    return session.exec(select(func.max(Deployment.id))).one() or 0


def get_deployment(session: Session, *, deployment_id: int) -> Deployment:
    """A deployment by id, or NotFound."""
    deployment = session.get(Deployment, deployment_id)
    if deployment is None:
        raise NotFound("deployment", deployment_id)
    return deployment


def get_release(session: Session, *, release_id: int) -> Release:
    """A release by id, or NotFound."""
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound("release", release_id)
    return release


def recent_releases(session: Session, *, limit: int = 10) -> list[Release]:
    """The newest releases first."""
    return list(session.exec(select(Release).order_by(col(Release.id).desc()).limit(limit)))


def last_good_release(session: Session) -> Release | None:
    """The newest release that reached the whole fleet."""
    # LIMIT 1: the ORM would otherwise load every matching row to return the first.
    query = (select(Release).where(Release.status == Status.SUCCEEDED).order_by(col(Release.id).desc()).limit(1))
    return session.exec(query).first()


def deployment_of(session: Session, *, release_id: int) -> Deployment | None:
    """The latest deployment of a release."""
    query = (select(Deployment).where(Deployment.release_id == release_id).order_by(col(Deployment.id).desc())
             .limit(1))
    return session.exec(query).first()


# --- stages, verdicts ---------------------------------------------------------------------

def start_stage(session: Session, *, deployment_id: int, name: str, detail: str = "") -> Stage:
    """Open a stage (or reopen it after a restart: the last one of that name is reused)."""
    stage = latest_stage(session, deployment_id=deployment_id, name=name)
    if stage is None:
        stage = Stage(deployment_id=deployment_id, name=name, detail=detail)
    else:
        stage.status, stage.started_at, stage.finished_at = StageStatus.RUNNING, utcnow(), None
        stage.detail, stage.log = detail, ""
    session.add(stage)
    session.flush()
    return stage


def finish_stage(session: Session, *, stage_id: int, passed: bool, detail: str = "", log: str = "") -> Stage:
    """Close a stage with its outcome."""
    stage = session.get(Stage, stage_id)
    if stage is None:
        raise NotFound("stage", stage_id)
    stage.status = StageStatus.PASSED if passed else StageStatus.FAILED
    stage.finished_at = utcnow()
    stage.detail = detail or stage.detail
    stage.log = log
    session.add(stage)
    session.flush()
    return stage


def latest_stage(session: Session, *, deployment_id: int, name: str) -> Stage | None:
    """The newest stage with this name of a deployment."""
    query = (select(Stage).where(Stage.deployment_id == deployment_id, Stage.name == name)
             .order_by(col(Stage.id).desc()).limit(1))
    return session.exec(query).first()


def stages_of(session: Session, *, deployment_id: int) -> list[Stage]:
    """All stages of a deployment in order."""
    return list(session.exec(select(Stage).where(Stage.deployment_id == deployment_id).order_by(col(Stage.id))))


def add_verdict(session: Session, *, verdict: Verdict) -> Verdict:
    """Store a decisive analysis result."""
    session.add(verdict)
    session.flush()
    return verdict


def verdicts_of(session: Session, *, deployment_id: int) -> list[Verdict]:
    """Analysis results of a deployment, oldest first."""
    return list(session.exec(select(Verdict).where(Verdict.deployment_id == deployment_id)
                             .order_by(col(Verdict.id))))


# --- commits ---------------------------------------------------------------------------

def known_shas(session: Session) -> set[str]:
    """Every commit sha already recorded."""
    return set(session.exec(select(Commit.sha)))


def add_commits(session: Session, *, commits: Sequence[Commit]) -> int:
    """Record newly discovered commits (positions continue the branch order)."""
    last = session.exec(select(Commit.position).order_by(col(Commit.position).desc()).limit(1)).first()
    position = -1 if last is None else last
    for commit in commits:
        position += 1
        commit.position = position
        session.add(commit)
    session.flush()
    return len(commits)


def branch_commits(session: Session, *, statuses: Sequence[CommitStatus] | None = None) -> list[Commit]:
    """Commits in branch order, optionally only those in `statuses`."""
    query = select(Commit).order_by(col(Commit.position))
    if statuses is not None:
        query = query.where(col(Commit.status).in_(list(statuses)))
    return list(session.exec(query))


def commits_of(session: Session, *, shas: Sequence[str]) -> list[Commit]:
    """The commits with these shas, in branch order."""
    return list(session.exec(select(Commit).where(col(Commit.sha).in_(list(shas))).order_by(col(Commit.position))))


# --- hosts -----------------------------------------------------------------------------

def host_states(session: Session) -> list[HostState]:
    """Every host's desired and observed state, by name."""
    return list(session.exec(select(HostState).order_by(col(HostState.name))))


def host_state(session: Session, *, name: str) -> HostState:
    """One host's state, created empty the first time."""
    state = session.get(HostState, name)
    if state is None:
        state = HostState(name=name)
        session.add(state)
        session.flush()
    return state


def host_states_named(session: Session, *, names: Sequence[str], chunk: int = 500) -> dict[str, HostState]:
    """The rows of `names` (missing ones created empty), read in a few IN queries rather than one per host."""
    found: dict[str, HostState] = {}
    wanted = list(dict.fromkeys(names))
    for start in range(0, len(wanted), chunk):
        part = wanted[start:start + chunk]
        for state in session.exec(select(HostState).where(col(HostState.name).in_(part))):
            found[state.name] = state
    missing = [HostState(name=name) for name in wanted if name not in found]
    if missing:
        session.add_all(missing)
        session.flush()
        found.update({state.name: state for state in missing})
    return found


# --- commands and locks ---------------------------------------------------------------

def add_command(session: Session, *, kind: CommandKind, actor: str, reason: str = "",
                deployment_id: int | None = None) -> Command:
    """Queue an operator command for the controller."""
    command = Command(kind=kind, actor=actor, reason=reason, deployment_id=deployment_id)
    session.add(command)
    session.flush()
    return command


def pending_commands(session: Session) -> list[Command]:
    """Commands not handled yet, oldest first."""
    query = select(Command).where(col(Command.handled_at).is_(None)).order_by(col(Command.id))
    return list(session.exec(query))


def get_lock(session: Session, *, name: str = "pipeline") -> Lock | None:
    """The lock with this name, if held."""
    return session.get(Lock, name)


def recent_audit(session: Session, *, after_id: int = 0, limit: int = 200,
                 deployment_id: int | None = None) -> list[AuditEvent]:
    """Audit events with id > after_id, oldest first."""
    query = select(AuditEvent).where(col(AuditEvent.id) > after_id)
    if deployment_id is not None:
        query = query.where(AuditEvent.deployment_id == deployment_id)
    return list(session.exec(query.order_by(col(AuditEvent.id)).limit(limit)))

