"""What must hold after every fault, whatever it was: read from the database, the hosts and the users' traffic."""

from __future__ import annotations

from sqlmodel import col, select

from deployer import store
from deployer.model import AuditEvent, Deployment, Release
from deployer.pipeline import Status
from tests.pipeline_world import PipelineWorld


def check(world: PipelineWorld, *, failed_requests_before: int, allow_failed_requests: bool = False) -> list[str]:
    """Every invariant's violations (empty when all hold)."""
    problems: list[str] = []
    versions = world.fleet_versions()
    with store.session_scope(world.service.engine) as session:
        known = {r.sha for r in session.exec(select(Release)).all()}
        states = {s.name: s for s in store.host_states(session)}
        active = store.active_deployment(session)
        good = store.last_good_release(session)
        deployments = session.exec(select(Deployment).order_by(col(Deployment.id))).all()
        events = session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()
        releases = session.exec(select(Release)).all()
        # 1. Every host runs a version the database knows.
        for host, version in versions.items():
            if version not in known:
                problems.append(f"{host} runs {version!r}, a version no release in the database has")
        # 2. No deployment is left non-terminal without a controller driving it.
        driving = world.controller is not None and world.controller.poll() is None
        if active is not None and not driving:
            problems.append(f"deployment {active.id} is {active.status.value} and no controller runs")
        # 3. Every status change has its audit event: each deployment's transitions chain from
        #    queued to the status it has, and a release rolled back after success says so.
        for d in deployments:
            chain = [e for e in events if e.kind == "transition" and e.deployment_id == d.id]
            at = Status.QUEUED.value
            for e in chain:
                if (e.from_status or "").split("/")[0] != at:
                    problems.append(f"deployment {d.id}: transition {e.id} starts at {e.from_status}, not {at}")
                at = (e.to_status or "").split("/")[0]
            if at != d.status.value:
                problems.append(f"deployment {d.id} is {d.status.value} but its audit trail ends at {at}")
        by_release = {d.release_id: d for d in deployments}
        for r in releases:
            d = by_release.get(r.id)
            if d is None or r.status is d.status:
                continue
            after = [e for e in events if e.kind == "post_deploy_rollback" and e.release_id == r.id]
            if not (r.status is Status.ROLLED_BACK and d.status is Status.SUCCEEDED and after):
                problems.append(f"release {r.id} is {r.status.value}, its deployment {d.status.value}, "
                                f"with no audit event for the change")
        # 5. The fleet ends on the version the database says.
        if active is None:
            for host, version in versions.items():
                state = states.get(host)
                if state is None or version != state.desired_version:
                    problems.append(f"{host} runs {str(version)[:12]}, the database wants "
                                    f"{state.desired_version[:12] if state and state.desired_version else None}")
                elif good is not None and version != good.sha:
                    problems.append(f"{host} runs {version[:12]}, the live release is {good.sha[:12]}")
    # 4. No user request failed because of a restart.
    if world.traffic is not None and not allow_failed_requests:
        stats = world.traffic.stats()
        failed = stats.failed - failed_requests_before
        if failed:
            problems.append(f"{failed} user request(s) failed: {stats.to_dict()}")
    return problems
