"""config.yaml + environment -> one typed Settings object, with errors a human can act on.

Every problem names the field, the bad value and the fix, e.g.
`config.yaml: rollout.canary_bake: "5x" is not a duration; use e.g. "30s"`.
Environment variables win over the file: `DEPLOYER__ROLLOUT__CANARY_BAKE=10s` sets
`rollout.canary_bake` (double underscores separate the levels; pydantic-settings reads them).
`fleet` and `router` are tagged unions: `fleet.backend` (local | docker) and `router.kind`
(builtin | haproxy) pick the model, and each has only its own fields.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict, SettingsError
from pydantic_settings.sources.utils import parse_env_vars

from canary.config import CanaryConfig, load_canary_config
from canary.exceptions import CanaryConfigError
from deployer.exceptions import ConfigError
from deployer.rollout_budget import Budget, resolve_budget, resolve_count
from deployer.windows import Blackout, parse_blackout

log = logging.getLogger(__name__)
DEFAULT_MAX_UNAVAILABLE = 2

ENV_PREFIX = "DEPLOYER__"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """'30s', '5m', '200ms', '1h' or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; use e.g. \"30s\"")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{value!r} is negative; use a duration such as \"30s\"")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"\"{value}\" is not a duration; use e.g. \"30s\", \"5m\" or \"200ms\"")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_percent(value: Any) -> float:
    """'25%' or 25 -> 25.0, within (0, 100]."""
    text = str(value).strip()
    number = text[:-1] if text.endswith("%") else text
    try:
        percent = float(number)
    except ValueError:
        raise ValueError(f"\"{value}\" is not a percentage; use e.g. \"25%\"") from None
    if not 0 < percent <= 100:
        raise ValueError(f"\"{value}\" is not between 0% and 100%; use e.g. \"25%\"")
    return percent


