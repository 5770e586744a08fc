"""Deploy windows and freezes, pure: may a release start now, and if not, why and until when.

Two kinds of rule:

* **Blackouts** from the configuration, recurring: days of the week and a time range in a
  time zone, e.g. no deploys on weekends, or none after 18:00 local time. A range may
  cross midnight (`18:00-08:00`).
* **Freezes**, ad hoc, set by a person with a reason and an end (or none, until lifted).

While either applies, commits queue and nothing new starts; a deployment already in
flight carries on (stopping it half-way is what abort is for). The function takes the
time as an argument; no clock here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class Blackout:
    """A recurring period without deploys: on `days`, from `start` to `end` local time in `tz`.

    `start == end` means the whole day. A range that ends before it starts crosses midnight
    and belongs to the day it starts on.
    """

    name: str
    days: frozenset[int]      # 0 = Monday
    start: time
    end: time
    tz: ZoneInfo

    def covers(self, now: datetime) -> datetime | None:
        """The end of the blackout period that contains `now`, or None."""
        local = now.astimezone(self.tz)
        # The period may have started today or, when it crosses midnight, yesterday.
        for days_back in (0, 1):
            day = (local - timedelta(days=days_back)).date()
            if day.weekday() not in self.days:
                continue
            begin = datetime.combine(day, self.start, tzinfo=self.tz)
            finish = datetime.combine(day, self.end, tzinfo=self.tz)
            if finish <= begin:
                finish += timedelta(days=1)
            if begin <= local < finish:
                return finish
        return None


@dataclass(frozen=True)
class Freeze:
    """An ad-hoc freeze: who set it, why, since and until when (None = until lifted)."""

    reason: str
    by: str
    since: datetime
    until: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.since <= now and (self.until is None or now < self.until)


@dataclass(frozen=True)
class Gate:
    """Whether a release may start now; if not, one line saying why and until when."""

    open: bool
    reason: str = ""
    until: datetime | None = None


def parse_blackout(name: str, *, days: Sequence[str] | str, hours: str = "00:00-00:00",
                   tz: str = "UTC") -> Blackout:
    """Build a Blackout from configuration words; raises ValueError naming the bad field and the fix."""
    day_words = [d.strip().lower()[:3] for d in (days.split(",") if isinstance(days, str) else days)]
    if not day_words or any(d not in DAYS for d in day_words):
        raise ValueError(f"days: {list(days) if not isinstance(days, str) else days!r} is not a list of days; "
                         "use e.g. [\"sat\", \"sun\"]")
    match = _RANGE.match(hours)
    if not match:
        raise ValueError(f"hours: \"{hours}\" is not a time range; use e.g. \"18:00-08:00\" (00:00-00:00 = all day)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"hours: \"{hours}\" is not a valid time range; use e.g. \"18:00-08:00\"")
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"tz: \"{tz}\" is not a time zone; use e.g. \"Europe/London\" or \"UTC\"") from None
    end = time(0, 0) if h2 == 24 else time(h2, m2)
    return Blackout(name=name, days=frozenset(DAYS.index(d) for d in day_words), start=time(h1, m1), end=end,
                    tz=zone)


def _later_end(ends: list[datetime | None]) -> datetime | None:
    if any(end is None for end in ends):
        return None
    return max(e for e in ends if e is not None)


def deploy_gate(now: datetime, *, blackouts: Sequence[Blackout] = (), freezes: Sequence[Freeze] = ()) -> Gate:
    """Whether a new release may start at `now` (aware datetime), and if not why and until when.

    When several rules apply, the reason names each of them and `until` is when the last one
    ends (None when a freeze has no end). Back-to-back blackouts are followed through, so
    `until` is when deploys really resume.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    reasons: list[str] = []
    ends: list[datetime | None] = []
    for freeze in freezes:
        if freeze.active(now):
            until = f" until {freeze.until.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC" if freeze.until else \
                " until lifted"
            reasons.append(f"frozen by {freeze.by} since {freeze.since.astimezone(timezone.utc):%Y-%m-%d %H:%M} "
                           f"UTC{until}: {freeze.reason}")
            ends.append(freeze.until)
    blackout_end = _blackout_end(now, blackouts)
    if blackout_end is not None:
        names = [b.name for b in blackouts if b.covers(now) is not None]
        reasons.append(f"deploy window closed ({', '.join(names)}) until "
                       f"{blackout_end.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC")
        ends.append(blackout_end)
    if not reasons:
        return Gate(open=True)
    return Gate(open=False, reason="; ".join(reasons), until=_later_end(ends))


def _blackout_end(now: datetime, blackouts: Sequence[Blackout]) -> datetime | None:
    """When the blackouts covering `now` stop, following adjacent ones (at most a week on)."""
    end: datetime | None = None
    probe = now
    for _ in range(7 * 24 * 4):
        covering = [e for b in blackouts if (e := b.covers(probe)) is not None]
        if not covering:
            return end
        end = max(covering)
        probe = end
    return end


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|h|d)\s*$")
_RELATIVE_SECONDS = {"m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_until(text: str, *, now: datetime) -> datetime:
    """When a freeze ends: "90m", "4h", "2d" from `now`, or an ISO 8601 time (without a zone: UTC).

    Raises ValueError naming the value and the fix when it is neither, or not in the future.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    relative = _RELATIVE.match(text)
    if relative:
        end = now + timedelta(seconds=float(relative.group(1)) * _RELATIVE_SECONDS[relative.group(2)])
    else:
        try:
            end = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(f"until: \"{text}\" is neither a duration nor a time; use e.g. \"4h\", \"2d\" or "
                             "\"2026-12-24T09:00+01:00\" (a time without a zone is UTC)") from None
        if end.tzinfo is None:
            end = end.replace(tzinfo=timezone.utc)
    if end <= now:
        stamp = now.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
        raise ValueError(f"until: \"{text}\" is not in the future (now is {stamp} UTC); give a later time or a "
                         "duration such as \"4h\"")
    return end
