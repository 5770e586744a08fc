"""What a feature flag's definition may hold: pure checks with errors that name the field, the value and the fix.

The app's hosts evaluate flags themselves (sample_app/flags.py): a flag that is off is off
for everyone; a user on the allow-list gets it; a user on the deny-list does not; otherwise
a user gets it when their sticky bucket (in [0, 100), 0.01 apart) is below the percentage.
These checks keep every stored definition one that the client accepts and means something.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from deployer.accounts import BadInput

KEY = re.compile(r"[a-z0-9_.-]{1,64}")
MAX_DESCRIPTION = 500
MAX_REASON = 1000
MAX_USERS = 1000  # per list: every host fetches every flag, so lists stay small (targeting, not a user table)
MAX_USER = 200
MAX_SALT = 64
# Control characters have no place in names shown on pages, and PostgreSQL refuses NUL outright.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Definition:
    """The part of a flag a change can touch, exactly as hosts receive it (plus its description)."""

    description: str = ""
    enabled: bool = False
    percentage: float = 0.0
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the audit trail's before/after."""
        data = asdict(self)
        data["allow"], data["deny"] = list(self.allow), list(self.deny)
        return data

    def changes(self, other: Definition) -> list[str]:
        """The fields that differ from `other`, in a fixed order."""
        return [name for name in ("enabled", "percentage", "allow", "deny", "description")
                if getattr(self, name) != getattr(other, name)]


def _quoted(text: str, limit: int = 80) -> str:
    """`text` in double quotes with newlines and control characters escaped, cut at `limit`."""
    return json.dumps(text[:limit], ensure_ascii=False)


def suggest_key(value: str) -> str:
    """A key close to `value` that follows the rules (for the fix in an error)."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", value.strip().lower()).strip("-")[:64]
    return slug or "new-feed"


def check_key(value: object) -> str:
    """A flag key: 1-64 characters of a-z, 0-9, "_", "." and "-"."""
    if not isinstance(value, str) or not KEY.fullmatch(value):
        shown = value if isinstance(value, str) else repr(value)
        raise BadInput(f"key: {_quoted(shown)} is not a flag key (1-64 characters of a-z, 0-9, \"_\", \".\", \"-\"); "
                       f"use e.g. \"{suggest_key(shown)}\"")
    return value


def check_percentage(value: object, *, field: str = "percentage") -> float:
    """A share of users in [0, 100] with at most two decimals (the client's buckets are 0.01% apart)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(f"{field}: {value!r} is not a number; use e.g. 5 (percent of users)")
    if not 0.0 <= value <= 100.0:
        raise BadInput(f"{field}: {value:g} is not within 0-100; use e.g. {5 if value > 100 else 0}")
    if abs(round(value, 2) - value) > 1e-9:
        raise BadInput(f"{field}: {value!r} has more than two decimals (users' buckets are 0.01% apart); "
                       f"use e.g. {round(value, 2):g}")
    return float(round(value, 2)) + 0.0  # + 0.0: a "-0" is stored (and shown) as 0


def parse_percentage(text: str, *, field: str = "--percentage") -> float:
    """A percentage typed by a person: "5", "12.5" or "5%"."""
    cleaned = text.strip().removesuffix("%").strip()
    try:
        number = float(cleaned)
    except ValueError:
        raise BadInput(f"{field}: \"{text[:40]}\" is not a number; use e.g. 5 (percent of users)") from None
    return check_percentage(number, field=field)


def check_users(field: str, users: Iterable[object]) -> tuple[str, ...]:
    """User ids, each 1-200 characters without commas or control characters; duplicates dropped, sorted."""
    found: set[str] = set()
    for index, user in enumerate(users):
        if not isinstance(user, str):
            raise BadInput(f"{field}[{index}]: {user!r} is not a user id; give user ids as text, e.g. \"ana\"")
        name = user.strip()
        if not name or len(name) > MAX_USER or "," in name or _CONTROL.search(name):
            raise BadInput(f"{field}[{index}]: {_quoted(name)} is not a user id (1-{MAX_USER} characters, no commas "
                           f"or control characters); use e.g. \"ana\"")
        found.add(name)
    if len(found) > MAX_USERS:
        raise BadInput(f"{field}: {len(found)} users is more than {MAX_USERS}; target a percentage instead, or "
                       f"keep the list to {MAX_USERS}")
    return tuple(sorted(found))


def parse_users(text: str) -> list[str]:
    """A comma-separated list typed by a person ("ana,bob"); an empty text is an empty list."""
    return [part.strip() for part in text.split(",") if part.strip()]


def check_text(field: str, value: object, *, limit: int, example: str, required: bool = False) -> str:
    """Free text of at most `limit` characters (stripped), without control characters other than newlines."""
    if not isinstance(value, str):
        raise BadInput(f"{field}: {value!r} is not text; use e.g. \"{example}\"")
    text = value.strip()
    if required and not text:
        raise BadInput(f"{field}: is empty; say why, e.g. \"{example}\"")
    if len(text) > limit:
        raise BadInput(f"{field}: is {len(text)} characters long; keep it to {limit}")
    if _CONTROL.search(text):
        raise BadInput(f"{field}: holds control characters; use plain text, e.g. \"{example}\"")
    return text


def check_reason(value: object) -> str:
    """Every change says why: non-empty, at most 1000 characters."""
    return check_text("reason", value, limit=MAX_REASON, example="rolling out to 5% after review", required=True)


def check_salt(value: object) -> str:
    """The salt of the users' buckets: a new salt reshuffles who falls below the percentage."""
    return check_text("salt", value, limit=MAX_SALT, example="2")


def check_definition(definition: Definition) -> Definition:
    """Every field of a definition checked, and no user both allowed and denied."""
    checked = replace(
        definition,
        description=check_text("description", definition.description, limit=MAX_DESCRIPTION,
                               example="the new feed layout"),
        percentage=check_percentage(definition.percentage),
        allow=check_users("allow", definition.allow), deny=check_users("deny", definition.deny))
    if not isinstance(checked.enabled, bool):
        raise BadInput(f"enabled: {checked.enabled!r} is not true or false; use e.g. true")
    both = sorted(set(checked.allow) & set(checked.deny))
    if both:
        raise BadInput(f"allow/deny: \"{both[0]}\" is on both lists" + (f" (and {len(both) - 1} more)" if len(both) > 1
                                                                         else "")
                       + "; the allow-list would win, so take them off one of the lists")
    return checked


def describe_change(before: Definition, after: Definition) -> str:
    """One line for the audit log: "enabled false -> true, percentage 0 -> 5"."""
    parts = []
    for name in before.changes(after):
        old, new = getattr(before, name), getattr(after, name)
        if name in ("allow", "deny"):
            parts.append(f"{name} {len(old)} -> {len(new)} user(s)")
        elif name == "description":
            parts.append("description changed")
        elif name == "enabled":
            parts.append("turned on" if new else "turned off")
        else:
            parts.append(f"percentage {old:g} -> {new:g}")
    return ", ".join(parts) or "nothing changed"