Duration = Annotated[float, BeforeValidator(parse_duration)]
Percent = Annotated[float, BeforeValidator(parse_percent)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSettings(_Section):
    repository: str = Field(description="path or URL of the central git repository")
    branch: str = "main"
    poll_interval: Duration = 5.0


class DatabaseSettings(_Section):
    url: str = "sqlite:///deployer.db"
    # auto: `deployer run` / `serve` migrate the schema on start; check: they refuse an old schema
    # (then `deployer db upgrade` is a deliberate step of the release).
    migrate: Literal["auto", "check"] = "auto"


class PipelineSettings(_Section):
    max_batch: int = Field(3, ge=1, le=50)
    # The planner takes as few commits per release as meet this goal (merge to the whole fleet).
    lead_time_goal: Duration = 30 * 60.0
    # Until releases have been timed, the planner assumes each takes this long.
    default_release_time: Duration = 120.0
    # Every merged commit's tests start when it is discovered, while the release before it bakes;
    # a release whose commits passed already starts at the build.
    tests_ahead: bool = True
    test_command: str = "python -m pytest -q -x -p no:cacheprovider -m \"not integration\" sample_app/tests"
    test_timeout: Duration = 300.0
    keep_releases: int = Field(30, ge=2)


class _FleetCommon(_Section):
    """What every fleet backend has: how many hosts, how they prove healthy, how fast to replace."""

    hosts: int = Field(6, ge=2, le=200)
    bind: str = "127.0.0.1"
    base_port: int = Field(8101, ge=1024, le=65000)
    balancer_port: int = Field(8100, ge=1024, le=65535)
    app_database_url: str | None = None
    healthy_checks: int = Field(3, ge=1, le=50)
    health_interval: Duration = 0.2
    start_timeout: Duration = 30.0
    drain_timeout: Duration = 10.0
    stop_timeout: Duration = 10.0
    # Deprecated: read as rollout.max_unavailable (a warning says so); kept so old configs still load.
    max_parallel: int | None = Field(None, ge=1, le=50)

    @model_validator(mode="after")
    def _loopback_only(self) -> _FleetCommon:
        if not self.bind.startswith("127."):
            raise ValueError(f"bind: \"{self.bind}\" is not a loopback address; the fleet binds e.g. 127.0.0.1")
        return self


class LocalFleetSettings(_FleetCommon):
    """Sample-app processes on this machine, host-i on base_port + i."""

    backend: Literal["local"] = "local"
    # Hosts forked from a per-release interpreter that imported the app once: restarts cost
    # a fork and the health checks, not seconds of imports.
    fork_server: bool = True


class DockerFleetSettings(_FleetCommon):
    """Containers on one or more Docker engines, one image per release."""

    backend: Literal["docker"]
    engines: list[str] = Field(default_factory=lambda: ["unix:///var/run/docker.sock"], min_length=1)
    base_image: str = "python:3.11-slim"
    dockerfile: str = "sample_app/Dockerfile"
    image_repository: str = "deployer/app"
    cpus: float = Field(1.0, gt=0, le=64)
    memory: str = "256m"
    engine_timeout: Duration = 30.0
    platform: str = "deployer"

    @field_validator("engines")
    @classmethod
    def _engine_urls(cls, engines: list[str]) -> list[str]:
        for url in engines:
            if not url.startswith(("unix://", "tcp://", "ssh://")):
                raise ValueError(f"\"{url}\" is not an engine URL; use unix:///var/run/docker.sock, "
                                 "tcp://HOST:2375 or ssh://user@HOST")
        return engines

    @field_validator("memory")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        if not re.fullmatch(r"\d+[kmg]?", str(value).strip().lower()):
            raise ValueError(f"\"{value}\" is not a memory size; use e.g. \"256m\" or \"1g\"")
        return str(value).strip().lower()


class SimFleetSettings(_FleetCommon):
    """A SIMULATED fleet (deployer.fleet.sim): hosts in memory, for scale benchmarks and wave-planning tests.

    Nothing is started: host starts take a time drawn from a log-normal distribution
    (median and 95th percentile below) and fail with `failure_rate`. Never a real backend.
    """

    backend: Literal["sim"]
    hosts: int = Field(100, ge=2, le=100_000)
    start_median: Duration = 1.7
    start_p95: Duration = 3.0
    failure_rate: float = Field(0.0, ge=0.0, le=1.0)
    drain: Duration = 0.2
    seed: int = 1

    @model_validator(mode="after")
    def _p95_not_below_median(self) -> SimFleetSettings:
        if self.start_p95 < self.start_median:
            raise ValueError(f"start_p95: {self.start_p95:g}s is below start_median ({self.start_median:g}s); "
                             "use e.g. \"3s\"")
        return self


FleetSettings = Annotated[LocalFleetSettings | DockerFleetSettings | SimFleetSettings,
                          Field(discriminator="backend")]


class BuiltinRouterSettings(_Section):
    """The platform's own balancer process on fleet.balancer_port."""

    kind: Literal["builtin"] = "builtin"


class HaproxyRouterSettings(_Section):
    """An HAProxy (2.6+) driven over its runtime API; the platform does not need to have started it."""

    kind: Literal["haproxy"]
    socket: str = Field(description="path of HAProxy's admin stats socket (`stats socket ... level admin`)")
    backend: str = "app"
    server_name: str = Field("host-{index}", description="server name of host i in the backend: {index} or {name}")
    traffic_url: str | None = Field(None, description="where users reach HAProxy's frontend, e.g. http://127.0.0.1:8080")
    canary_weight: int = Field(100, ge=1, le=256)
    weight: int = Field(100, ge=1, le=256)
    timeout: Duration = 5.0

    @field_validator("server_name")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if "{index}" not in value and "{name}" not in value:
            raise ValueError(f"\"{value}\" names every host the same; use e.g. \"host-{{index}}\"")
        return value


RouterSettings = Annotated[BuiltinRouterSettings | HaproxyRouterSettings, Field(discriminator="kind")]


def _count_or_share(value: Any) -> int | str:
    """2, "2" or "25%" (a share of the fleet), checked the way rollout_budget resolves it."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a count or a share; use e.g. 2 or \"25%\"")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        resolve_count(value, 100, round_up=False, field="value")
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix("value: ")) from None
    return value if isinstance(value, int) else str(value).strip()


CountOrShare = Annotated[int | str, BeforeValidator(_count_or_share)]


class RolloutSettings(_Section):
    canary_hosts: int = Field(1, ge=1)
    # The capacity budget of every wave (Kubernetes' rolling-update vocabulary): hosts out of
    # service at once, extra instances beside the fleet (backends that start the new version
    # beside the old), and a floor of serving hosts no batch may cross. Counts or shares.
    max_unavailable: CountOrShare | None = None
    max_surge: CountOrShare = 0
    min_healthy: CountOrShare = 0
    waves: list[Percent] = Field(default_factory=lambda: [25.0, 100.0])
    canary_bake: Duration = 60.0
    wave_bake: Duration = 30.0
    warmup: Duration = 3.0
    max_extensions: int = Field(2, ge=0, le=20)
    # A failed rollback is retried after rollback_retry, doubling each time up to rollback_retry_max;
    # after rollback_max_failures failures in a row the deployment pauses for a human.
    rollback_retry: Duration = 2.0
    rollback_retry_max: Duration = 60.0
    rollback_max_failures: int = Field(5, ge=1, le=100)

    @model_validator(mode="after")
    def _waves_end_at_full_fleet(self) -> RolloutSettings:
        if not self.waves or self.waves[-1] != 100.0:
            raise ValueError(f"waves: {self.waves} must end with \"100%\"; use e.g. [\"25%\", \"100%\"]")
        if any(b <= a for a, b in zip(self.waves, self.waves[1:])):
            raise ValueError(f"waves: {self.waves} must grow wave after wave; use e.g. [\"25%\", \"100%\"]")
        return self


class WatchThresholds(_Section):
    """What counts as harm at one sensitivity of the post-deploy watch (see deployer/post_deploy.py)."""

    max_crashes: int = Field(2, ge=1, le=1000)
    crash_window: Duration = 600.0
    error_ratio: float = Field(2.0, ge=1.0)
    error_increase: float = Field(0.02, ge=0.0, le=1.0)
    latency_ratio: float = Field(2.0, ge=1.0)
    latency_increase: Duration = 0.1
    bad_windows: int = Field(3, ge=1, le=100)
    min_requests: int = Field(20, ge=1)


class PostDeploySettings(_Section):
    """After a release succeeds: watch it strictly for `watch`, then relaxed for as long as it is live."""

    enabled: bool = True
    watch: Duration = 600.0
    interval: Duration = 5.0
    # Fresh processes are slower than warm ones: figures of the first seconds after success are
    # left out (crashes still count).
    warmup: Duration = 30.0
    strict: WatchThresholds = WatchThresholds()
    relaxed: WatchThresholds = WatchThresholds(max_crashes=3, error_ratio=4.0, error_increase=0.1, latency_ratio=3.0,
                                               latency_increase=0.25, bad_windows=6, min_requests=50)

    @model_validator(mode="after")
    def _interval_positive(self) -> PostDeploySettings:
        if self.interval <= 0:
            raise ValueError(f"interval: {self.interval:g}s must be positive; use e.g. \"5s\"")
        return self


class BlackoutSettings(_Section):
    """A recurring period without new releases, e.g. weekends or evenings, in a time zone."""

    name: str = Field(..., min_length=1, max_length=100)
    days: list[str] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
    hours: str = Field("00:00-00:00", description="HH:MM-HH:MM local time; may cross midnight; 00:00-00:00 = all day")
    tz: str | None = Field(None, description="IANA time zone; default windows.timezone")


class WindowSettings(_Section):
    """When new releases may start: configured blackouts (ad-hoc freezes live in the database)."""

    timezone: str = "UTC"
    blackouts: list[BlackoutSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _parse(self) -> WindowSettings:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: \"{self.timezone}\" is not a time zone; use e.g. \"Europe/London\" "
                             "or \"UTC\"") from None
        for i, b in enumerate(self.blackouts):
            try:
                parse_blackout(b.name, days=b.days, hours=b.hours, tz=b.tz or self.timezone)
            except ValueError as exc:
                field, rest = str(exc).split(": ", 1)
                field = "timezone" if field == "tz" and b.tz is None else f"blackouts.{i}.{field}"
                raise ValueError(f"{field}: {rest}") from None
        return self

    def parsed(self) -> list[Blackout]:
        """The blackouts as deployer.windows rules (validated already)."""
        return [parse_blackout(b.name, days=b.days, hours=b.hours, tz=b.tz or self.timezone) for b in self.blackouts]


class AnalysisSettings(_Section):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    source: Literal["scrape", "prometheus"] = "scrape"
    interval: Duration = 2.0
    # Hosts judged per role: a wave of thousands is judged on a seeded random sample of its new
    # hosts as large as the baseline (at most this many), never by scraping every host every interval.
    max_hosts: int = Field(20, ge=1, le=10_000)
    prometheus_url: str = "http://127.0.0.1:9090"
    # Prometheus file-based service discovery: the fleet's hosts with host, role and version
    # labels, rewritten whenever they change (relative to workdir; "" turns it off).
    file_sd: str = "prometheus/targets.json"
    scrape_timeout: Duration = 1.0
    canary: dict[str, Any] | None = Field(None, description="canary judge config (Kayenta vocabulary)")


class QueueSettings(_Section):
    backend: Literal["inprocess", "rq"] = "inprocess"
    redis_url: str = "redis://127.0.0.1:6379/0"
    name: str = "deployer"
    workers: int = Field(2, ge=1, le=32)
    # rq: a job that raises, or whose worker dies, runs again this many times before it fails the stage.
    retries: int = Field(2, ge=0, le=10)
    # rq: workers heart-beat their job this often; a job silent for heartbeat_grace more is abandoned.
    heartbeat: Duration = 10.0
    heartbeat_grace: Duration = 60.0

    @model_validator(mode="after")
    def _grace_exceeds_heartbeat(self) -> QueueSettings:
        if self.heartbeat_grace <= self.heartbeat:
            raise ValueError(f"heartbeat_grace: {self.heartbeat_grace:g}s must be longer than heartbeat "
                             f"({self.heartbeat:g}s), or live jobs look abandoned; use e.g. \"60s\"")
        return self


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)


class ControllerSettings(_Section):
    tick: Duration = 0.25
    # Host replacements run on this many threads beside the tick (which never waits for them);
    # it also bounds a rollback's parallelism. Probes of the whole fleet use probe_workers.
    host_workers: int = Field(32, ge=1, le=2000)
    probe_workers: int = Field(16, ge=1, le=512)
    # A standby tries to take the leadership this often: it bounds the takeover time after a leader dies.
    leader_poll: Duration = 1.0
    # How often the leader checks it still holds the leadership and records a heartbeat.
    heartbeat: Duration = 2.0


class GateSettings(_Section):
    """The merge gate: which branches it protects and what a merge needs."""

    protected_branches: list[str] = Field(default_factory=lambda: ["main"])
    required_checks: list[Literal["tests", "bench"]] = Field(default_factory=lambda: ["tests", "bench"])
    max_backlog: int = Field(20, ge=1, le=10000, description="undeployed commits beyond which merges wait")
    dashboard_url: str = Field("", description="links in refusals and statuses; default http://api.host:api.port")
    bench_command: str = "python -m sample_app.bench"
    bench_rounds: int = Field(12, ge=4, le=200)
    bench_requests: int = Field(20, ge=1, le=10000)
    bench_allowance: Percent = 10.0
    bench_confidence: float = Field(0.98, gt=0.5, lt=1.0)
    check_timeout: Duration = 600.0


class WebhookSettings(_Section):
    """Intake of GitHub and GitLab events; a provider without its secret is refused."""

    github_secret: str | None = None
    gitlab_token: str | None = None
    max_body: int = Field(1_000_000, ge=1024, le=50_000_000, description="bytes; larger bodies get a 413")


class StatusSettings(_Section):
    """Commit statuses out, in GitHub's format (POST {url}/repos/{repo}/statuses/{sha})."""

    url: str | None = Field(None, description="e.g. https://api.github.com; unset: no statuses are sent")
    repo: str = Field("", description="owner/name")
    token: str | None = None
    retries: int = Field(4, ge=0, le=20)
    backoff: Duration = 0.5
    timeout: Duration = 5.0
    interval: Duration = 5.0

    @model_validator(mode="after")
    def _repo_when_url(self) -> StatusSettings:
        if self.url and self.repo.count("/") != 1:
            raise ValueError(f"repo: \"{self.repo}\" is not owner/name; use e.g. \"acme/snapgram\"")
        return self


# Values people paste from examples; a session secret like these would let anyone forge a sign-in.
PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "placeholder", "please-change", "xxx",
                                 "your-secret-key", "insecure", "default", "test", "password"})


