"""One image per release, built from the Dockerfile the app repository carries, on every engine.

The image is tagged `<repository>:<sha>` and labelled with the platform and the version, so
prune can keep exactly the images of the last releases (a rollback starts one without
building) and never touches an image the platform did not build. The Dockerfile installs the
dependencies in a layer of their own, so consecutive releases only add the app's files.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import docker.errors

from deployer.exceptions import BuildError
from deployer.fleet.base import Artifact
from deployer.fleet.docker.engines import Engine, EngineError, Engines
from deployer.fleet.docker.labels import PLATFORM, VERSION
from deployer.fleet.local.builder import ReleaseBuilder

log = logging.getLogger(__name__)


class ImageBuilder:
    """Release directory first (the build context), then `docker build` on each engine that lacks the image."""

    def __init__(self, *, releases: ReleaseBuilder, engines: Engines, repository: str, dockerfile: str,
                 base_image: str, platform: str) -> None:
        self.releases = releases
        self.engines = engines
        self.repository = repository
        self.dockerfile = dockerfile
        self.base_image = base_image
        self.platform = platform
        self._lock = threading.Lock()  # one build at a time: two builds of one sha would race on the tag

    def tag(self, sha: str) -> str:
        """The image tag of a release."""
        return f"{self.repository}:{sha}"

    def build(self, sha: str) -> Artifact:
        """Build (or reuse) the image of `sha` on every engine; safe to call twice."""
        release = Path(self.releases.build(sha).location)
        if not (release / self.dockerfile).is_file():
            raise BuildError(f"commit {sha[:12]} has no {self.dockerfile}; the app repository must carry the "
                             "Dockerfile named by fleet.dockerfile")
        with self._lock:
            for engine in self.engines.engines:
                self._build_on(engine, release, sha)
        return Artifact(version=sha, location=self.tag(sha))

    def _build_on(self, engine: Engine, release: Path, sha: str) -> None:
        client = engine.client
        try:
            client.images.get(self.tag(sha))
            return
        except docker.errors.ImageNotFound:
            pass
        began = time.monotonic()
        try:
            client.images.build(path=str(release), dockerfile=self.dockerfile, tag=self.tag(sha), rm=True,
                                forcerm=True, network_mode="host", buildargs={"BASE_IMAGE": self.base_image},
                                labels={PLATFORM: self.platform, VERSION: sha})
        except docker.errors.BuildError as exc:
            tail = "".join(str(line.get("stream", line.get("error", ""))) for line in exc.build_log)[-1500:]
            raise BuildError(f"docker build of {sha[:12]} on {engine.url} failed: {exc.msg}\n{tail}") from None
        except docker.errors.APIError as exc:
            raise BuildError(f"docker build of {sha[:12]} on {engine.url} failed: {exc.explanation or exc}") from None
        log.info("built image %s on %s in %.1fs", self.tag(sha), engine.url, time.monotonic() - began)

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Remove this platform's images (and release directories) whose sha is not in `keep`."""
        wanted = set(keep)
        removed = set(self.releases.prune(wanted))
        for engine in self.engines.engines:
            try:
                images = engine.client.images.list(filters={"label": f"{PLATFORM}={self.platform}"})
            except (EngineError, docker.errors.APIError) as exc:
                log.warning("cannot list images on %s: %s", engine.url, exc)
                continue
            for image in images:
                version = image.labels.get(VERSION)
                if version and version not in wanted:
                    try:
                        # Its own layers go; the dependency layer stays while a kept release shares it.
                        engine.client.images.remove(image.id)
                        removed.add(version)
                    except docker.errors.APIError as exc:  # still used by a container: keep it
                        log.info("image %s kept on %s: %s", version[:12], engine.url, exc.explanation or exc)
        return sorted(removed)
