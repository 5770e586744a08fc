"""The rules of a feature flag's definition: every refusal names the field, the value and the fix."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployer.accounts import BadInput
from deployer.flag_rules import (
    MAX_USERS,
    Definition,
    check_definition,
    check_key,
    check_percentage,
    check_reason,
    check_users,
    describe_change,
    parse_percentage,
    parse_users,
    suggest_key,
)
from sample_app.flags import Flag, evaluate


@pytest.mark.parametrize("key", ["a", "new-feed", "checkout.v2", "exp_42", "x" * 64, "0"])
def test_keys_that_follow_the_rules(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(("key", "fix"), [("", "new-feed"), ("New Feed", "new-feed"), ("x" * 65, "x" * 64),
                                          ("dark/mode", "dark-mode"), ("été", "t"), ("a b\n", "a-b")])
def test_bad_keys_are_refused_with_a_key_that_would_do(key: str, fix: str) -> None:
    with pytest.raises(BadInput, match=r'^key: ".*" is not a flag key \(1-64 characters') as refused:
        check_key(key)
    assert f'use e.g. "{fix}"' in str(refused.value)
    assert check_key(suggest_key(key)) == suggest_key(key)


def test_a_key_that_is_not_text_is_refused() -> None:
    with pytest.raises(BadInput, match="^key: "):
        check_key(42)


@pytest.mark.parametrize("value", [0, 0.0, 5, 12.5, 0.01, 99.99, 100])
def test_percentages_within_0_100_with_two_decimals(value: float) -> None:
    assert check_percentage(value) == value and isinstance(check_percentage(value), float)


def test_the_percentage_refusals_say_the_value_and_the_fix() -> None:
    with pytest.raises(BadInput) as refused:
        check_percentage(150)
    assert str(refused.value) == "percentage: 150 is not within 0-100; use e.g. 5"
    with pytest.raises(BadInput, match=r"^percentage: -1 is not within 0-100; use e.g. 0$"):
        check_percentage(-1)
    with pytest.raises(BadInput, match=r"^percentage: 5.123 has more than two decimals.*use e.g. 5.12$"):
        check_percentage(5.123)
    for value in (math.nan, math.inf, True, "5", None):
        with pytest.raises(BadInput, match=r"is not a number; use e.g. 5"):
            check_percentage(value)


def test_percentages_typed_by_a_person() -> None:
    assert parse_percentage("5") == 5.0 and parse_percentage(" 12.5% ") == 12.5
    with pytest.raises(BadInput, match=r'^--percentage: "abc" is not a number; use e.g. 5'):
        parse_percentage("abc")
    with pytest.raises(BadInput, match=r"^--percentage: 250 is not within 0-100"):
        parse_percentage("250")


def test_user_lists_are_deduplicated_sorted_and_checked() -> None:
    assert check_users("allow", [" bob", "ana", "bob"]) == ("ana", "bob")
    assert parse_users("ana, bob,,") == ["ana", "bob"] and parse_users("") == []
    with pytest.raises(BadInput, match=r'^allow\[1\]: "" is not a user id'):
        check_users("allow", ["ana", "  "])
    with pytest.raises(BadInput, match=r'^deny\[0\]: "a,b" is not a user id .*no commas'):
        check_users("deny", ["a,b"])
    with pytest.raises(BadInput, match=r"^deny\[0\]: 7 is not a user id; give user ids as text"):
        check_users("deny", [7])
    with pytest.raises(BadInput, match=rf"more than {MAX_USERS}; target a percentage instead"):
        check_users("allow", [f"u{i}" for i in range(MAX_USERS + 1)])


def test_a_user_cannot_be_both_allowed_and_denied() -> None:
    with pytest.raises(BadInput, match=r'^allow/deny: "ana" is on both lists; the allow-list would win'):
        check_definition(Definition(allow=("ana", "bob"), deny=("ana",)))


def test_every_change_needs_a_reason_in_plain_text() -> None:
    assert check_reason("  5% after review ") == "5% after review"
    for reason in ("", "   ", None):
        with pytest.raises(BadInput, match="^reason: "):
            check_reason(reason)
    with pytest.raises(BadInput, match="control characters"):
        check_reason("x\x00y")
    with pytest.raises(BadInput, match="keep it to 1000"):
        check_reason("x" * 1001)
    with pytest.raises(BadInput, match="^description: is 501 characters long; keep it to 500"):
        check_definition(Definition(description="d" * 501))


def test_a_change_is_described_in_one_line() -> None:
    before = Definition(percentage=0)
    after = Definition(enabled=True, percentage=5, allow=("ana",))
    assert before.changes(after) == ["enabled", "percentage", "allow"]
    assert describe_change(before, after) == "turned on, percentage 0 -> 5, allow 0 -> 1 user(s)"
    assert describe_change(after, after) == "nothing changed"


@settings(max_examples=200, deadline=None)
@given(enabled=st.booleans(), hundredths=st.integers(0, 10_000),
       allow=st.lists(st.text("abcdef", min_size=1, max_size=4), max_size=5),
       deny=st.lists(st.text("uvwxyz", min_size=1, max_size=4), max_size=5), user=st.text("abcuvw", max_size=4))
def test_every_accepted_definition_is_one_the_apps_client_accepts(enabled: bool, hundredths: int, allow: list[str],
                                                                 deny: list[str], user: str) -> None:
    checked = check_definition(Definition(enabled=enabled, percentage=hundredths / 100, allow=tuple(allow),
                                          deny=tuple(deny)))
    served = Flag.from_json({"key": "new-feed", "salt": "s", **checked.as_dict()})
    assert served.percentage == checked.percentage and served.allow == frozenset(checked.allow)
    if user in checked.allow:
        assert evaluate(served, user) == enabled
    if user in checked.deny:
        assert not evaluate(served, user)
