"""Alembic environment of the controller's database (run by deployer.schema, or the `alembic` command)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from deployer import schema

config = context.config


def _configure(connection: object) -> None:
    context.configure(
        connection=connection, target_metadata=schema.metadata(), include_object=schema.include_object,
        # SQLite cannot ALTER most things: batch mode copies the table, so one script serves both databases.
        render_as_batch=True, compare_type=True, transaction_per_migration=True)


def run_migrations() -> None:
    """Migrate over the connection deployer.schema passes in, or one opened from sqlalchemy.url."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) mode is not supported; run `deployer db upgrade` against the database")
run_migrations()
