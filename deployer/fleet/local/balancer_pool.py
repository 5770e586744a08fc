"""The balancer's view of its upstreams: rotation, round-robin choice, in-flight counts.

No network here. Everything runs on the balancer's single event loop, so a choice and
the in-flight increment that follows it happen without an `await` in between: a drain
can never miss a request that was already routed to the host.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Upstream:
    """One app host behind the balancer."""

    name: str
    address: str
    enabled: bool = True
    # Nothing is routed to a host until a health check has passed (fresh hosts, restarts).
    healthy: bool = False
    in_flight: int = 0
    served: int = 0
    errors: int = 0
    # Bumped whenever address/enabled change, so a health check started before the change
    # cannot overwrite what the change decided.
    generation: int = 0
    last_error: str = ""
    failed_checks: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    @property
    def in_rotation(self) -> bool:
        """True when new requests may be routed here."""
        return self.enabled and self.healthy

    def begin(self) -> None:
        """Count a request routed here."""
        self.in_flight += 1
        self.idle.clear()

    def end(self) -> None:
        """Count a request finished (answered or failed)."""
        self.in_flight -= 1
        if self.in_flight <= 0:
            self.in_flight = 0
            self.idle.set()

    def to_json(self) -> dict[str, Any]:
        """Admin API representation."""
        return {
            "name": self.name,
            "address": self.address,
            "enabled": self.enabled,
            "healthy": self.healthy,
            "in_rotation": self.in_rotation,
            "in_flight": self.in_flight,
            "served": self.served,
            "errors": self.errors,
            "last_error": self.last_error,
        }


class Pool:
    """The set of upstreams, in a stable order, with round-robin choice over those in rotation."""

    def __init__(self) -> None:
        self._upstreams: dict[str, Upstream] = {}
        self._next = 0
        # Set whenever some host (re)enters rotation; lets requests wait for one if asked to.
        self.rotation_changed = asyncio.Event()

    def __contains__(self, name: str) -> bool:
        return name in self._upstreams

    def get(self, name: str) -> Upstream | None:
        """Return the named upstream or None."""
        return self._upstreams.get(name)

    def all(self) -> list[Upstream]:
        """All upstreams in insertion order."""
        return list(self._upstreams.values())

    def put(self, name: str, address: str) -> tuple[Upstream, bool]:
        """Add a host or change its address; returns (upstream, changed)."""
        address = address.rstrip("/")
        up = self._upstreams.get(name)
        if up is None:
            up = Upstream(name=name, address=address)
            self._upstreams[name] = up
            return up, True
        if up.address == address:
            return up, False
        up.address = address
        up.healthy = False
        up.generation += 1
        return up, True

    def remove(self, name: str) -> Upstream | None:
        """Forget a host; returns it (its in-flight requests finish on their own)."""
        return self._upstreams.pop(name, None)

    def set_healthy(self, up: Upstream, healthy: bool) -> None:
        """Record a health verdict and wake requests waiting for a host."""
        was = up.in_rotation
        up.healthy = healthy
        if up.in_rotation and not was:
            self.rotation_changed.set()

    def choose(self, exclude: set[str] | frozenset[str] = frozenset()) -> Upstream | None:
        """Next in-rotation host in round-robin order, skipping `exclude`; None if there is none."""
        ups = list(self._upstreams.values())
        n = len(ups)
        for i in range(n):
            up = ups[(self._next + i) % n]
            if up.in_rotation and up.name not in exclude:
                # Continue after the chosen one: equal shares for every host in rotation.
                self._next = (self._next + i + 1) % n
                return up
        return None

    def in_rotation(self) -> list[Upstream]:
        """Hosts that currently receive new requests."""
        return [up for up in self._upstreams.values() if up.in_rotation]
