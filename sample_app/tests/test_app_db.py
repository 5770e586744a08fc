"""Schema creation and seeding on a database shared by several hosts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, func, select

from sample_app.db import DEMO_USERS, database_url_from_env, init_database, make_engine
from sample_app.models import Follow, User


def test_database_url_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAMPLE_APP_DATABASE_URL", raising=False)
    assert database_url_from_env() == "sqlite:///./sample_app.db"
    monkeypatch.setenv("SAMPLE_APP_DATABASE_URL", "sqlite:////tmp/x.db")
    assert database_url_from_env() == "sqlite:////tmp/x.db"


def test_sqlite_connections_use_wal_and_wait_for_locks(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar_one() >= 5000
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_init_is_idempotent(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'i.db'}")
    init_database(engine)
    init_database(engine)
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(User)).one() == len(DEMO_USERS)
        assert session.exec(select(func.count()).select_from(Follow)).one() == 2 * len(DEMO_USERS)
    engine.dispose()


def test_concurrent_first_start_on_a_new_file(tmp_path: Path) -> None:
    # Six hosts (own engines, own connections) start at once on a file that does not exist yet.
    url = f"sqlite:///{tmp_path / 'race.db'}"
    engines = [make_engine(url) for _ in range(6)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def start(engine: Engine) -> None:
        barrier.wait()
        try:
            init_database(engine)
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with Session(engines[0]) as session:
        names = session.exec(select(User.username)).all()
    assert sorted(names) == sorted(DEMO_USERS)
    for engine in engines:
        engine.dispose()