class AuthSettings(_Section):
    secret_key: str | None = Field(None, description="signs session cookies; generated into the workdir when unset")
    session_max_age: Duration = 12 * 3600.0
    cookie_secure: bool = False
    signin_free_failures: int = Field(3, ge=0, le=100)
    signin_delay: Duration = 1.0
    signin_max_delay: Duration = 10.0
    signin_window: Duration = 900.0

    @model_validator(mode="after")
    def _no_placeholder_secret(self) -> AuthSettings:
        key = self.secret_key
        if key is not None and (key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < 32):
            raise ValueError("secret_key: is a placeholder or shorter than 32 characters; use e.g. the output of "
                             "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`, or leave it unset "
                             "to have one generated in the workdir")
        return self


class NotificationTarget(_Section):
    url: str = Field(description="where to POST")
    format: Literal["json", "slack"] = "json"
    events: list[Literal["started", "succeeded", "failed", "rolled_back", "paused"]] = Field(
        default_factory=lambda: ["started", "succeeded", "failed", "rolled_back", "paused"])

    @model_validator(mode="after")
    def _http_url(self) -> NotificationTarget:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url: \"{self.url}\" is not an http(s) URL; use e.g. https://hooks.slack.com/services/...")
        return self


class NotificationSettings(_Section):
    targets: list[NotificationTarget] = Field(default_factory=list)
    retries: int = Field(5, ge=0, le=20)
    backoff: Duration = 1.0
    timeout: Duration = 5.0


