"""Verdict explanations: one line per metric plus the overall reason; JSON mirrors to_dict."""

from __future__ import annotations

from canary.config import DEFAULT_CONFIG
from canary.judge import judge
from canary.report import explain_text, to_json
from canary.samples import Samples


def _samples(p99: float, errors: float) -> Samples:
    n = 10
    return Samples(2.0, {
        "requests": [20.0] * n,
        "errors": [errors] * n,
        "latency_p99_s": [p99 * (1 + 0.01 * i) for i in range(n)],
        "cpu_seconds": [0.06 + 0.001 * (i % 3) for i in range(n)],
        "rss_bytes": [6e7 + 1e5 * (i % 2) for i in range(n)],
    })


def test_text_has_the_reason_and_one_line_per_metric() -> None:
    v = judge(DEFAULT_CONFIG, _samples(0.02, 0), _samples(0.3, 0), final=True)
    lines = explain_text(v).splitlines()
    assert lines[0].startswith("FAIL (score 70.0, 10 intervals)")
    assert lines[1] == "  groups: errors 100 (weight 40), latency 0 (weight 30), cpu 100 (weight 15), memory 100 (weight 15)"
    assert len(lines) == 2 + len(v.metrics)
    lat = next(line for line in lines[2:] if "latency_p99" in line)
    assert lat.startswith("!") and "high" in lat and "n=10/10" in lat and "mann-whitney" in lat
    assert "allowed x1.3" in lat


def test_json_is_the_verdict_dict() -> None:
    v = judge(DEFAULT_CONFIG, _samples(0.02, 0), _samples(0.02, 0), final=True)
    assert to_json(v) == v.to_dict()
    assert to_json(v)["verdict"] == "pass"
