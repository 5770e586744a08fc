"""Comparing py-spy profiles by leaf frame: which lines take a larger share of the canary's CPU."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from canary.profile_diff import Frame, compare_profiles, leaf_counts, parse_frame

RAW_BASE = """\
<module> (sample_app/__main__.py:70);run (uvicorn/server.py:60);get_feed (sample_app/routes/feed.py:27) 20
<module> (sample_app/__main__.py:70);run (uvicorn/server.py:60);posts_public (sample_app/queries.py:40) 60
<module> (sample_app/__main__.py:70);select (selectors.py:468) 20
garbage line without count
"""
RAW_CANARY = """\
<module> (sample_app/__main__.py:70);run (uvicorn/server.py:60);get_feed (sample_app/routes/feed.py:27) 20
<module> (sample_app/__main__.py:70);run (uvicorn/server.py:60);get_feed (sample_app/routes/feed.py:31) 300
<module> (sample_app/__main__.py:70);run (uvicorn/server.py:60);posts_public (sample_app/queries.py:40) 60
<module> (sample_app/__main__.py:70);select (selectors.py:468) 20
"""


def test_frames_and_leaf_counts_are_parsed() -> None:
    assert parse_frame("get_feed (sample_app/routes/feed.py:27)") == Frame("get_feed", "sample_app/routes/feed.py", 27)
    assert parse_frame("<native>") == Frame("<native>", "", 0)
    counts = leaf_counts(RAW_BASE)
    assert sum(counts.values()) == 100
    assert counts[Frame("posts_public", "sample_app/queries.py", 40)] == 60


def test_the_line_that_grew_is_named_with_file_line_and_interval() -> None:
    diff = compare_profiles(leaf_counts(RAW_BASE), leaf_counts(RAW_CANARY), seconds=10)
    top = diff.grown[0]
    assert top.frame == Frame("get_feed", "sample_app/routes/feed.py", 31)
    assert top.baseline_share == 0.0 and round(top.canary_share, 3) == 0.75
    assert top.interval[0] > 0.6 and top.interval[0] < top.difference < top.interval[1]
    assert "get_feed (sample_app/routes/feed.py:31)" in top.describe()
    # Lines whose absolute time did not change lose share; they are not listed as grown.
    assert all(g.frame.line != 40 for g in diff.grown)
    assert diff.to_dict()["grown"][0]["line"] == 31


def test_empty_profile_is_a_problem_not_a_crash() -> None:
    diff = compare_profiles(Counter(), leaf_counts(RAW_CANARY), seconds=5)
    assert diff.grown == [] and diff.problems == ["no CPU samples on the baseline"]


@given(st.dictionaries(st.integers(1, 30), st.integers(1, 200), min_size=1, max_size=10))
@settings(max_examples=100, deadline=None)
def test_the_same_profile_on_both_sides_shows_no_growth(lines: dict[int, int]) -> None:
    counts = Counter({Frame("f", "a.py", line): n for line, n in lines.items()})
    assert compare_profiles(counts, Counter(counts), seconds=1).grown == []