class Settings(BaseSettings):
    """The whole configuration; build it with `load_settings()`."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True,
                                      env_prefix=ENV_PREFIX, env_nested_delimiter="__", case_sensitive=False)

    source: SourceSettings
    workdir: str = ".deployer"
    database: DatabaseSettings = DatabaseSettings()
    pipeline: PipelineSettings = PipelineSettings()
    fleet: FleetSettings = LocalFleetSettings()
    router: RouterSettings = BuiltinRouterSettings()
    rollout: RolloutSettings = RolloutSettings()
    post_deploy: PostDeploySettings = PostDeploySettings()
    analysis: AnalysisSettings = AnalysisSettings()
    queue: QueueSettings = QueueSettings()
    api: ApiSettings = ApiSettings()
    controller: ControllerSettings = ControllerSettings()
    auth: AuthSettings = AuthSettings()
    notifications: NotificationSettings = NotificationSettings()
    gate: GateSettings = GateSettings()
    webhooks: WebhookSettings = WebhookSettings()
    statuses: StatusSettings = StatusSettings()
    windows: WindowSettings = WindowSettings()
    base_dir: str = "."
    canary_config: CanaryConfig | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _default_tags(cls, data: Any) -> Any:
        # `fleet: {hosts: 3}` (or only DEPLOYER__FLEET__HOSTS) means the default backend.
        if isinstance(data, dict):
            for section, (tag, default) in _TAGS.items():
                value = data.get(section)
                if isinstance(value, dict) and tag not in value:
                    data = {**data, section: {**value, tag: default}}
        return data

    @model_validator(mode="after")
    def _budget_fits_the_fleet(self) -> Settings:
        if self.fleet.max_parallel is not None and self.rollout.max_unavailable is not None:
            raise ValueError("fleet.max_parallel: is deprecated and rollout.max_unavailable is set too; "
                             "remove fleet.max_parallel")
        try:
            self.rollout_budget(self.fleet.hosts)
        except ValueError as exc:
            raise ValueError(f"rollout.{exc}") from None
        return self

    @property
    def max_unavailable(self) -> int | str:
        """rollout.max_unavailable, or the deprecated fleet.max_parallel, or 2 (the old default)."""
        if self.rollout.max_unavailable is not None:
            return self.rollout.max_unavailable
        return self.fleet.max_parallel if self.fleet.max_parallel is not None else DEFAULT_MAX_UNAVAILABLE

    @property
    def deprecations(self) -> list[str]:
        """Settings that still work but should be changed, with the change to make."""
        if self.fleet.max_parallel is not None:
            return [f"fleet.max_parallel: is deprecated; use rollout.max_unavailable: {self.fleet.max_parallel} "
                    "(a count or a share such as \"25%\")"]
        return []

    def rollout_budget(self, fleet_size: int) -> Budget:
        """The wave budget resolved for a fleet of `fleet_size` hosts."""
        return resolve_budget(fleet_size, max_unavailable=self.max_unavailable, max_surge=self.rollout.max_surge,
                              min_healthy=self.rollout.min_healthy)

    def path(self, value: str) -> Path:
        """Resolve a path from the config relative to the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (Path(self.base_dir) / p).resolve()

    @property
    def workdir_path(self) -> Path:
        return self.path(self.workdir)

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path resolved against the workdir."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.workdir_path / url[len(prefix):])
        return url

    @property
    def repository(self) -> str:
        """The source repository: a local path resolved, or a URL as given."""
        repo = self.source.repository
        if "://" in repo or repo.startswith("git@"):
            return repo
        return str(self.path(repo))

    @property
    def dashboard_url(self) -> str:
        """Where people see the dashboard (links in hook refusals and commit statuses)."""
        return (self.gate.dashboard_url or f"http://{self.api.host}:{self.api.port}").rstrip("/")

    @property
    def app_database_url(self) -> str:
        return self.fleet.app_database_url or f"sqlite:///{self.workdir_path / 'fleet' / 'app.db'}"


