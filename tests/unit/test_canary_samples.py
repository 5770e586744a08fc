"""The samples structure: the command line's file format, validation that names the field."""

from __future__ import annotations

import math

import pytest

from canary.exceptions import InvalidSamples
from canary.samples import Samples


def test_round_trip_with_missing_values() -> None:
    doc = {"interval_s": 2, "series": {"requests": [10, 12, None], "errors": [0, 1, 0]}}
    s = Samples.from_json(doc)
    assert len(s) == 3 and s.interval_s == 2.0
    assert math.isnan(s.series["requests"][2])
    assert s.to_json() == {"interval_s": 2.0, "series": {"requests": [10.0, 12.0, None], "errors": [0.0, 1.0, 0.0]}}


def test_problems_travel_with_the_samples() -> None:
    s = Samples.from_json({"interval_s": 1, "series": {}, "problems": ["scrape failed"]})
    assert s.problems == ["scrape failed"] and s.to_json()["problems"] == ["scrape failed"]


def test_head_and_tail_slice_every_series() -> None:
    s = Samples(2.0, {"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]})
    assert s.head(2).series == {"a": [1.0, 2.0], "b": [4.0, 5.0]}
    assert s.tail(1).series == {"a": [2.0, 3.0], "b": [5.0, 6.0]}


@pytest.mark.parametrize(("doc", "field", "text"), [
    ([], "(top level)", "must be an object"),
    ({"series": {}}, "interval_s", "is missing"),
    ({"interval_s": 2}, "series", "is missing"),
    ({"interval_s": "2s", "series": {}}, "interval_s", "is not a number of seconds"),
    ({"interval_s": 0, "series": {}}, "interval_s", "must be a positive number"),
    ({"interval_s": 2, "series": []}, "series", "must be an object"),
    ({"interval_s": 2, "series": {"requests": 5}}, "series.requests", "must be a list"),
    ({"interval_s": 2, "series": {"requests": [1, "x"]}}, "series.requests[1]", "'x' is not a number"),
    ({"interval_s": 2, "series": {"requests": [True]}}, "series.requests[0]", "is not a number"),
    ({"interval_s": 2, "series": {"requests": [1, 2], "errors": [0]}}, "series.errors",
     "has 1 values but series.requests has 2"),
    ({"interval_s": 2, "series": {}, "extra": 1}, "extra", "is not a known field"),
])
def test_invalid_documents_name_the_field(doc: object, field: str, text: str) -> None:
    with pytest.raises(InvalidSamples) as info:
        Samples.from_json(doc)
    assert info.value.field == field
    assert text in str(info.value)
