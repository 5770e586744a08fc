"""Use cases for the dashboard, the CLI and the hooks: read the state, queue commands.

Nothing here acts on hosts: commands go into the database and the controller carries
them out first thing on its next tick, so a release manager's click and a controller
restart can never race each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import Engine

from deployer import store
from deployer.exceptions import Conflict, DeployerError, NotFound
from deployer.model import COMMAND_EVENTS, CommandKind, CommitStatus, Deployment, Leader, Lock, Release
from deployer.pipeline import allowed_events
from deployer.settings import Settings

SETTLED_COMMITS = frozenset({CommitStatus.SHIPPED, CommitStatus.BAD, CommitStatus.BLOCKED})
__all__ = ["Conflict", "DeployService", "DeployerError", "NotFound"]



def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@dataclass
class DeployService:
    """The controller's state and steering wheel, backed by its database."""

    engine: Engine

    @classmethod
    def from_settings(cls, settings: Settings) -> DeployService:
        """A service over the database the settings name (schema migrated or checked per `database.migrate`)."""
        return cls(store.open_database(settings.database_url, migrate=settings.database.migrate))

    def status(self, *, releases: int = 10) -> dict[str, Any]:
        """Hosts, the deployment in flight, the last releases and the lock, as plain data."""
        with store.session_scope(self.engine) as session:
            active = store.active_deployment(session)
            lock = store.get_lock(session)
            return {
                "hosts": [{"name": h.name, "address": h.address, "desired_version": h.desired_version,
                           "observed_version": h.observed_version, "healthy": h.healthy, "role": h.role.value,
                           "detail": h.detail, "updated_at": _iso(h.updated_at)}
                          for h in store.host_states(session)],
                "active": self._deployment(active) if active else None,
                "releases": [self._release(session, r) for r in store.recent_releases(session, limit=releases)],
                "lock": {"holder": lock.holder, "reason": lock.reason, "at": _iso(lock.at)} if lock else None,
                "leader": self._leader(session),
            }

    @staticmethod
    def _leader(session: Any) -> dict[str, Any] | None:
        leader = session.get(Leader, "controller")
        if leader is None:
            return None
        beat = leader.heartbeat_at if leader.heartbeat_at.tzinfo else leader.heartbeat_at.replace(tzinfo=timezone.utc)
        return {"holder": leader.holder, "host": leader.host, "pid": leader.pid, "since": _iso(leader.since),
                "heartbeat_at": _iso(leader.heartbeat_at),
                "heartbeat_age_s": round((datetime.now(timezone.utc) - beat).total_seconds(), 1)}

    @staticmethod
    def _deployment(d: Deployment) -> dict[str, Any]:
        return {"id": d.id, "release_id": d.release_id, "status": d.status.value,
                "phase": d.phase.value if d.phase else None, "wave": d.wave, "waves": d.waves,
                "wave_plan": d.wave_plan, "version": d.version, "previous_version": d.previous_version,
                "canary_hosts": d.canary_hosts, "baseline_hosts": d.baseline_hosts, "reason": d.reason,
                "last_verdict": d.last_verdict, "created_at": _iso(d.created_at),
                "updated_at": _iso(d.updated_at), "finished_at": _iso(d.finished_at)}

    def _release(self, session: Any, r: Release) -> dict[str, Any]:
        deployment = store.deployment_of(session, release_id=r.id) if r.id is not None else None
        return {"id": r.id, "sha": r.sha, "kind": r.kind.value, "status": r.status.value,
                "commits": r.commit_shas, "previous_sha": r.previous_sha, "created_at": _iso(r.created_at),
                "finished_at": _iso(r.finished_at),
                "reason": deployment.reason if deployment else "",
                "deployment_id": deployment.id if deployment else None}

    def commits(self) -> list[dict[str, Any]]:
        """Every known commit in branch order with its status and release."""
        with store.session_scope(self.engine) as session:
            return [{"sha": c.sha, "position": c.position, "author": c.author,
                     "title": (c.message.strip().splitlines() or [""])[0], "status": c.status.value,
                     "release_id": c.release_id, "committed_at": _iso(c.committed_at)}
                    for c in store.branch_commits(session)]

    def settled(self, shas: list[str]) -> bool:
        """Nothing is deploying, every sha is known, and every known commit has its final status."""
        with store.session_scope(self.engine) as session:
            if store.active_deployment(session) is not None:
                return False
            statuses = {c.sha: c.status for c in store.branch_commits(session)}
        return set(shas) <= set(statuses) and all(s in SETTLED_COMMITS for s in statuses.values())

    def deployment(self, deployment_id: int) -> dict[str, Any]:
        """One deployment with its stages, verdicts and audit trail (NotFound if unknown)."""
        with store.session_scope(self.engine) as session:
            d = store.get_deployment(session, deployment_id=deployment_id)
            out = self._deployment(d)
            out["stages"] = [{"name": s.name, "status": s.status.value, "started_at": _iso(s.started_at),
                              "finished_at": _iso(s.finished_at), "detail": s.detail, "log": s.log}
                             for s in store.stages_of(session, deployment_id=deployment_id)]
            out["verdicts"] = [{"wave": v.wave, "result": v.result, "score": v.score, "reason": v.reason,
                                "intervals": v.intervals, "at": _iso(v.at), "report": v.report}
                               for v in store.verdicts_of(session, deployment_id=deployment_id)]
            out["events"] = self._events(store.recent_audit(session, deployment_id=deployment_id, limit=1000))
            return out

    def events(self, *, after_id: int = 0, limit: int = 200) -> list[dict[str, Any]]:
        """The audit trail after `after_id`, oldest first."""
        with store.session_scope(self.engine) as session:
            return self._events(store.recent_audit(session, after_id=after_id, limit=limit))

    @staticmethod
    def _events(rows: list[Any]) -> list[dict[str, Any]]:
        return [{"id": e.id, "at": _iso(e.at), "actor": e.actor, "kind": e.kind, "deployment_id": e.deployment_id,
                 "release_id": e.release_id, "from": e.from_status, "to": e.to_status, "event": e.event,
                 "message": e.message, "data": e.data} for e in rows]

    def command(self, kind: CommandKind, *, actor: str, reason: str = "",
                deployment_id: int | None = None) -> dict[str, Any]:
        """Queue abort/pause/resume/promote for the deployment in flight; Conflict when it cannot apply."""
        with store.session_scope(self.engine) as session:
            active = store.active_deployment(session)
            if kind in COMMAND_EVENTS:
                if active is None:
                    raise Conflict(f"cannot {kind.value}: no deployment is in progress")
                if deployment_id is not None and deployment_id != active.id:
                    raise Conflict(f"cannot {kind.value}: deployment {deployment_id} is not the one in progress "
                                   f"({active.id})")
                allowed = allowed_events(store.state_of(active))
                if COMMAND_EVENTS[kind] not in allowed:
                    where = active.status.value + (f"/{active.phase.value}" if active.phase else "")
                    raise Conflict(f"cannot {kind.value} deployment {active.id} while it is {where}; "
                                   f"allowed now: {', '.join(e.value for e in allowed) or 'nothing'}")
            command = store.add_command(session, kind=kind, actor=actor, reason=reason,
                                        deployment_id=active.id if active and kind in COMMAND_EVENTS else None)
            store.audit(session, kind="command", actor=actor, deployment_id=command.deployment_id,
                        message=f"{kind.value} requested" + (f": {reason}" if reason else ""))
            return {"id": command.id, "kind": kind.value, "deployment_id": command.deployment_id}

    def notify_push(self, *, actor: str, ref: str = "", after: str = "") -> dict[str, Any]:
        """A push hook or webhook says the branch moved: fetch now instead of at the next poll."""
        return self.command(CommandKind.POLL, actor=actor, reason=f"{ref} -> {after[:12]}".strip(" ->"))

    def lock(self, *, holder: str, reason: str) -> dict[str, Any]:
        """Stop new releases from starting (the one in flight goes on)."""
        with store.session_scope(self.engine) as session:
            existing = store.get_lock(session)
            if existing is not None:
                raise Conflict(f"the pipeline is already locked by {existing.holder}: {existing.reason}")
            session.add(Lock(name="pipeline", holder=holder, reason=reason))
            store.audit(session, kind="lock", actor=holder, message=f"pipeline locked: {reason}")
            return {"locked": True, "holder": holder, "reason": reason}

    def unlock(self, *, actor: str) -> dict[str, Any]:
        """Let new releases start again."""
        with store.session_scope(self.engine) as session:
            existing = store.get_lock(session)
            if existing is None:
                raise Conflict("the pipeline is not locked")
            session.delete(existing)
            store.audit(session, kind="unlock", actor=actor, message="pipeline unlocked")
            return {"locked": False}
