"""Schema migrations with Alembic (the only module that drives it; the scripts live in migrations/).

`upgrade()` brings a database to the newest revision under a lock, so controllers and
API replicas starting together do not race. A database created before migrations
existed (tables, no `alembic_version`) is recognised and stamped with the initial
revision, then upgraded, never re-created.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

import deployer.model  # noqa: F401  (registers the tables on SQLModel.metadata)
from deployer.exceptions import SchemaError

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
INITIAL_REVISION = "0001"
# The tables `create_all` made before migrations existed: their presence marks such a database.
LEGACY_TABLES = frozenset({"commit", "release", "deployment", "stage", "hoststate", "verdict", "auditevent",
                           "command", "lock"})
# Any number that is unlikely to collide with another application's advisory lock on a shared server.
_PG_MIGRATION_LOCK = 0x64706C79_01
MigrateMode = Literal["auto", "check"]


@dataclass(frozen=True)
class UpgradeResult:
    """What `upgrade()` did: the revision before and after, and whether a legacy database was adopted."""

    before: str | None
    after: str
    stamped_legacy: bool


def metadata() -> MetaData:
    """The controller's tables only (other SQLModel tables in the same process are left out)."""
    own = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        mapped = [m.class_ for m in SQLModel._sa_registry.mappers if getattr(m, "local_table", None) is table]
        if mapped and mapped[0].__module__.startswith("deployer."):
            table.to_metadata(own)
    return own


def config(url: str) -> Config:
    """An Alembic configuration for `url`, pointing at the packaged migration scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolates '%': a URL-encoded password must survive it.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return cfg


def head_revision() -> str:
    """The newest revision the packaged scripts know."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _url_text(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """One migrating process at a time: an advisory lock on PostgreSQL, a file lock beside a SQLite file."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            connection.commit()
            try:
                yield connection
            finally:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_MIGRATION_LOCK})
                connection.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        with engine.connect() as connection:
            yield connection
        return
    with open(f"{database}.migrate.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            with engine.connect() as connection:
                yield connection
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cfg: Config, connection: Connection, action: str, *args: Any) -> None:
    cfg.attributes["connection"] = connection
    getattr(command, action)(cfg, *args)
    connection.commit()


def upgrade(engine: Engine, *, revision: str = "head") -> UpgradeResult:
    """Migrate the database to `revision` (default: the newest), adopting a pre-migration database."""
    cfg = config(_url_text(engine))
    with _migration_lock(engine) as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        stamped = False
        if before is None:
            existing = set(inspect(connection).get_table_names()) & LEGACY_TABLES
            if existing == LEGACY_TABLES:
                log.info("database has the pre-migration schema; stamping it %s", INITIAL_REVISION)
                _run(cfg, connection, "stamp", INITIAL_REVISION)
                stamped = True
            elif existing:
                raise SchemaError(
                    f"database {engine.url.render_as_string()} has some of the controller's tables "
                    f"({', '.join(sorted(existing))}) but not all and no alembic_version: it was not made by this "
                    "program or is damaged; restore it or point database.url at an empty database",
                    current=None, head=head_revision())
        _run(cfg, connection, "upgrade", revision)
        after = MigrationContext.configure(connection).get_current_revision()
    assert after is not None
    if after != before:
        log.info("database migrated from %s to %s", before or "nothing", after)
    return UpgradeResult(before=before, after=after, stamped_legacy=stamped)


def check(engine: Engine) -> str:
    """The current revision if it is the newest, else SchemaError saying how to migrate."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaError(
            f"database {engine.url.render_as_string()} is at schema revision {current or 'none'}, this version "
            f"needs {head}; run `deployer db upgrade` (or set database.migrate: auto)", current=current, head=head)
    return current


def prepare(engine: Engine, *, mode: MigrateMode) -> None:
    """On start: migrate (`auto`) or refuse to run on an old schema (`check`)."""
    if mode == "auto":
        upgrade(engine)
    else:
        check(engine)


def differences(engine: Engine) -> list[Any]:
    """What the models have that the migrated database lacks (empty when no migration is missing)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": include_object,
                                                               "compare_type": True})
        return list(compare_metadata(context, metadata()))


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Autogenerate looks at the controller's tables only (a shared database may hold others)."""
    if type_ == "table":
        return name in metadata().tables
    table = getattr(obj, "table", None)
    return table is None or table.name in metadata().tables


def new_revision(engine: Engine, *, message: str) -> str:
    """Write a migration script for what the models changed since the database's revision; its path."""
    check(engine)
    cfg = config(_url_text(engine))
    with engine.connect() as connection:
        cfg.attributes["connection"] = connection
        # Numbered revisions (0001, 0002, ...) read in order in the versions folder.
        scripts = command.revision(cfg, message=message, autogenerate=True, rev_id=f"{int(head_revision()) + 1:04d}")
    script = scripts[0] if isinstance(scripts, list) else scripts
    assert script is not None
    return str(script.path)
