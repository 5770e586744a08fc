"""Feature flags in the app: evaluate locally, refresh in the background, never wait on the platform.

The platform serves every flag's definition at `GET {url}/api/v1/flags` (JSON: `{"flags": [...],
"revision": N}`); this client keeps the last definitions it saw in memory (and, when given a
file, on disk, so a restarted host serves the last known values while the platform is down).
Evaluating a flag reads memory only: a request is never slowed or failed by the flag service.

Rules, in order: a flag that is off is off for everyone; a user on the allow-list gets it; a
user on the deny-list does not; otherwise a user gets it when their bucket (a hash of the
flag's key, its salt and the user id, in [0, 100)) is below the flag's percentage. Buckets are
sticky: raising the percentage only ever adds users.

Imports nothing from the platform: the app is deployed by it, not part of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

logger = logging.getLogger(__name__)
BUCKETS = 10_000  # a percentage has two decimals: 0.01% is one bucket


@dataclass(frozen=True)
class Flag:
    """One flag's definition, as the platform serves it."""

    key: str
    enabled: bool = False
    percentage: float = 0.0
    allow: frozenset[str] = field(default_factory=frozenset)
    deny: frozenset[str] = field(default_factory=frozenset)
    salt: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Flag:
        """Build a Flag from the API's JSON; unknown fields are ignored (newer platforms add some)."""
        percentage = float(data.get("percentage", 0.0))
        if not 0.0 <= percentage <= 100.0:
            raise ValueError(f"flag {data.get('key')!r}: percentage {percentage} is not within 0-100")
        return cls(key=str(data["key"]), enabled=bool(data.get("enabled", False)), percentage=percentage,
                   allow=frozenset(str(u) for u in data.get("allow", ())),
                   deny=frozenset(str(u) for u in data.get("deny", ())), salt=str(data.get("salt", "")))


def bucket(flag_key: str, salt: str, user: str) -> float:
    """The user's sticky position for this flag, in [0, 100) with 0.01 resolution."""
    digest = hashlib.sha256(f"{flag_key}:{salt}:{user}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") % BUCKETS) * 100.0 / BUCKETS


def evaluate(flag: Flag | None, user: str | None) -> bool:
    """Whether `user` gets the flag; an unknown flag, or no user for a partial rollout, is off."""
    if flag is None or not flag.enabled:
        return False
    if user is not None and user in flag.allow:
        return True
    if user is not None and user in flag.deny:
        return False
    if flag.percentage >= 100.0:
        return True
    if user is None or flag.percentage <= 0.0:
        return False
    return bucket(flag.key, flag.salt, user) < flag.percentage


class FlagClient:
    """Flag definitions from the platform, cached in memory and refreshed by a background thread.

    `is_on(key, user)` never does I/O. When the platform cannot be reached, the last known
    definitions stay in force (from memory, or from `cache_file` after a restart) and the
    failure is counted, not raised.
    """

    def __init__(self, url: str | None, *, token: str | None = None, refresh_s: float = 1.0,
                 timeout_s: float = 1.0, cache_file: str | Path | None = None,
                 transport: httpx.BaseTransport | None = None,
                 on_change: Callable[[int], None] | None = None) -> None:
        self.url = url.rstrip("/") if url else None
        self.refresh_s = refresh_s
        self.cache_file = Path(cache_file) if cache_file else None
        self._flags: dict[str, Flag] = {}
        self.revision = -1
        self.failures = 0
        self.last_success: float | None = None
        self._etag: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_change = on_change
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http_options: dict[str, Any] = {"timeout": timeout_s, "headers": headers, "transport": transport}
        self._http = httpx.Client(**self._http_options) if self.url else None
        self._load_cache()

    # --- reading (hot path) -------------------------------------------------------------

    def is_on(self, key: str, user: str | None) -> bool:
        """Whether `user` gets flag `key` now (memory only)."""
        return evaluate(self._flags.get(key), user)

    def flag(self, key: str) -> Flag | None:
        return self._flags.get(key)

    def keys(self) -> list[str]:
        return sorted(self._flags)

    def variants_for(self, user: str | None) -> dict[str, bool]:
        """The user's variant of every known flag, from one snapshot of the definitions."""
        flags = self._flags  # a refresh swaps the reference; this request keeps the set it started with
        return {key: evaluate(flag, user) for key, flag in flags.items()}

    # --- refreshing ---------------------------------------------------------------------

    def refresh(self) -> bool:
        """Fetch the definitions once; True when they were fetched (changed or not)."""
        if self._http is None or self.url is None:
            return False
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            response = self._http.get(f"{self.url}/api/v1/flags", headers=headers)
            if response.status_code == 304:
                self.last_success = time.time()
                return True
            response.raise_for_status()
            payload = response.json()
            flags = {f.key: f for f in (Flag.from_json(item) for item in payload.get("flags", []))}
            revision = int(payload.get("revision", 0))
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            self.failures += 1
            if self.failures in (1, 10) or self.failures % 100 == 0:
                logger.warning("feature flags: %s unreachable or invalid (%s); keeping the last known values",
                               self.url, exc)
            return False
        self._etag = response.headers.get("ETag")
        self.last_success = time.time()
        if revision != self.revision or flags != self._flags:
            self._flags = flags  # one reference swap: readers see the old or the new set, never half
            self.revision = revision
            self._save_cache(payload)
            if self._on_change is not None:
                self._on_change(revision)
        return True

    def start(self) -> FlagClient:
        """Refresh in a daemon thread every `refresh_s` seconds until `close()`; the first fetch is in the thread."""
        if self._http is not None and self._thread is None:
            if self._http.is_closed:  # started again after a close (an app served twice)
                self._http = httpx.Client(**self._http_options)
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="flag-refresh", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._http is not None:
            self._http.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.refresh_s)

    # --- the on-disk copy ---------------------------------------------------------------

    def _load_cache(self) -> None:
        if self.cache_file is None or not self.cache_file.is_file():
            return
        try:
            payload = json.loads(self.cache_file.read_text())
            self._flags = {f.key: f for f in (Flag.from_json(item) for item in payload.get("flags", []))}
            self.revision = int(payload.get("revision", 0))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("feature flags: ignoring unreadable cache %s (%s)", self.cache_file, exc)

    def _save_cache(self, payload: Mapping[str, Any]) -> None:
        if self.cache_file is None:
            return
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.cache_file.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(payload))
            os.replace(temporary, self.cache_file)  # atomic: a reader never sees half a file
        except OSError as exc:
            logger.warning("feature flags: cannot write cache %s (%s)", self.cache_file, exc)


def variants(client: FlagClient, keys: Iterable[str], user: str | None) -> dict[str, bool]:
    """The user's variant of each flag, for labelling a request's metrics."""
    return {key: client.is_on(key, user) for key in keys}
