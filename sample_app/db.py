"""Database engine, schema migration and demo data, safe for a fleet sharing one database."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import NullPool
from sqlmodel import Session, SQLModel, col, select

from . import schema
from .models import Follow, User

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///./sample_app.db"
DEMO_USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
# Every writer of a shared SQLite file waits this long for the lock instead of failing.
SQLITE_BUSY_TIMEOUT_MS = 15_000

T = TypeVar("T")


def database_url_from_env() -> str:
    """Return SAMPLE_APP_DATABASE_URL or the default SQLite file in the working directory."""
    return os.environ.get("SAMPLE_APP_DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL


def _on_sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    """Prepare every SQLite connection for many processes writing one file."""
    cursor = dbapi_connection.cursor()
    # busy_timeout first: switching to WAL itself needs the lock another process may hold.
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    # NORMAL is durable across application crashes in WAL mode and much faster than FULL.
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def make_engine(url: str, *, pooled: bool = True) -> Engine:
    """Create an engine for url; SQLite connections get WAL mode and a busy timeout."""
    is_sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = {}
    if is_sqlite:
        # Request handlers run in a thread pool, so connections move between threads.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    if not pooled:
        kwargs["poolclass"] = NullPool
    elif not url.startswith("sqlite:///:memory:") and url != "sqlite://":
        # Enough connections for uvicorn's worker threads so requests rarely queue for one.
        kwargs.update(pool_size=10, max_overflow=30, pool_pre_ping=not is_sqlite)
    engine = create_engine(url, **kwargs)
    if is_sqlite:
        event.listen(engine, "connect", _on_sqlite_connect)
    return engine


def _retry(what: str, action: Callable[[], T], attempts: int = 20) -> T:
    """Run action, retrying on database errors caused by other hosts starting at the same time."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except DBAPIError as exc:
            # Concurrent first starts race on CREATE TABLE ("already exists", or a
            # duplicate key in PostgreSQL's catalog) and on SQLite's lock; the next
            # attempt sees the winner's work and has nothing left to do.
            if attempt == attempts:
                raise
            logger.info("%s: attempt %d failed (%s); retrying", what, attempt, exc.orig)
            time.sleep(random.uniform(0.05, 0.25))
    raise AssertionError("unreachable")


def create_schema(engine: Engine) -> None:
    """Migrate the schema to the newest revision; safe when several hosts start together."""
    _retry("migrate the schema", lambda: schema.upgrade(engine))


def _insert_ignoring_duplicates(engine: Engine, model: type[SQLModel], rows: list[dict[str, Any]]) -> None:
    """Insert rows of model, skipping those another host inserted first."""
    if not rows:
        return
    # One transaction in the usual case; row by row only when another host raced us.
    # Fresh objects each time: a failed flush leaves generated ids on the old ones.
    with Session(engine) as session:
        session.add_all([model(**row) for row in rows])
        try:
            session.commit()
            return
        except IntegrityError:
            session.rollback()
    for row in rows:
        with Session(engine) as session:
            session.add(model(**row))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()


def _seed(engine: Engine) -> None:
    """Insert the demo users and a ring of follows between them, if missing."""
    with Session(engine) as session:
        existing = set(session.exec(select(User.username).where(col(User.username).in_(DEMO_USERS))).all())
    _insert_ignoring_duplicates(engine, User, [{"username": name} for name in DEMO_USERS if name not in existing])
    with Session(engine) as session:
        ids = {u.username: u.id for u in session.exec(select(User).where(col(User.username).in_(DEMO_USERS)))}
        follows = set(
            session.exec(
                select(Follow.follower_id, Follow.followee_id).where(col(Follow.follower_id).in_(ids.values()))
            ).all()
        )
    wanted: list[dict[str, Any]] = []
    # Each demo user follows the next two, so every demo feed has other people's posts.
    for i, name in enumerate(DEMO_USERS):
        for step in (1, 2):
            followee = DEMO_USERS[(i + step) % len(DEMO_USERS)]
            pair = (ids[name], ids[followee])
            if pair not in follows:
                wanted.append({"follower_id": pair[0], "followee_id": pair[1]})
    _insert_ignoring_duplicates(engine, Follow, wanted)


def seed_demo_data(engine: Engine) -> None:
    """Create the demo users alice, bob, ... and their follows, if missing."""
    _retry("seed demo data", lambda: _seed(engine))


def init_database(engine: Engine) -> None:
    """Create the schema and the demo data."""
    started = time.perf_counter()
    create_schema(engine)
    seed_demo_data(engine)
    logger.info("database ready in %.3fs (%s)", time.perf_counter() - started, engine.url.render_as_string())


def ping(engine: Engine) -> None:
    """Raise if the database cannot answer a trivial query."""
    # Reading a real table (not just SELECT 1) proves the file or server and schema are there.
    with engine.connect() as connection:
        connection.execute(select(User.id).limit(1)).all()
