"""The flags benchmark runs and prints one JSON line of figures."""

from __future__ import annotations

import json

import pytest

from sample_app.flags_bench import main


def test_one_short_run_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rounds", "1", "--requests", "20", "--app-requests", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    assert figures["evaluation_us"] > 0 and figures["request_variants_us"] > 0
    for part in ("middleware_us", "app_request_us"):
        assert set(figures[part]) == {"none", "three_flags", "added"}
        assert figures[part]["none"] > 0 and figures[part]["three_flags"] > 0
