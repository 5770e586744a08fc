"""Feature flags in the database: the rows, the revision of the whole set, and each audited change.

Keyword-only functions over a session; deployer.flag_rules checks the definitions (pure),
the service opens the transaction. Every change bumps the one revision counter first, in
the same transaction as the flag and its audit event: the bump takes the write lock, so
changes are applied one at a time (no lost update) and revisions follow commit order.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from sqlmodel import Session, col, select, update

from deployer import store
from deployer.exceptions import Conflict, NotFound
from deployer.flag_rules import (
    Definition,
    check_definition,
    check_key,
    check_reason,
    check_salt,
    describe_change,
)
from deployer.model import FeatureFlag, FlagRevision, utcnow
from deployer.readmodels import aware
from deployer.views import FlagSet, FlagView

COUNTER = "flags"


# --- reads ---------------------------------------------------------------------------------------

def revision(session: Session) -> int:
    """The revision of the whole set of flags (0 before the first change)."""
    return session.exec(select(FlagRevision.revision).where(FlagRevision.name == COUNTER)).first() or 0


def live_flags(session: Session) -> list[FeatureFlag]:
    """Every flag not deleted, by key."""
    return list(session.exec(select(FeatureFlag).where(col(FeatureFlag.archived_at).is_(None))
                             .order_by(col(FeatureFlag.key))))


def flag_row(session: Session, *, key: str) -> FeatureFlag | None:
    """The row of `key`, deleted or not."""
    return session.exec(select(FeatureFlag).where(FeatureFlag.key == key)).first()


def get_flag(session: Session, *, key: str) -> FeatureFlag:
    """A live flag by key, or NotFound."""
    row = flag_row(session, key=key)
    if row is None or row.archived_at is not None:
        raise NotFound("flag", key)
    return row


def flag_set(session: Session) -> FlagSet:
    """Every live flag with the revision they are at."""
    # The revision is read before the flags: a change committed in between makes the flags newer
    # than the revision (the next fetch sees a new ETag), never older (a host would keep stale ones).
    current = revision(session)
    return FlagSet(flags=[flag_view(f) for f in live_flags(session)], revision=current)


def definition_of(row: FeatureFlag) -> Definition:
    """The checked part of a row."""
    return Definition(description=row.description or "", enabled=row.enabled, percentage=row.percentage,
                      allow=tuple(row.allow or ()), deny=tuple(row.deny or ()))


def flag_view(row: FeatureFlag) -> FlagView:
    """The typed view the API, pages and CLI render."""
    return FlagView(key=row.key, enabled=row.enabled, percentage=row.percentage, allow=list(row.allow or []),
                    deny=list(row.deny or []), salt=row.salt, description=row.description or "",
                    revision=row.revision, created_at=aware(row.created_at), created_by=row.created_by,
                    updated_at=aware(row.updated_at), updated_by=row.updated_by)


# --- changes -------------------------------------------------------------------------------------

def bump_revision(session: Session) -> int:
    """One more revision of the whole set, in the caller's transaction (taking its write lock)."""
    now = utcnow()
    result = session.exec(update(FlagRevision).where(col(FlagRevision.name) == COUNTER)
                          .values(revision=FlagRevision.revision + 1, updated_at=now))
    if result.rowcount == 0:  # the migration writes the row; this only heals a database whose row was removed
        session.add(FlagRevision(name=COUNTER, revision=1, updated_at=now))
        session.flush()
    return revision(session)


