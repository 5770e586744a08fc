"""The app's benchmark: robust per-round figures, and one real round of every route."""

from __future__ import annotations

from sample_app.bench import run_rounds, trimmed_mean


def test_a_preempted_request_does_not_move_its_round() -> None:
    assert abs(trimmed_mean([4.0, 4.1, 3.9, 4.0, 40.0]) - 4.03) < 0.01  # one request preempted for 36 ms
    assert trimmed_mean([5.0, 5.2, 4.9, 5.1, 5.0]) > trimmed_mean([4.0, 4.1, 3.9, 4.0, 4.0]) + 0.9  # a real shift


def test_few_values_are_averaged_whole() -> None:
    assert trimmed_mean([1.0, 3.0]) == 2.0


def test_one_round_measures_every_route() -> None:
    series = run_rounds(rounds=2, requests=2)
    assert set(series) == {"home", "feed", "post", "comments", "profile"}
    assert all(len(v["cpu_ms"]) == 2 and min(v["latency_ms"]) > 0 for v in series.values())
