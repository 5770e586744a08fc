"""Deploy windows and freezes: recurring blackouts in a time zone, ad-hoc freezes, reasons and ends."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployer.windows import Freeze, deploy_gate, parse_blackout

UTC = timezone.utc
WEEKEND = parse_blackout("weekend", days=["sat", "sun"])
EVENINGS = parse_blackout("evenings", days="mon,tue,wed,thu,fri", hours="18:00-08:00", tz="Europe/Paris")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_open_on_a_weekday_afternoon() -> None:
    assert deploy_gate(at("2026-12-02 13:00"), blackouts=[WEEKEND, EVENINGS]).open  # Wednesday, 14:00 Paris


def test_weekend_is_closed_until_monday() -> None:
    gate = deploy_gate(at("2026-12-05 10:00"), blackouts=[WEEKEND])  # Saturday
    assert not gate.open and gate.until == at("2026-12-07 00:00") and "weekend" in gate.reason


def test_evening_range_crosses_midnight_in_its_time_zone() -> None:
    # Tuesday 17:30 UTC is 18:30 in Paris (winter time): closed until Wednesday 08:00 Paris = 07:00 UTC.
    gate = deploy_gate(at("2026-12-01 17:30"), blackouts=[EVENINGS])
    assert not gate.open and gate.until == at("2026-12-02 07:00")
    # Wednesday 06:30 UTC = 07:30 Paris: still the Tuesday evening's blackout.
    assert not deploy_gate(at("2026-12-02 06:30"), blackouts=[EVENINGS]).open
    assert deploy_gate(at("2026-12-02 07:00"), blackouts=[EVENINGS]).open


def test_adjacent_blackouts_are_followed_to_when_deploys_really_resume() -> None:
    # Friday 19:00 Paris: the evening blackout runs into the weekend, and the weekend into Monday 08:00 Paris.
    weekend_paris = parse_blackout("weekend", days=["sat", "sun"], tz="Europe/Paris")
    monday_morning = parse_blackout("monday morning", days=["mon"], hours="00:00-08:00", tz="Europe/Paris")
    gate = deploy_gate(at("2026-12-04 18:00"), blackouts=[EVENINGS, weekend_paris, monday_morning])
    assert not gate.open and gate.until == at("2026-12-07 07:00")


def test_summer_time_is_respected() -> None:
    # In July Paris is UTC+2: 16:30 UTC is 18:30 local.
    assert not deploy_gate(at("2026-07-01 16:30"), blackouts=[EVENINGS]).open
    assert deploy_gate(at("2026-07-01 15:30"), blackouts=[EVENINGS]).open


def test_a_freeze_names_who_why_and_until_when() -> None:
    freeze = Freeze(reason="end-of-year traffic peak", by="alice", since=at("2026-12-01 00:00"),
                    until=at("2026-12-03 00:00"))
    gate = deploy_gate(at("2026-12-02 12:00"), freezes=[freeze])
    assert not gate.open and gate.until == freeze.until
    assert "alice" in gate.reason and "end-of-year traffic peak" in gate.reason and "2026-12-03 00:00" in gate.reason
    assert deploy_gate(at("2026-12-03 00:00"), freezes=[freeze]).open, "the end is exclusive"
    assert deploy_gate(at("2026-11-30 23:59"), freezes=[freeze]).open, "not before it starts"


def test_an_open_ended_freeze_lasts_until_lifted() -> None:
    freeze = Freeze(reason="incident 123", by="bob", since=at("2026-12-01 00:00"))
    gate = deploy_gate(at("2027-06-01 00:00"), freezes=[freeze], blackouts=[WEEKEND])
    assert not gate.open and gate.until is None and "until lifted" in gate.reason


def test_several_rules_are_all_named_and_the_last_end_wins() -> None:
    freeze = Freeze(reason="migration", by="carol", since=at("2026-12-04 00:00"), until=at("2026-12-08 12:00"))
    gate = deploy_gate(at("2026-12-05 10:00"), freezes=[freeze], blackouts=[WEEKEND])
    assert "migration" in gate.reason and "weekend" in gate.reason and gate.until == at("2026-12-08 12:00")


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        deploy_gate(datetime(2026, 12, 1))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"days": ["saturday", "funday"]}, "days: .* is not a list of days; use e.g."),
    ({"days": []}, "days:"),
    ({"days": ["sat"], "hours": "6pm-8am"}, "hours: \"6pm-8am\" is not a time range"),
    ({"days": ["sat"], "hours": "25:00-08:00"}, "not a valid time range"),
    ({"days": ["sat"], "tz": "Mars/Olympus"}, "tz: \"Mars/Olympus\" is not a time zone"),
])
def test_bad_blackouts_name_the_field_and_the_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_blackout("x", **kwargs)  # type: ignore[arg-type]


def test_whole_day_and_until_midnight() -> None:
    all_day = parse_blackout("sunday", days=["sun"])
    assert not deploy_gate(at("2026-12-06 23:59"), blackouts=[all_day]).open
    late = parse_blackout("late", days=["mon"], hours="20:00-24:00")
    assert deploy_gate(at("2026-11-30 19:59"), blackouts=[late]).open
    assert deploy_gate(at("2026-11-30 20:00"), blackouts=[late]).until == at("2026-12-01 00:00")


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)))
def test_until_is_when_the_gate_opens_again(now: datetime) -> None:
    rules = [WEEKEND, EVENINGS]
    gate = deploy_gate(now, blackouts=rules)
    if gate.open:
        return
    assert gate.until is not None and gate.until > now
    assert deploy_gate(gate.until, blackouts=rules).open
    assert not deploy_gate(gate.until - timedelta(seconds=1), blackouts=rules).open


# --- when a freeze ends: durations and times, always in the future ---------------------------------

from deployer.windows import parse_until  # noqa: E402


@pytest.mark.parametrize("text, expected", [
    ("90m", "2026-12-02 14:30"), ("4h", "2026-12-02 17:00"), ("2d", "2026-12-04 13:00"), ("1.5h", "2026-12-02 14:30"),
    ("2026-12-03T09:00", "2026-12-03 09:00"), ("2026-12-03T10:00+01:00", "2026-12-03 09:00"),
    ("2026-12-03 09:00:00Z", "2026-12-03 09:00"),
])
def test_parse_until_takes_durations_and_times(text: str, expected: str) -> None:
    assert parse_until(text, now=at("2026-12-02 13:00")) == at(expected)


@pytest.mark.parametrize("text, message", [
    ("tomorrow", "neither a duration nor a time"), ("5x", "neither a duration nor a time"),
    ("", "neither a duration nor a time"), ("2026-12-01T09:00", "not in the future"),
    ("0m", "not in the future"),
])
def test_parse_until_refuses_with_the_fix(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_until(text, now=at("2026-12-02 13:00"))
    assert str(caught.value).startswith("until: ") and "e.g." in str(caught.value) or "later" in str(caught.value)


def test_parse_until_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_until("4h", now=datetime(2026, 12, 2, 13))
