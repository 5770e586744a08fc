"""On a controller's start, tests-ahead runs that died with the previous controller are marked so.

With the in-process queue the controller runs each commit's tests ahead in its own threads;
a controller killed mid-run leaves the check `running` with nobody running it, and the
commit's release would wait for it until the abandonment timeout (`pipeline.test_timeout`
+ 60 s). Such a check is an error of the platform, not of the commit: marking it so at
start lets the next sweep ask for it again at once. Checks run by rq workers are left alone
(their workers outlive the controller, and rq's heart-beats decide about them).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from deployer import store
from deployer.model import CheckState, CommitCheck, utcnow
from deployer.settings import Settings

CONTROLLER_ACTOR = "controller"


def abandon_orphaned_checks(*, engine: Engine, settings: Settings) -> list[int]:
    """Mark the controller's own in-process checks still `running` as errors; returns their ids."""
    if settings.queue.backend != "inprocess":
        return []
    with store.session_scope(engine) as session:
        rows = session.exec(select(CommitCheck).where(CommitCheck.state == CheckState.RUNNING)
                            .where(col(CommitCheck.requested_by) == CONTROLLER_ACTOR)).all()
        for row in rows:
            row.state, row.finished_at = CheckState.ERROR, utcnow()
            row.detail = "abandoned: the controller running it stopped; asked for again"
            session.add(row)
        if rows:
            store.audit(session, kind="checks_abandoned", message=f"{len(rows)} check(s) that ran in the previous "
                        f"controller are asked for again", data={"checks": [r.id for r in rows]})
        return [r.id for r in rows if r.id is not None]
