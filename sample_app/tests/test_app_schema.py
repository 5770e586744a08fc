"""The app's schema migrations: an empty database, one from before migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlmodel import Session, func, select

from sample_app import schema
from sample_app.db import DEMO_USERS, init_database, make_engine
from sample_app.models import User

from .test_app_postgres import ADMIN_URL, postgres_url  # noqa: F401  (fixture)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=[
    pytest.mark.integration, pytest.mark.skipif(not ADMIN_URL, reason="set SAMPLE_APP_TEST_POSTGRES_URL")])])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'app.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    request.addfinalizer(engine.dispose)
    return engine


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": schema.VERSION_TABLE,
                                                               "compare_type": True})
        return list(compare_metadata(context, schema.metadata()))


def test_an_empty_database_is_migrated_to_exactly_the_models(engine: Engine) -> None:
    init_database(engine)
    assert schema.current_revision(engine) == schema.head_revision()
    # A model change without its migration shows up here.
    assert _differences(engine) == []
    assert schema.upgrade(engine) == schema.head_revision()


def test_a_database_from_before_migrations_keeps_its_data(engine: Engine) -> None:
    schema.upgrade(engine, revision=schema.INITIAL_REVISION)
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {schema.VERSION_TABLE}"))
        connection.execute(text("INSERT INTO \"user\" (username, created_at) VALUES ('zoe', 1.0)"))
    assert schema.current_revision(engine) is None
    init_database(engine)
    assert schema.current_revision(engine) == schema.head_revision()
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(User)).one() == len(DEMO_USERS) + 1
    assert _differences(engine) == []
