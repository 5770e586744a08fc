"""Publish the fleet as Prometheus file_sd targets whenever a host's address, role or version changes."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from deployer import store
from deployer.fleet.base import Fleet
from deployer.fleet.discovery import Target, TargetsFile
from deployer.settings import Settings


def targets_path(settings: Settings) -> Path | None:
    """Where the targets file goes (`analysis.file_sd`, relative to the workdir), or None when off."""
    if not settings.analysis.file_sd:
        return None
    path = Path(settings.analysis.file_sd)
    return path if path.is_absolute() else settings.workdir_path / path


class TargetPublisher:
    """Called every controller tick; rewrites the file only when something changed."""

    def __init__(self, *, settings: Settings, engine: Engine, fleet: Fleet) -> None:
        path = targets_path(settings)
        self.file = TargetsFile(path) if path is not None else None
        self.engine = engine
        self.fleet = fleet

    def tick(self) -> None:
        """Publish the hosts as they are now: the fleet's addresses, the database's roles and versions."""
        if self.file is None:
            return
        with store.session_scope(self.engine) as session:
            states = {s.name: (s.role.value, s.observed_version) for s in store.host_states(session)}
        self.file.sync([Target(host=h.name, address=h.address, role=states.get(h.name, ("idle", None))[0],
                               version=states.get(h.name, ("idle", None))[1]) for h in self.fleet.hosts()])
