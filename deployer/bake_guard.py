"""A host of the new version that dies during its bake fails the wave at once.

Without this a dead canary only shows as scrapes that fail: the analysis calls that
"inconclusive" (missing data never passes), extends the bake, and finally pauses for a
human, although the version has just crashed in front of it. A crash is evidence against
the version, so the controller treats it like a host that failed to start: roll back.
"""

from __future__ import annotations

from collections.abc import Sequence

from deployer.fleet.base import Fleet


def dead_hosts(fleet: Fleet, names: Sequence[str]) -> list[str]:
    """The named hosts whose process is gone (the runtime says not running), with what the probe said."""
    wanted = set(names)
    dead = []
    for host in fleet.hosts():
        if host.name in wanted:
            status = fleet.probe(host)
            if not status.running:
                dead.append(f"{host.name} ({status.detail or 'not running'})")
    return dead
