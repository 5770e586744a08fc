"""The app's schema migrations (Alembic), run by every host on start under a lock.

Hosts sharing one database start together, so the upgrade is serialised: a PostgreSQL
advisory lock, or a file lock beside a SQLite file. A database created before
migrations existed (the tables, no version table) is stamped with the first revision,
not re-created. The version table has the app's own name, so the app can share a
database with other programs.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, inspect, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from . import models

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "snapgram_alembic_version"
INITIAL_REVISION = "0001"
_PG_LOCK_KEY = 0x736E6170_01  # "snap": a key no other program on a shared server is likely to use


def metadata() -> MetaData:
    """The app's own tables (other SQLModel tables loaded in the same process are left out)."""
    own = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        mapped = [m.class_ for m in SQLModel._sa_registry.mappers if m.local_table is table]
        if mapped and mapped[0].__module__ == models.__name__:
            table.to_metadata(own)
    return own


def config(engine: Engine) -> Config:
    """An Alembic configuration pointing at the app's migration scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return cfg


def head_revision() -> str:
    """The newest revision of the app's schema."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
            connection.commit()
            try:
                yield connection
            finally:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
                connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        with engine.connect() as connection:
            yield connection
        return
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    with open(f"{database}.migrate.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            with engine.connect() as connection:
                yield connection
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine, *, revision: str = "head") -> str | None:
    """Migrate the app's database to `revision`; returns the revision it was at before."""
    cfg = config(engine)
    with _locked(engine) as connection:
        cfg.attributes["connection"] = connection
        before = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()
        if before is None and set(metadata().tables) <= set(inspect(connection).get_table_names()):
            logger.info("database has the app's tables but no %s; stamping %s", VERSION_TABLE, INITIAL_REVISION)
            command.stamp(cfg, INITIAL_REVISION)
            connection.commit()
        command.upgrade(cfg, revision)
        connection.commit()
    return before
