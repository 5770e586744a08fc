"""Connections to the Docker engines named by URL (unix://, tcp://, ssh://), with errors that name them."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import docker
import docker.errors
from docker import DockerClient

from deployer.exceptions import DeployerError

log = logging.getLogger(__name__)


class EngineError(DeployerError):
    """A Docker engine could not be reached or refused an operation."""


class Engine:
    """One Docker engine: its URL, a client, and the address its host-network containers answer on."""

    def __init__(self, url: str, *, timeout_s: float, bind: str) -> None:
        self.url = url
        self.timeout_s = timeout_s
        parts = urlsplit(url)
        # Containers use the engine machine's network: a local socket means this machine.
        self.address = bind if parts.scheme == "unix" else (parts.hostname or bind)
        self._client: DockerClient | None = None

    @property
    def client(self) -> DockerClient:
        """A connected client; EngineError naming the URL when the engine cannot be reached."""
        if self._client is None:
            try:
                client = DockerClient(base_url=self.url, timeout=int(max(1, self.timeout_s)),
                                      use_ssh_client=self.url.startswith("ssh://"))
                client.ping()
            except (docker.errors.DockerException, OSError) as exc:
                raise EngineError(f"Docker engine {self.url} cannot be reached: {_short(exc)}; check fleet.engines "
                                  "and that dockerd listens there") from None
            self._client = client
        return self._client

    def close(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            self._client.close()
            self._client = None


class Engines:
    """The engines of a fleet; host slot i lives on engine i mod n, so hosts spread evenly."""

    def __init__(self, urls: list[str], *, timeout_s: float, bind: str) -> None:
        if not urls:
            raise EngineError("fleet.engines is empty; name at least one engine, e.g. unix:///var/run/docker.sock")
        self.engines = [Engine(url, timeout_s=timeout_s, bind=bind) for url in urls]

    def for_slot(self, index: int) -> Engine:
        """The engine that runs host slot `index`."""
        return self.engines[index % len(self.engines)]

    def check(self) -> None:
        """Connect to every engine now; EngineError naming the first that cannot be reached."""
        for engine in self.engines:
            _ = engine.client

    def close(self) -> None:
        """Close every client."""
        for engine in self.engines:
            engine.close()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