# The tagged unions: section -> (tag field, default tag).
_TAGS = {"fleet": ("backend", "local"), "router": ("kind", "builtin")}


class _Environment(EnvSettingsSource):
    """pydantic-settings' nested environment source, reading a given mapping (tests pass their own)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        super().__init__(Settings, case_sensitive=False, env_prefix=ENV_PREFIX, env_nested_delimiter="__")

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, False, False, None)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"\"{value}\""
    return repr(value)


_FRIENDLY = {
    "int_parsing": "is not a whole number; use e.g. {example}",
    "int_type": "is not a whole number; use e.g. {example}",
    "int_from_float": "is not a whole number; use e.g. {example}",
    "float_parsing": "is not a number; use e.g. {example}",
    "string_type": "is not text; use a quoted string",
    "list_type": "is not a list; use e.g. [\"25%\", \"100%\"]",
    "dict_type": "is not a section; use a mapping of keys to values",
    "model_type": "is not a section; use a mapping of keys to values",
    "bool_parsing": "is not true or false",
}


def _without_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """`fleet.docker.engines` -> `fleet.engines`: the tag is pydantic's, not a field the user wrote."""
    if len(loc) > 1 and loc[0] in _TAGS:
        return (loc[0], *loc[2:])
    return loc


def _format_error(error: dict[str, Any], model: type[BaseModel]) -> str:
    raw_loc = tuple(error["loc"])
    loc = ".".join(str(part) for part in _without_tags(raw_loc))
    kind = error["type"]
    value = error.get("input")
    message = error["msg"].removeprefix("Value error, ")
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        tag = ctx.get("discriminator", "").strip("'")
        expected = " or ".join(str(ctx.get("expected_tags", "")).split(", "))
        return f"{loc}.{tag}: {_describe(ctx.get('tag'))} is not allowed; use {expected}"
    if kind == "missing":
        return f"{loc}: is required but missing; add it"
    if kind == "extra_forbidden":
        parent = _section_fields(model, raw_loc[:-1])
        hint = f"; expected one of: {', '.join(parent)}" if parent else ""
        return f"{loc}: unknown field{hint}"
    if kind == "literal_error":
        return f"{loc}: {_describe(value)} is not allowed; use {message.removeprefix('Input should be ')}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{loc}: {_describe(value)} is out of range; use a value {message.removeprefix('Input should be ')}"
    if kind in _FRIENDLY:
        example = _field_default(model, raw_loc)
        return f"{loc}: {_describe(value)} " + _FRIENDLY[kind].format(example=example if example is not None else 1)
    if kind == "value_error" and ": " in message and not loc:
        return message
    # A section's validator may name a field inside it, dotted: "blackouts.0.days: ...".
    if kind == "value_error" and re.fullmatch(r"[A-Za-z_][\w.]*", message.split(":", 1)[0]) and ": " in message:
        field, rest = message.split(": ", 1)
        return f"{loc + '.' if loc else ''}{field}: {rest}"
    return f"{loc}: {message}" if loc else message


