"""Ad-hoc freezes in the database and the deploy window they make with the configured blackouts.

Keyword-only functions over a session; deployer.windows decides (pure), this module
reads the rows it decides on. The controller asks before it starts a release, the
service shows the answer, and the merge gate refuses merges while a freeze is on.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlmodel import Session, col, or_, select

from deployer.model import DeployFreeze
from deployer.windows import Blackout, Freeze, Gate, deploy_gate


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were stored in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


def active_freezes(session: Session, *, now: datetime) -> list[DeployFreeze]:
    """Freezes not lifted whose end (if any) is still ahead, oldest first."""
    rows = session.exec(select(DeployFreeze).where(col(DeployFreeze.lifted_at).is_(None),
                                                   or_(col(DeployFreeze.until).is_(None),
                                                       col(DeployFreeze.until) > now))
                        .order_by(col(DeployFreeze.id))).all()
    # The SQL comparison is coarse on SQLite's naive datetimes; decide on aware ones.
    return [r for r in rows if as_freeze(r).active(now)]


def as_freeze(row: DeployFreeze) -> Freeze:
    """The pure rule of a freeze row."""
    since = aware(row.since)
    assert since is not None
    return Freeze(reason=row.reason, by=row.by, since=since, until=aware(row.until))


def window_gate(session: Session, *, blackouts: list[Blackout], now: datetime) -> Gate:
    """Whether a new release may start at `now`, from the blackouts and the freezes in the database."""
    return deploy_gate(now, blackouts=blackouts, freezes=[as_freeze(r) for r in active_freezes(session, now=now)])
