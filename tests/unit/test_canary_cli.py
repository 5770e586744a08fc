"""`deployer analyze`: exit codes, JSON output and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from canary.cli import analyze_main

ROOT = Path(__file__).resolve().parents[2]


def write_samples(path: Path, *, seed: int, n: int = 15, err_rate: float = 0.0, req: float = 20.0) -> Path:
    """Write a samples file with seeded noise."""
    rng = np.random.default_rng(seed)
    requests = rng.poisson(req, n)
    doc = {
        "interval_s": 2,
        "series": {
            "requests": requests.tolist(),
            "errors": rng.binomial(requests, err_rate).tolist(),
            "latency_p99_s": (0.02 * rng.lognormal(0, 0.2, n)).tolist(),
            "cpu_seconds": (requests * 0.003 * rng.lognormal(0, 0.1, n)).tolist(),
            "rss_bytes": (60e6 * (1 + 0.001 * rng.standard_normal(n))).tolist(),
        },
    }
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "base": write_samples(tmp_path / "b.json", seed=1),
        "good": write_samples(tmp_path / "good.json", seed=2),
        "bad": write_samples(tmp_path / "bad.json", seed=3, err_rate=0.2),
        "thin": write_samples(tmp_path / "thin.json", seed=4, n=3),
        "thin_base": write_samples(tmp_path / "thin_b.json", seed=5, n=3),
    }


def test_pass_exits_0_with_a_text_explanation(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert analyze_main(["--baseline", str(files["base"]), "--canary", str(files["good"])]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PASS") and "latency_p99" in out and "errors_sequential" in out


def test_fail_exits_1_and_json_says_when(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert analyze_main(["--baseline", str(files["base"]), "--canary", str(files["bad"]), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "fail"
    assert isinstance(doc["decided_at"], int) and doc["decided_at"] < 14
    assert doc["metrics"]["errors_sequential"]["classification"] == "high"
    assert "score" in doc


def test_inconclusive_exits_3(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = analyze_main(["analyze", "--baseline", str(files["thin_base"]), "--canary", str(files["thin"]), "--json"])
    assert code == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "inconclusive" and doc["decided_at"] is None


def test_config_file_is_used(files: dict[str, Path], tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("minimumEvidence: {intervals: 2, requests: 10}\n")
    args = ["--baseline", str(files["thin_base"]), "--canary", str(files["thin"]), "--config", str(cfg)]
    assert analyze_main(args) in (0, 1)


@pytest.mark.parametrize(("make", "expected"), [
    (lambda d, f: ["--baseline", str(f["base"]), "--canary", str(d / "missing.json")], "cannot read the file"),
    (lambda d, f: ["--baseline", str(f["base"])], "required: --canary"),
    (lambda d, f: ["--baseline", str(f["base"]), "--canary", str(_text(d / "x.json", "{nope"))], "not valid JSON"),
    (lambda d, f: ["--baseline", str(f["base"]), "--canary",
                   str(_text(d / "y.json", '{"interval_s": 2, "series": {"a": [1, 2], "b": [1]}}'))],
     "series.b: has 1 values but series.a has 2"),
    (lambda d, f: ["--baseline", str(f["base"]), "--canary", str(f["thin"])], "baseline has 15 intervals"),
    (lambda d, f: ["--baseline", str(f["base"]), "--canary", str(f["good"]), "--config",
                   str(_text(d / "c.yaml", "metrcs: []"))], "metrcs: is not a known field"),
    (lambda d, f: ["--baseline", str(f["base"]), "--canary", str(f["good"]), "--frobnicate"], "unrecognized"),
])
def test_bad_input_exits_2_with_one_clear_line(files: dict[str, Path], tmp_path: Path, make: object,
                                               expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert analyze_main(make(tmp_path, files)) == 2  # type: ignore[operator]
    err = capsys.readouterr().err
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_runs_as_a_module(files: dict[str, Path]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "canary.cli", "--baseline", str(files["base"]), "--canary", str(files["bad"]), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["verdict"] == "fail"
    bad = subprocess.run([sys.executable, "-m", "canary.cli", "--baseline", "/nonexistent.json", "--canary", "x"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_deployer_analyze_is_wired(files: dict[str, Path]) -> None:
    deployer = Path(sys.executable).parent / "deployer"
    command = [str(deployer)] if deployer.exists() else [sys.executable, "-P", "-m", "deployer.cli"]
    done = subprocess.run([*command, "analyze", "--baseline", str(files["base"]), "--canary", str(files["good"]),
                           "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verdict"] == "pass"
    failing = subprocess.run([*command, "analyze", "--baseline", str(files["base"]), "--canary", str(files["bad"])],
                             capture_output=True, text=True, timeout=60)
    assert failing.returncode == 1