def _member(annotation: Any, tag: Any) -> Any:
    """The model of a tagged union whose tag literal is `tag`; None when `annotation` is no such union."""
    for option in get_args(annotation):
        for name, field in getattr(option, "model_fields", {}).items():
            if name in {t for t, _ in _TAGS.values()} and tag in get_args(field.annotation):
                return option
    return None


def _field_default(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    current: Any = model
    field = None
    for part in loc:
        member = _member(current, part)
        if member is not None:
            current = member
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return None
        current = field.annotation
    default = getattr(field, "default", None)
    return default if isinstance(default, (int, float, str)) and not isinstance(default, bool) else None


def _section_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        member = _member(current, part)
        if member is not None:
            current = member
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
    fields = list(getattr(current, "model_fields", {}))
    tags = [name for name in fields if name in {t for t, _ in _TAGS.values()}]
    return tags + [name for name in fields if name not in ("base_dir", "canary_config", *tags)]


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, section by section (a nested mapping merges, anything else replaces)."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(path: str | Path | None = None, *, environ: dict[str, str] | None = None,
                  overrides: dict[str, Any] | None = None) -> Settings:
    """Read config.yaml (if given) and the environment into Settings, or raise ConfigError."""
    data: dict[str, Any] = {}
    source = "config"
    base_dir = Path.cwd()
    if path is not None:
        file = Path(path)
        source = str(path)
        if not file.is_file():
            raise ConfigError(["no such file; pass the path of a config.yaml (e.g. --config config.yaml)"],
                              source=source)
        try:
            loaded = yaml.safe_load(file.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise ConfigError([f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"], source=source) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(["the file must be a mapping of sections (source:, fleet:, rollout:, ...)"],
                              source=source)
        data = loaded
        base_dir = file.resolve().parent
    try:
        from_env = _Environment(os.environ if environ is None else environ)()
    except SettingsError as exc:
        raise ConfigError([f"environment: {exc}; check the DEPLOYER__SECTION__KEY variables"],
                          source="environment") from None
    data = _merge(data, from_env)  # the environment wins over the file
    for dotted, value in (overrides or {}).items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    data.setdefault("base_dir", str(base_dir))
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_format_error(e, Settings) for e in exc.errors()], source=source) from None
    try:
        canary = load_canary_config(settings.analysis.canary, where="analysis.canary")
    except CanaryConfigError as exc:
        raise ConfigError([str(exc)], source=source) from None
    for message in settings.deprecations:
        log.warning("%s: %s", source, message)
    return settings.model_copy(update={"canary_config": canary})
