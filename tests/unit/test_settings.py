"""config.yaml errors name the field, the bad value and the fix; the environment wins over the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deployer.exceptions import ConfigError
from deployer.settings import load_settings, parse_duration, parse_percent

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ=environ or {})
    return info.value.problems


def test_the_shipped_config_loads() -> None:
    settings = load_settings(ROOT / "config.yaml", environ={})
    assert settings.fleet.hosts == 6 and settings.rollout.waves == [25.0, 100.0]
    assert settings.database_url == f"sqlite:///{ROOT / '.deployer' / 'deployer.db'}"
    assert settings.canary_config is not None


def test_the_production_profile_loads() -> None:
    settings = load_settings(ROOT / "config.production.yaml", environ={})
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert (settings.queue.backend, settings.analysis.source) == ("rq", "prometheus")
    assert settings.analysis.file_sd and settings.post_deploy.enabled


def test_blackouts_are_read_in_their_time_zone(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "source: {repository: r.git}\nwindows:\n  timezone: Europe/Paris\n"
                                             "  blackouts:\n  - {name: weekend, days: [sat, sun]}\n"
                                             "  - {name: evenings, days: [mon, tue], hours: '18:00-08:00', tz: UTC}\n"),
                             environ={})
    weekend, evenings = settings.windows.parsed()
    assert weekend.tz.key == "Europe/Paris" and weekend.days == frozenset({5, 6})
    assert evenings.tz.key == "UTC" and str(evenings.start) == "18:00:00"
    assert load_settings(write(tmp_path, "source: {repository: r.git}\n"), environ={}).windows.parsed() == []


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "source: {repository: repo.git}\n"), environ={})
    assert settings.repository == str(tmp_path / "repo.git")
    assert settings.rollout.canary_bake == 60.0 and settings.queue.backend == "inprocess"


@pytest.mark.parametrize(("text", "expected"), [
    ("rollout: {canary_bake: 5x}", 'rollout.canary_bake: "5x" is not a duration; use e.g. "30s"'),
    ("rollout: {waves: ['25%', '50%']}", 'rollout.waves: [25.0, 50.0] must end with "100%"'),
    ("rollout: {waves: ['50%', '25%', '100%']}", "must grow wave after wave"),
    ("rollout: {waves: ['150%']}", 'rollout.waves.0: "150%" is not between 0% and 100%'),
    ("rollout: {waves: [quarter]}", 'rollout.waves.0: "quarter" is not a percentage; use e.g. "25%"'),
    ("fleet: {hosts: six}", 'fleet.hosts: "six" is not a whole number; use e.g. 6'),
    ("fleet: {hosts: 1}", "fleet.hosts: 1 is out of range; use a value greater than or equal to 2"),
    ("fleet: {bind: 0.0.0.0}", 'fleet.bind: "0.0.0.0" is not a loopback address'),
    ("fleet: {hostz: 3}", "fleet.hostz: unknown field; expected one of: backend, hosts"),
    ("queue: {backend: kafka}", "queue.backend: \"kafka\" is not allowed; use 'inprocess' or 'rq'"),
    ("pipeline: {test_timeout: -5}", "pipeline.test_timeout: -5 is negative"),
    ("analysis: {source: graphite}", "analysis.source: \"graphite\" is not allowed"),
    ("analysis: {canary: {confidence: 2}}", "analysis.canary.confidence"),
    ("databse: {url: x}", "databse: unknown field; expected one of: source, workdir, database"),
    ("windows: {timezone: Mars/Olympus}", 'windows.timezone: "Mars/Olympus" is not a time zone; use e.g.'),
    ("windows: {blackouts: [{name: wk, days: [sat, sunday, holiday]}]}",
     "windows.blackouts.0.days: ['sat', 'sunday', 'holiday'] is not a list of days; use e.g."),
    ("windows: {blackouts: [{name: eve, hours: '18-8'}]}",
     'windows.blackouts.0.hours: "18-8" is not a time range; use e.g. "18:00-08:00"'),
    ("windows: {blackouts: [{name: eve, hours: '18:00-08:00', tz: Nowhere}]}",
     'windows.blackouts.0.tz: "Nowhere" is not a time zone'),
    ("windows: {blackouts: [{days: [sat]}]}", "windows.blackouts.0.name: is required but missing"),
    ("pipeline: {lead_time_goal: soon}", 'pipeline.lead_time_goal: "soon" is not a duration'),
    ("fleet: {backend: k8s}", "fleet.backend: \"k8s\" is not allowed; use 'local' or 'docker'"),
    ("fleet: {engines: ['unix:///x.sock']}", "fleet.engines: unknown field; expected one of: backend, hosts"),
    ("fleet: {backend: docker, engines: ['http://127.0.0.1:2375']}",
     'fleet.engines: "http://127.0.0.1:2375" is not an engine URL; use unix:///var/run/docker.sock'),
    ("fleet: {backend: docker, memory: lots}", 'fleet.memory: "lots" is not a memory size; use e.g. "256m"'),
    ("fleet: {backend: docker, cpus: 0}", "fleet.cpus: 0 is out of range; use a value greater than 0"),
    ("router: {kind: nginx}", "router.kind: \"nginx\" is not allowed; use 'builtin' or 'haproxy'"),
    ("router: {kind: haproxy}", "router.socket: is required but missing; add it"),
    ("router: {kind: haproxy, socket: /run/a.sock, server_name: web}",
     'router.server_name: "web" names every host the same; use e.g. "host-{index}"'),
    ("router: {kind: haproxy, socket: /run/a.sock, canary_weight: 999}",
     "router.canary_weight: 999 is out of range; use a value less than or equal to 256"),
    ("router: {socket: /run/a.sock}", "router.socket: unknown field; expected one of: kind"),
    ("post_deploy: {watch: soon}", 'post_deploy.watch: "soon" is not a duration'),
    ("post_deploy: {interval: 0s}", "post_deploy.interval: 0s must be positive"),
    ("post_deploy: {strict: {max_crashes: 0}}", "post_deploy.strict.max_crashes: 0 is out of range"),
    ("post_deploy: {relaxed: {error_ratio: 0.5}}", "post_deploy.relaxed.error_ratio: 0.5 is out of range"),
    ("post_deploy: {strict: {crashes: 2}}", "post_deploy.strict.crashes: unknown field"),
])
def test_each_error_names_field_value_and_fix(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(tmp_path, "source: {repository: r.git}\n" + text + "\n")
    assert any(expected in p for p in found), found


def test_missing_required_section(tmp_path: Path) -> None:
    assert problems(tmp_path, "fleet: {hosts: 3}\n") == ["source: is required but missing; add it"]


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    found = problems(tmp_path, "source: {repository: r}\nfleet: {hosts: x, base_port: 80}\n")
    assert len(found) == 2


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    assert "not valid YAML" in problems(tmp_path, "source: [unclosed\n")[0]
    assert "must be a mapping" in problems(tmp_path, "- a\n- b\n")[0]


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "nope.yaml", environ={})
    assert "no such file" in str(info.value) and "--config" in str(info.value)


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "source: {repository: r}\nrollout: {canary_bake: 60s}\n")
    settings = load_settings(path, environ={"DEPLOYER__ROLLOUT__CANARY_BAKE": "7s",
                                            "DEPLOYER__DATABASE__URL": "postgresql+psycopg://u@127.0.0.1/db",
                                            "UNRELATED": "1"})
    assert settings.rollout.canary_bake == 7.0
    assert settings.database_url == "postgresql+psycopg://u@127.0.0.1/db"


def test_each_backend_has_its_own_fields(tmp_path: Path) -> None:
    text = ("source: {repository: r}\nfleet: {backend: docker, hosts: 4, engines: ['unix:///a.sock', 'ssh://ops@box']}\n"
            "router: {kind: haproxy, socket: run/admin.sock, backend: web}\n")
    settings = load_settings(write(tmp_path, text), environ={})
    assert settings.fleet.backend == "docker" and settings.fleet.engines == ["unix:///a.sock", "ssh://ops@box"]
    assert settings.fleet.base_image == "python:3.11-slim" and settings.fleet.hosts == 4
    assert settings.router.kind == "haproxy" and settings.router.backend == "web"
    assert settings.path(settings.router.socket) == tmp_path / "run" / "admin.sock"
    local = load_settings(write(tmp_path, "source: {repository: r}\n"), environ={})
    assert local.fleet.backend == "local" and local.router.kind == "builtin"


def test_environment_can_choose_the_backend_and_its_nested_fields(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "source: {repository: r}\nfleet: {hosts: 3}\n"), environ={
        "DEPLOYER__FLEET__BACKEND": "docker", "DEPLOYER__FLEET__ENGINES": '["tcp://127.0.0.1:2375"]',
        "DEPLOYER__ROUTER__KIND": "haproxy", "DEPLOYER__ROUTER__SOCKET": "/run/haproxy/admin.sock"})
    assert settings.fleet.backend == "docker" and settings.fleet.hosts == 3
    assert settings.fleet.engines == ["tcp://127.0.0.1:2375"]
    assert settings.router.kind == "haproxy" and settings.router.socket == "/run/haproxy/admin.sock"


def test_bad_environment_value_is_reported_like_a_file_value(tmp_path: Path) -> None:
    found = problems(tmp_path, "source: {repository: r}\n", environ={"DEPLOYER__FLEET__HOSTS": "lots"})
    assert found == ['fleet.hosts: "lots" is not a whole number; use e.g. 6']


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("200ms", 0.2), ("1h", 3600),
                                               (12, 12), ("1.5s", 1.5), ("7", 7)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["5x", "s", "", "-3s", True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_percentages() -> None:
    assert parse_percent("25%") == 25.0 and parse_percent(100) == 100.0
    for bad in ("0%", "101%", "x"):
        with pytest.raises(ValueError):
            parse_percent(bad)


def test_cli_prints_problems_without_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "source: {repository: r}\nrollout: {canary_bake: 5x}\n")
    result = subprocess.run([sys.executable, "-P", "-m", "deployer.cli", "-c", str(path), "status"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert 'rollout.canary_bake: "5x" is not a duration' in result.stderr
    assert "Traceback" not in result.stderr


def test_gate_webhook_and_status_settings_are_validated_with_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("source: {repository: x.git}\ngate: {required_checks: [lint], bench_allowance: 250%}\n"
                      "statuses: {url: 'https://api.github.com', repo: snapgram}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    text = str(caught.value)
    assert "gate.required_checks.0: \"lint\" is not allowed; use 'tests' or 'bench'" in text
    assert "gate.bench_allowance" in text and "between 0% and 100%" in text
    assert "statuses.repo: \"snapgram\" is not owner/name" in text
    ok = tmp_path / "ok.yaml"
    ok.write_text("source: {repository: x.git}\napi: {port: 9000}\n")
    settings = load_settings(ok, environ={"DEPLOYER__WEBHOOKS__GITHUB_SECRET": "abc"})
    assert settings.webhooks.github_secret == "abc" and settings.dashboard_url == "http://127.0.0.1:9000"
