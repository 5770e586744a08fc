"""The labels that let a restarted controller find every container and image of the platform."""

from __future__ import annotations

PLATFORM = "io.deployer.platform"  # value: the platform's name (fleet.platform), so two platforms never mix
HOST = "io.deployer.host"  # the host slot, e.g. host-3
ROLE = "io.deployer.role"  # "app": a host's application container
VERSION = "io.deployer.version"  # the commit sha it runs
PORT = "io.deployer.port"  # the loopback port it serves on (host networking)
APP_ROLE = "app"
