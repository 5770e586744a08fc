"""Feature gates in requests: who a request is for, and the flag variants it sees.

Putting a feature behind a flag is one `if` in the route that owns it:

    from ..deps import FlagsDep

    @router.get("/feed")
    def get_feed(..., flags: FlagsDep, user: ...) -> FeedPublic:
        if flags.is_on("feed-suggestions", user):
            ...  # the new behaviour, for the users the flag selects
        ...      # the old behaviour, unchanged, for everyone else

The flag is then turned on for a few users, a percentage, or everyone from the platform's
flag API, without a deploy. The metrics middleware evaluates every known flag once per request
for the request's user (`request_user`) and keeps the answers on the request; `flags.is_on` for
that user reads them back, so the route and the `app_flag_*` metrics always agree on which
variant a request got, even if the definitions change while it runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import HTTPConnection
from starlette.types import Scope

from .flags import FlagClient

USER_HEADER = "X-Snapgram-User"
USER_QUERY = "user"
STATE_KEY = "request_flags"
_USER_HEADER_BYTES = USER_HEADER.lower().encode("latin-1")
_USER_QUERY_BYTES = USER_QUERY.encode() + b"="
MAX_USER_LENGTH = 64  # a user id longer than any username is not a user id


def request_user(scope_or_request: Scope | HTTPConnection) -> str | None:
    """The user a request is for: the X-Snapgram-User header, else the `user` query parameter, else None."""
    scope = scope_or_request.scope if isinstance(scope_or_request, HTTPConnection) else scope_or_request
    for name, value in scope.get("headers", ()):
        if name == _USER_HEADER_BYTES:
            return _clean(value.decode("latin-1"))
    query: bytes = scope.get("query_string", b"")
    if _USER_QUERY_BYTES in query:  # cheap test first: most requests carry no user in the query
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if name == USER_QUERY:
                return _clean(value)
    return None


def _clean(value: str) -> str | None:
    value = value.strip()
    return value if value and len(value) <= MAX_USER_LENGTH else None


@dataclass(frozen=True)
class RequestFlags:
    """The flags as one request sees them: its user's variants, evaluated once when it arrived."""

    client: FlagClient | None
    user: str | None
    variants: Mapping[str, bool]

    def is_on(self, key: str, user: str | None = None) -> bool:
        """Whether `user` (default: the request's user) gets flag `key`; memory only."""
        if user is None:
            user = self.user
        if user == self.user and key in self.variants:
            return self.variants[key]
        return self.client.is_on(key, user) if self.client is not None else False


def evaluate_request(client: FlagClient | None, scope: Scope) -> RequestFlags:
    """Evaluate every known flag for the request's user (none for anonymous requests)."""
    user = request_user(scope)
    if client is None or user is None:
        return RequestFlags(client, user, {})
    return RequestFlags(client, user, client.variants_for(user))


def remember(scope: Scope, flags: RequestFlags) -> None:
    """Keep a request's flags in its state (`request.state.request_flags`)."""
    scope.setdefault("state", {})[STATE_KEY] = flags


def flags_of(scope: Scope, client: FlagClient | None) -> RequestFlags:
    """The flags a request saw: those the middleware kept, else evaluated now (and kept)."""
    state: dict[str, Any] = scope.setdefault("state", {})
    found = state.get(STATE_KEY)
    if isinstance(found, RequestFlags):
        return found
    flags = evaluate_request(client, scope)
    state[STATE_KEY] = flags
    return flags


@dataclass(frozen=True)
class FlagSettings:
    """Where the app's flag definitions come from (all from the environment by default)."""

    url: str | None = None
    token: str | None = None
    refresh_s: float = 1.0
    cache_file: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FlagSettings:
        """Read SAMPLE_APP_FLAGS_URL, _TOKEN, _REFRESH (seconds, default 1) and _CACHE (a file path)."""
        env = os.environ if environ is None else environ
        raw_refresh = env.get("SAMPLE_APP_FLAGS_REFRESH", "").strip() or "1"
        return cls(url=env.get("SAMPLE_APP_FLAGS_URL", "").strip() or None,
                   token=env.get("SAMPLE_APP_FLAGS_TOKEN", "").strip() or None,
                   refresh_s=parse_refresh("SAMPLE_APP_FLAGS_REFRESH", raw_refresh),
                   cache_file=env.get("SAMPLE_APP_FLAGS_CACHE", "").strip() or None)


def parse_refresh(name: str, raw: str | float) -> float:
    """A refresh interval in seconds, or a ValueError that names the setting and the fix."""
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{name}: {raw!r} is not a positive number of seconds; use e.g. 1 or 0.5")
    return seconds
