"""One leader per database: any number of controllers may run; exactly one drives the fleet.

PostgreSQL: a session advisory lock held on a dedicated connection. The server frees it
the moment that connection dies (kill -9 closes the socket), so a standby's next attempt
wins. SQLite: an exclusive lock on a file beside the database, which the kernel frees
when the holder dies. The `leader` row only tells people who leads; the lock decides.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from filelock import FileLock, Timeout
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from deployer import store
from deployer.model import Leader, utcnow

log = logging.getLogger(__name__)
LEADER_NAME = "controller"
# Fixed key: the controller's database is its own, so one key per database is enough.
_PG_LEADER_KEY = 0x64706C79_02


class Leadership(Protocol):
    def try_acquire(self) -> bool:
        """Take the leadership if nobody holds it; True when this process holds it now."""
        ...

    def held(self) -> bool:
        """Whether this process still holds it (False after a lost database connection)."""
        ...

    def release(self) -> None:
        """Give it up (a clean stop), so a standby takes over at once."""
        ...


class PostgresLeadership:
    """A session advisory lock on a connection of its own (never returned to a pool)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = create_engine(engine.url, poolclass=NullPool)
        self._connection: Connection | None = None
        self._holding = False

    def try_acquire(self) -> bool:
        if self._holding:
            return self.held()
        try:
            if self._connection is None:
                self._connection = self._engine.connect()
            self._holding = bool(self._connection.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                                          {"k": _PG_LEADER_KEY}).scalar())
            self._connection.commit()
            return self._holding
        except Exception as exc:  # a database that is down: stay a standby and try again
            log.warning("cannot reach the database to take the leadership: %s", exc)
            self._drop()
            return False

    def held(self) -> bool:
        if self._connection is None or not self._holding:
            return False
        try:
            # A session advisory lock lives as long as its session: a working session still holds it.
            self._connection.execute(text("SELECT 1"))
            self._connection.commit()
            return True
        except Exception as exc:
            log.error("lost the leadership connection: %s", exc)
            self._drop()
            return False

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LEADER_KEY})
                self._connection.commit()
            except Exception:  # closing the session below frees it anyway
                log.debug("unlock failed; closing the session frees the lock", exc_info=True)
        self._drop()
        self._engine.dispose()

    def _drop(self) -> None:
        self._holding = False
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                log.debug("closing a broken connection failed", exc_info=True)
            self._connection = None


class FileLeadership:
    """An exclusive lock on `<database file>.leader.lock` (SQLite: all controllers share one machine)."""

    def __init__(self, path: str) -> None:
        self._lock = FileLock(path, thread_local=False)

    def try_acquire(self) -> bool:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    def held(self) -> bool:
        return self._lock.is_locked

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)


class SoleLeadership:
    """An in-memory database can only have the one process that made it."""

    def try_acquire(self) -> bool:
        return True

    def held(self) -> bool:
        return True

    def release(self) -> None:
        return None


def build_leadership(engine: Engine) -> Leadership:
    """The leadership mechanism that fits the database."""
    if engine.dialect.name == "postgresql":
        return PostgresLeadership(engine)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return FileLeadership(f"{database}.leader.lock")
    return SoleLeadership()


@dataclass(frozen=True)
class Identity:
    """Who this controller is, as `deployer status` shows it."""

    host: str
    pid: int

    @property
    def holder(self) -> str:
        return f"{self.host}:{self.pid}"

    @classmethod
    def of_this_process(cls) -> Identity:
        return cls(host=socket.gethostname(), pid=os.getpid())


def record_leader(engine: Engine, identity: Identity, *, waited_s: float) -> None:
    """Write who leads now, with an audit event naming the one it replaced."""
    with store.session_scope(engine) as session:
        row = session.get(Leader, LEADER_NAME)
        previous = row.holder if row is not None else None
        now = utcnow()
        if row is None:
            row = Leader(name=LEADER_NAME, holder=identity.holder, host=identity.host, pid=identity.pid)
        row.holder, row.host, row.pid, row.since, row.heartbeat_at = (
            identity.holder, identity.host, identity.pid, now, now)
        session.add(row)
        takeover = f", taking over from {previous}" if previous and previous != identity.holder else ""
        store.audit(session, kind="leader_elected", actor=identity.holder,
                    message=f"{identity.holder} leads{takeover} after {waited_s:.1f}s as a standby",
                    data={"host": identity.host, "pid": identity.pid, "previous": previous,
                          "waited_s": round(waited_s, 3)})


def heartbeat(engine: Engine, identity: Identity) -> None:
    """Refresh the leader row's heartbeat (for people; the lock itself needs none)."""
    with store.session_scope(engine) as session:
        row = session.get(Leader, LEADER_NAME)
        if row is not None and row.holder == identity.holder:
            row.heartbeat_at = utcnow()
            session.add(row)


class Steerable(Protocol):
    def recover(self) -> None: ...

    def tick(self) -> None: ...


def lead(controller: Steerable, leadership: Leadership, stop: threading.Event, *, engine: Engine,
         identity: Identity, tick_s: float, poll_s: float, heartbeat_s: float,
         on_elected: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.monotonic) -> None:
    """Stand by until elected, then recover and tick; stand by again if the leadership is lost."""
    try:
        while not stop.is_set():
            started = clock()
            announced = False
            while not stop.is_set() and not leadership.try_acquire():
                if not announced:
                    log.info("standing by: another controller leads (%s)", _leader_text(engine))
                    announced = True
                stop.wait(poll_s)
            if stop.is_set():
                return
            record_leader(engine, identity, waited_s=clock() - started)
            log.info("elected leader as %s", identity.holder)
            on_elected()
            # Exactly what a restarted controller does: probe hosts, resume the deployment in flight.
            controller.recover()
            last_beat = clock()
            while not stop.is_set():
                if clock() - last_beat >= heartbeat_s:
                    if not leadership.held():
                        log.error("leadership lost; no longer driving the fleet")
                        break
                    _safe_heartbeat(engine, identity)
                    last_beat = clock()
                controller.tick()
                stop.wait(tick_s)
    finally:
        leadership.release()


def _safe_heartbeat(engine: Engine, identity: Identity) -> None:
    try:
        heartbeat(engine, identity)
    except Exception:  # the lock, not the row, decides who leads: a failed write is only logged
        log.warning("could not record the heartbeat", exc_info=True)


def _leader_text(engine: Engine) -> str:
    try:
        with store.session_scope(engine) as session:
            row = session.get(Leader, LEADER_NAME)
            return row.holder if row is not None else "unknown"
    except Exception:
        return "unknown"
