"""The leadership locks themselves (SQLite file lock, PostgreSQL advisory lock) and the stand-by loop."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from deployer import store
from deployer.model import Leader
from deployer.leader import FileLeadership, Identity, PostgresLeadership, build_leadership, lead
from tests.integration.test_store_and_queue import postgres_url  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'deployer.db'}" if request.param == "sqlite" \
        else request.getfixturevalue("postgres_url")
    engine = store.open_database(url)
    request.addfinalizer(engine.dispose)
    return engine


def test_exactly_one_holder_until_it_lets_go(engine: Engine) -> None:
    first, second = build_leadership(engine), build_leadership(engine)
    assert isinstance(first, FileLeadership if engine.dialect.name == "sqlite" else PostgresLeadership)
    assert first.try_acquire() and first.held()
    assert not second.try_acquire() and not second.held()
    first.release()
    assert second.try_acquire() and second.held()
    assert not first.try_acquire()
    second.release()


class _Controller:
    def __init__(self, stop: threading.Event, ticks: int) -> None:
        self.recovered = 0
        self.ticked = 0
        self._stop, self._ticks = stop, ticks

    def recover(self) -> None:
        self.recovered += 1

    def tick(self) -> None:
        self.ticked += 1
        if self.ticked >= self._ticks:
            self._stop.set()


class _Flaky:
    """Leads, loses it once (as when its database connection dies), then leads again."""

    def __init__(self) -> None:
        self.acquired = 0
        self.checks = 0
        self.released = False

    def try_acquire(self) -> bool:
        self.acquired += 1
        return True

    def held(self) -> bool:
        self.checks += 1
        return self.checks != 2

    def release(self) -> None:
        self.released = True


def test_a_leader_that_loses_the_lock_stops_driving_and_recovers_when_elected_again(engine: Engine) -> None:
    stop = threading.Event()
    controller, leadership = _Controller(stop, ticks=12), _Flaky()
    identity = Identity(host="box", pid=4242)
    lead(controller, leadership, stop, engine=engine, identity=identity, tick_s=0, poll_s=0, heartbeat_s=0)
    assert leadership.acquired == 2 and controller.recovered == 2 and leadership.released
    with store.session_scope(engine) as session:
        kinds = [e.kind for e in store.recent_audit(session)]
        leader = session.get(Leader, "controller")
    assert kinds.count("leader_elected") == 2
    assert leader is not None and (leader.host, leader.pid) == ("box", 4242)
