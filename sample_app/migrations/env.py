"""Alembic environment of the app's database (run by sample_app.schema on every start)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from sample_app import schema

config = context.config


def _run(connection: object) -> None:
    # Batch mode: SQLite cannot ALTER most things, so the same scripts serve SQLite and PostgreSQL.
    context.configure(connection=connection, target_metadata=schema.metadata(), render_as_batch=True,
                      version_table=schema.VERSION_TABLE, compare_type=True,
                      include_name=lambda name, type_, _parent: type_ != "table" or name in schema.metadata().tables)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as opened:
        _run(opened)
        opened.commit()
