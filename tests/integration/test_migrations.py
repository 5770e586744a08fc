"""Schema migrations on SQLite and a real PostgreSQL: empty database, pre-migration database, checks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from deployer import schema, store
from deployer.cli import main
from deployer.exceptions import SchemaError
from tests.integration.test_store_and_queue import postgres_url  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'deployer.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = store.make_engine(url)
    yield engine
    engine.dispose()


def test_an_empty_database_is_migrated_to_exactly_the_models(engine: Engine) -> None:
    result = schema.upgrade(engine)
    assert (result.before, result.after, result.stamped_legacy) == (None, schema.head_revision(), False)
    # A model change without its migration shows up here (and `deployer db revision` writes it).
    assert schema.differences(engine) == []
    assert schema.check(engine) == schema.head_revision()
    again = schema.upgrade(engine)
    assert (again.before, again.after) == (schema.head_revision(), schema.head_revision())


def test_a_database_from_before_migrations_is_adopted_not_recreated(engine: Engine) -> None:
    # The initial revision is the schema `create_all` made before migrations: build that, minus the version table.
    schema.upgrade(engine, revision=schema.INITIAL_REVISION)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(text("INSERT INTO lock (name, holder, reason, at) VALUES ('pipeline', 'ana', 'freeze', "
                          "'2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO release (id, sha, kind, status, created_at) VALUES "
                          "(1, 'abc', 'DEPLOY', 'ROLLING_BACK', '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO deployment (id, release_id, status, wave, waves, extensions, max_extensions, "
                          "version, aborted, created_at, updated_at) VALUES (1, 1, 'ROLLING_BACK', 0, 3, 0, 2, 'abc', "
                          "false, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
    assert schema.current_revision(engine) is None
    result = schema.upgrade(engine)
    assert result.stamped_legacy and result.before is None and result.after == schema.head_revision()
    with store.session_scope(engine) as session:
        lock = store.get_lock(session)
        assert lock is not None and (lock.holder, lock.reason) == ("ana", "freeze")
        # A deployment in flight across the upgrade keeps going, with the new columns filled in.
        deployment = store.get_deployment(session, deployment_id=1)
        assert (deployment.status.value, deployment.rollback_failures, deployment.max_rollback_failures) == \
            ("rolling_back", 0, 5)
    assert schema.differences(engine) == []


def test_a_half_made_database_is_refused_with_the_fix(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE lock (name VARCHAR PRIMARY KEY)"))
    with pytest.raises(SchemaError, match="some of the controller's tables.*empty database"):
        schema.upgrade(engine)


def test_check_mode_refuses_an_old_schema_and_names_the_command(url: str, engine: Engine) -> None:
    with pytest.raises(SchemaError, match=r"revision none.*deployer db upgrade"):
        store.open_database(url, migrate="check")
    assert inspect(engine).get_table_names() == []  # refusing changed nothing
    store.open_database(url, migrate="auto").dispose()
    store.open_database(url, migrate="check").dispose()


def test_every_migration_can_be_undone_and_redone(engine: Engine) -> None:
    schema.upgrade(engine)
    from alembic import command

    cfg = schema.config(engine.url.render_as_string(hide_password=False))
    command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    schema.upgrade(engine)
    assert schema.differences(engine) == []


def test_controllers_starting_together_migrate_once(url: str, engine: Engine) -> None:
    code = ("import sys; from deployer import schema, store; "
            "r = schema.upgrade(store.make_engine(sys.argv[1])); print(r.before, r.after)")
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-800:] for _, err in outputs]
    befores = sorted(out.split()[0] for out, _ in outputs)
    # Exactly one process found the database empty; the others waited for it and found it current.
    assert befores.count("None") == 1 and set(befores) - {"None"} == {schema.head_revision()}


def test_db_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"source:\n  repository: {tmp_path / 'none.git'}\nworkdir: {tmp_path / 'work'}\n")
    assert main(["-c", str(config), "db", "check"]) == 1
    assert "deployer db upgrade" in capsys.readouterr().err
    assert main(["-c", str(config), "db", "upgrade"]) == 0
    assert f"revision {schema.head_revision()} (was empty)" in capsys.readouterr().out
    assert main(["-c", str(config), "db", "current"]) == 0
    assert main(["-c", str(config), "db", "revision"]) == 2
    assert "--message is required" in capsys.readouterr().err


def test_a_model_change_without_its_migration_is_caught(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    schema.upgrade(engine)
    current = schema.metadata()
    from sqlalchemy import Column, Integer

    changed = current.tables["lock"]
    changed.append_column(Column("forgotten", Integer, nullable=True))
    monkeypatch.setattr(schema, "metadata", lambda: current)
    found = schema.differences(engine)
    assert [(d[0], d[3].name) for d in found if d[0] == "add_column"] == [("add_column", "forgotten")]
