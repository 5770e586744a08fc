"""After a restart, put back in rotation every host that already runs what the database wants.

A controller killed between a replacement's `drain` and its `enable` leaves a host running
the right version, healthy, and out of the load balancer. The reconciler sees nothing to do
for it (observed == desired), so without this the host would serve no traffic until its next
replacement: a canary judged on zero requests, a fleet short of capacity. Replaying
`fleet.deploy` is a no-op for such a host except that it enables it again.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine

from deployer import store
from deployer.exceptions import DeployerError
from deployer.fleet.base import Artifact, Fleet

log = logging.getLogger(__name__)


def restore_rotation(*, engine: Engine, fleet: Fleet) -> list[str]:
    """Replay the no-op deploy of every settled, healthy host (re-enabling it); returns the hosts touched."""
    with store.session_scope(engine) as session:
        wanted = {s.name: Artifact(s.desired_version, s.desired_artifact) for s in store.host_states(session)
                  if s.desired_version and s.desired_artifact and s.healthy
                  and s.observed_version == s.desired_version}
    touched = []
    for host in fleet.hosts():
        artifact = wanted.get(host.name)
        if artifact is None:
            continue  # not settled: the reconciler replaces it anyway
        try:
            fleet.deploy(host, artifact)
            touched.append(host.name)
        except DeployerError as exc:  # the reconciler's next pass deals with a host that fails here
            log.warning("could not put %s back in rotation: %s", host.name, exc)
    return touched
