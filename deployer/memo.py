"""Stale-while-revalidate memo for figures over days of history (DORA, /metrics aggregates).

Such figures change slowly but cost a scan of thousands of rows; computing them once per
`ttl` and serving the last value while one background thread refreshes it keeps every page
fast no matter how many people watch it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class Memo:
    """Values by key: computed on first use, then refreshed in the background once older than `ttl`."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._values: dict[str, tuple[float, Any]] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()
        self._first = threading.Lock()

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        """The cached value (possibly up to one refresh old), or compute it now the first time."""
        with self._lock:
            found = self._values.get(key)
            stale = found is not None and self.clock() - found[0] > self.ttl_s and key not in self._refreshing
            if stale:
                self._refreshing.add(key)
        if found is None:
            # The first callers wait for one computation instead of all computing it at once.
            with self._first:
                with self._lock:
                    found = self._values.get(key)
                if found is None:
                    value = compute()
                    with self._lock:
                        self._values[key] = (self.clock(), value)
                    return value
            return found[1]
        if stale:
            threading.Thread(target=self._refresh, args=(key, compute), daemon=True, name=f"memo-{key}").start()
        return found[1]

    def _refresh(self, key: str, compute: Callable[[], Any]) -> None:
        try:
            value = compute()
            with self._lock:
                self._values[key] = (self.clock(), value)
        finally:
            with self._lock:
                self._refreshing.discard(key)
