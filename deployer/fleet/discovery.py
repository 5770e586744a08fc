"""Prometheus file-based service discovery: the fleet's hosts as a targets file.

Prometheus watches a `file_sd_configs` file and picks up every change without a reload,
so a new host or a container that moved to a new port is scraped from the next refresh.
Each target carries the labels a dashboard or a PromQL selector needs: `host`, `role`
(canary, baseline, wave, idle) and `version` (the sha the host runs). The file is replaced
atomically (written beside, then renamed), as Prometheus asks, and only when it changes.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Target:
    host: str
    address: str          # the host's base URL, http://127.0.0.1:8101
    role: str
    version: str | None


def target_groups(targets: Sequence[Target]) -> list[dict[str, object]]:
    """The file_sd document: one group per host (each has its own labels), sorted by host."""
    groups = []
    for t in sorted(targets, key=lambda t: t.host):
        parts = urlsplit(t.address if "//" in t.address else f"http://{t.address}")
        if not parts.hostname or not parts.port:
            continue  # a host without an address yet has nothing to scrape
        groups.append({"targets": [f"{parts.hostname}:{parts.port}"],
                       "labels": {"host": t.host, "role": t.role, "version": t.version or "unknown"}})
    return groups


class TargetsFile:
    """Writes the targets file when its content changes; cheap to call on every tick."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: str | None = None

    def sync(self, targets: Sequence[Target]) -> bool:
        """Write the file if the targets changed; True when it was written."""
        text = json.dumps(target_groups(targets), indent=2, sort_keys=True) + "\n"
        if text == self._last and self.path.exists():
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".targets-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._last = text
        return True