def create(session: Session, *, key: str, definition: Definition, actor: str, reason: str,
           salt: str | None = None) -> FeatureFlag:
    """A new flag (Conflict when the key is live); a deleted key's row is reused and keeps counting revisions."""
    key, reason, definition = check_key(key), check_reason(reason), check_definition(definition)
    salt = check_salt(salt) if salt is not None else None
    current = bump_revision(session)
    row = flag_row(session, key=key)
    if row is not None and row.archived_at is None:
        raise Conflict(f"flag {key!r} exists already (revision {row.revision}); change it with "
                       f"`deployer flags set {key}` or PATCH /api/v1/flags/{key}")
    recreated = row is not None
    now = utcnow()
    if row is None:
        row = FeatureFlag(key=key, revision=1, created_at=now, created_by=actor)
    else:
        row.revision, row.created_at, row.created_by = row.revision + 1, now, actor
        row.archived_at, row.archived_by = None, None
    _apply(row, definition)
    # A fresh salt per flag (and per re-creation): two flags at 50% do not pick the same users.
    row.salt = salt if salt is not None else secrets.token_hex(4)
    row.updated_at, row.updated_by = now, actor
    session.add(row)
    session.flush()
    _audit(session, kind="flag_created", row=row, actor=actor, reason=reason, revision=current, before=None,
           message=f"flag {key} {'created again' if recreated else 'created'} ({_summary(definition)}): {reason}")
    return row


def change(session: Session, *, key: str, actor: str, reason: str, fields: dict[str, Any],
           expect_revision: int | None = None) -> tuple[FeatureFlag, bool]:
    """Apply `fields` (any of enabled, percentage, allow, deny, description) to a live flag.

    Returns the row and whether anything changed: a change to the same values writes nothing,
    bumps nothing and is not audited. Conflict when `expect_revision` is not the flag's revision.
    """
    key, reason = check_key(key), check_reason(reason)
    bump_revision(session)
    row = get_flag(session, key=key)
    if expect_revision is not None and expect_revision != row.revision:
        raise Conflict(f"flag {key!r} is at revision {row.revision}, not {expect_revision}: someone changed it "
                       f"meanwhile ({row.updated_by}); read it again and retry")
    before = definition_of(row)
    values = {name: tuple(value) if name in ("allow", "deny") else value for name, value in fields.items()}
    after = check_definition(replace(before, **values))
    if after == before:
        session.rollback()  # undoes the bump: hosts are not told to fetch an unchanged set
        return get_flag(session, key=key), False
    current = revision(session)
    _apply(row, after)
    row.revision += 1
    row.updated_at, row.updated_by = utcnow(), actor
    session.add(row)
    session.flush()
    _audit(session, kind="flag_changed", row=row, actor=actor, reason=reason, revision=current,
           before=before.as_dict(), message=f"flag {key} changed ({describe_change(before, after)}): {reason}")
    return row, True


def delete(session: Session, *, key: str, actor: str, reason: str) -> FeatureFlag:
    """Archive a live flag: hosts stop receiving it (an unknown flag is off for everyone)."""
    key, reason = check_key(key), check_reason(reason)
    current = bump_revision(session)
    row = get_flag(session, key=key)
    now = utcnow()
    row.archived_at, row.archived_by = now, actor
    row.revision += 1
    row.updated_at, row.updated_by = now, actor
    session.add(row)
    session.flush()
    store.audit(session, kind="flag_deleted", actor=actor, message=f"flag {key} deleted: {reason}",
                data={"key": key, "reason": reason, "revision": current, "flag_revision": row.revision,
                      "before": definition_of(row).as_dict(), "after": None})
    return row


def _apply(row: FeatureFlag, definition: Definition) -> None:
    row.description, row.enabled, row.percentage = definition.description, definition.enabled, definition.percentage
    row.allow, row.deny = list(definition.allow), list(definition.deny)


def _summary(definition: Definition) -> str:
    state = f"on at {definition.percentage:g}%" if definition.enabled else f"off, {definition.percentage:g}% when on"
    lists = [f"{len(users)} {name}ed" for name, users in (("allow", definition.allow), ("deni", definition.deny))
             if users]
    return ", ".join([state, *lists])


def _audit(session: Session, *, kind: str, row: FeatureFlag, actor: str, reason: str, revision: int,
           before: dict[str, Any] | None, message: str) -> None:
    store.audit(session, kind=kind, actor=actor, message=message,
                data={"key": row.key, "reason": reason, "revision": revision, "flag_revision": row.revision,
                      "before": before, "after": definition_of(row).as_dict(), "salt": row.salt})
