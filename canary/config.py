"""Load an analysis configuration (Kayenta vocabulary) from a mapping or a YAML file, with clear errors.

Every problem names the field path, the bad value and a fix, e.g.
``analysis.classifier.scoreThresholds.pass: 120 is not between 0 and 100; use e.g. 95``.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

import yaml

from .config_model import (
    DEFAULT_CONFIG,
    CanaryConfig,
    Classifier,
    Direction,
    EffectSize,
    MemoryTrend,
    MetricConfig,
    MinimumEvidence,
    NanStrategy,
    Outliers,
    OutlierStrategy,
    Sequential,
)
from .exceptions import CanaryConfigError

__all__ = [
    "DEFAULT_CONFIG", "CanaryConfig", "Classifier", "Direction", "EffectSize", "MemoryTrend", "MetricConfig",
    "MinimumEvidence", "NanStrategy", "Outliers", "OutlierStrategy", "Sequential",
    "load_canary_config", "load_canary_config_file",
]

_TOP = ("metrics", "classifier", "confidence", "earlyPass", "warmupSeconds", "sequential", "minimumEvidence",
        "memoryTrend")
_METRIC = ("name", "series", "ratio", "group", "direction", "critical", "effectSize", "nanStrategy", "outliers")


class _Reader:
    """Reads typed values out of nested mappings, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        """Record one problem."""
        self.problems.append(f"{path or '(top level)'}: {message}")

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        """Return value as a mapping, reporting unknown keys with a suggestion."""
        if not isinstance(value, dict):
            self.fail(path, f"{value!r} is not a mapping; use keys like {', '.join(allowed[:3])}")
            return {}
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(allowed)}"
                self.fail(_child(path, str(key)), f"is not a known field; {hint}")
        return value

    def number(self, d: dict[str, Any], key: str, path: str, default: float, lo: float, hi: float,
               example: str, *, lo_open: bool = False, hi_open: bool = False) -> float:
        """Return d[key] as a number within [lo, hi] (bounds optionally open), else default."""
        if key not in d:
            return default
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            self.fail(_child(path, str(key)), f"{v!r} is not a number; use e.g. {example}")
            return default
        if (v < lo or (lo_open and v == lo)) or (v > hi or (hi_open and v == hi)):
            if not math.isfinite(hi):
                phrase = f"not above {_fmt(lo)}" if lo_open else f"below {_fmt(lo)}"
            elif not lo_open and not hi_open:
                phrase = f"not between {_fmt(lo)} and {_fmt(hi)}"
            else:
                phrase = f"not in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}"
            self.fail(_child(path, key), f"{_fmt(v)} is {phrase}; use e.g. {example}")
            return default
        return float(v)

    def integer(self, d: dict[str, Any], key: str, path: str, default: int, lo: int, example: str) -> int:
        """Return d[key] as an integer of at least lo, else default."""
        if key not in d:
            return default
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            self.fail(_child(path, str(key)), f"{v!r} is not a whole number of at least {lo}; use e.g. {example}")
            return default
        return v

    def boolean(self, d: dict[str, Any], key: str, path: str, default: bool) -> bool:
        """Return d[key] as a boolean, else default."""
        if key not in d:
            return default
        v = d[key]
        if not isinstance(v, bool):
            self.fail(_child(path, str(key)), f"{v!r} is not true or false; use true or false")
            return default
        return v

    def text(self, d: dict[str, Any], key: str, path: str, default: str, example: str) -> str:
        """Return d[key] as a non-empty string, else default."""
        if key not in d:
            return default
        v = d[key]
        if not isinstance(v, str) or not v.strip():
            self.fail(_child(path, str(key)), f"{v!r} is not a name; use e.g. {example}")
            return default
        return v

    def choice(self, d: dict[str, Any], key: str, path: str, enum: Any, default: Any) -> Any:
        """Return d[key] as a member of enum, else default."""
        if key not in d:
            return default
        v = d[key]
        try:
            return enum(str(v).lower()) if isinstance(v, str) else enum(v)
        except ValueError:
            options = ", ".join(e.value for e in enum)
            self.fail(_child(path, str(key)), f"{v!r} is not one of {options}; use one of them")
            return default


def _child(path: str, key: str) -> str:
    """Return the path of a field inside path ('' is the top level)."""
    return f"{path}.{key}" if path else key


def _fmt(v: float) -> str:
    """Format a number without a needless '.0'."""
    return str(int(v)) if float(v).is_integer() else str(v)


def _metric(r: _Reader, raw: Any, path: str) -> MetricConfig | None:
    """Parse one metric entry."""
    d = r.mapping(raw, path, _METRIC)
    if not d:
        return None
    name = r.text(d, "name", path, "", "error_rate")
    if "name" not in d:
        r.fail(_child(path, "name"), "is missing; give the metric a name, e.g. latency_p99")
    group = r.text(d, "group", path, "", "latency")
    if "group" not in d:
        r.fail(_child(path, "group"), "is missing; put the metric in a group, e.g. latency")
    series: str | None = None
    ratio: tuple[str, str] | None = None
    if ("series" in d) == ("ratio" in d):
        r.fail(path, "needs exactly one of series or ratio; use e.g. series: latency_p99_s "
               "or ratio: [errors, requests]")
    elif "series" in d:
        series = r.text(d, "series", path, "", "latency_p99_s")
    else:
        v = d["ratio"]
        if isinstance(v, list) and len(v) == 2 and all(isinstance(s, str) and s for s in v):
            ratio = (v[0], v[1])
        else:
            r.fail(_child(path, "ratio"), f"{v!r} is not [numerator, denominator]; use e.g. [errors, requests]")
    es = r.mapping(d.get("effectSize", {}), _child(path, "effectSize"), ("allowedIncrease", "allowedDecrease"))
    effect = EffectSize(
        allowed_increase=r.number(es, "allowedIncrease", _child(path, "effectSize"), 1.0, 1.0, math.inf, "1.2"),
        allowed_decrease=r.number(es, "allowedDecrease", _child(path, "effectSize"), 1.0, 0.0, 1.0, "0.8",
                                  lo_open=True),
    )
    od = r.mapping(d.get("outliers", {}), _child(path, "outliers"), ("strategy", "factor"))
    outliers = Outliers(
        strategy=r.choice(od, "strategy", _child(path, "outliers"), OutlierStrategy, OutlierStrategy.KEEP),
        factor=r.number(od, "factor", _child(path, "outliers"), 3.0, 0.0, math.inf, "3.0", lo_open=True),
    )
    return MetricConfig(
        name=name, group=group, series=series, ratio=ratio,
        direction=r.choice(d, "direction", path, Direction, Direction.EITHER),
        critical=r.boolean(d, "critical", path, False),
        effect_size=effect,
        nan_strategy=r.choice(d, "nanStrategy", path, NanStrategy, NanStrategy.REMOVE),
        outliers=outliers,
    )


def _metrics(r: _Reader, raw: Any, path: str) -> tuple[MetricConfig, ...]:
    """Parse the metrics list; names must be unique."""
    if not isinstance(raw, list) or not raw:
        r.fail(path, f"{raw!r} is not a non-empty list of metrics; use e.g. [{{name: latency_p99, "
               f"series: latency_p99_s, group: latency}}]")
        return ()
    out: list[MetricConfig] = []
    for i, item in enumerate(raw):
        m = _metric(r, item, f"{path}[{i}]")
        if m is None:
            continue
        if any(o.name == m.name for o in out):
            r.fail(_child(f"{path}[{i}]", "name"), f"{m.name!r} is used twice; give each metric its own name")
        out.append(m)
    return tuple(out)


def parse_config(data: Any, where: str, defaults: CanaryConfig = DEFAULT_CONFIG) -> CanaryConfig:
    """Validate data against defaults; raise CanaryConfigError listing every problem."""
    r = _Reader()
    d = r.mapping(data, where, _TOP)
    metrics = _metrics(r, d["metrics"], _child(where, "metrics")) if "metrics" in d else defaults.metrics
    sq = r.mapping(d.get("sequential", {}), _child(where, "sequential"),
                   ("enabled", "alpha", "errors", "requests", "allowedIncrease", "toleratedErrorRate"))
    p, ds = _child(where, "sequential"), defaults.sequential
    sequential = Sequential(
        enabled=r.boolean(sq, "enabled", p, ds.enabled),
        alpha=r.number(sq, "alpha", p, ds.alpha, 0.0, 0.5, "0.01", lo_open=True),
        errors=r.text(sq, "errors", p, ds.errors, "errors"),
        requests=r.text(sq, "requests", p, ds.requests, "requests"),
        allowed_increase=r.number(sq, "allowedIncrease", p, ds.allowed_increase, 1.0, math.inf, "1.0"),
        tolerated_error_rate=r.number(sq, "toleratedErrorRate", p, ds.tolerated_error_rate, 0.0, 1.0, "0.001",
                                      hi_open=True),
    )
    me = r.mapping(d.get("minimumEvidence", {}), _child(where, "minimumEvidence"), ("requests", "intervals", "series"))
    p, dm = _child(where, "minimumEvidence"), defaults.minimum_evidence
    evidence = MinimumEvidence(
        requests=r.integer(me, "requests", p, dm.requests, 0, "50"),
        intervals=r.integer(me, "intervals", p, dm.intervals, 2, "6"),
        series=r.text(me, "series", p, dm.series, "requests"),
    )
    mt = r.mapping(d.get("memoryTrend", {}), _child(where, "memoryTrend"),
                   ("enabled", "series", "group", "critical", "allowedGrowthPercentPerMinute", "minIntervals"))
    p, dt = _child(where, "memoryTrend"), defaults.memory_trend
    trend = MemoryTrend(
        enabled=r.boolean(mt, "enabled", p, dt.enabled),
        series=r.text(mt, "series", p, dt.series, "rss_bytes"),
        group=r.text(mt, "group", p, dt.group, "memory"),
        critical=r.boolean(mt, "critical", p, dt.critical),
        allowed_growth_percent_per_minute=r.number(mt, "allowedGrowthPercentPerMinute", p,
                                                   dt.allowed_growth_percent_per_minute, 0.0, math.inf, "2"),
        min_intervals=r.integer(mt, "minIntervals", p, dt.min_intervals, 3, "8"),
    )
    classifier = _classifier(r, d, where, defaults, metrics, trend)
    config = CanaryConfig(
        metrics=metrics,
        classifier=classifier,
        confidence=r.number(d, "confidence", where, defaults.confidence, 0.5, 1.0, "0.98", lo_open=True,
                            hi_open=True),
        early_pass=r.boolean(d, "earlyPass", where, defaults.early_pass),
        warmup_s=r.number(d, "warmupSeconds", where, defaults.warmup_s, 0.0, math.inf, "10"),
        sequential=sequential,
        minimum_evidence=evidence,
        memory_trend=trend,
    )
    if r.problems:
        raise CanaryConfigError(r.problems)
    return config


def _classifier(r: _Reader, d: dict[str, Any], where: str, defaults: CanaryConfig,
                metrics: tuple[MetricConfig, ...], trend: MemoryTrend) -> Classifier:
    """Parse group weights and score thresholds; every group in use needs a weight."""
    path = _child(where, "classifier")
    c = r.mapping(d.get("classifier", {}), path, ("groupWeights", "scoreThresholds"))
    groups = list(dict.fromkeys([m.group for m in metrics] + ([trend.group] if trend.enabled else [])))
    if "groupWeights" in c:
        weights: dict[str, float] = {}
        gw = c["groupWeights"]
        if not isinstance(gw, dict):
            r.fail(_child(path, "groupWeights"), f"{gw!r} is not a mapping of group to weight; use e.g. {{errors: 60, "
                   "latency: 40}")
            gw = {}
        for g in gw:
            weights[str(g)] = r.number(gw, g, _child(path, "groupWeights"), 0.0, 0.0, math.inf, "25")
    elif "metrics" in d:
        # Custom metrics without weights: every group counts the same.
        weights = {g: 100.0 / len(groups) for g in groups} if groups else {}
    else:
        weights = dict(defaults.classifier.group_weights)
    for g in groups:
        if g not in weights:
            used_by = "" if any(m.group == g for m in metrics) else (
                " (used by memoryTrend; or set memoryTrend.enabled: false)")
            r.fail(_child(path, "groupWeights"), f"has no weight for group {g!r}{used_by}; add e.g. {g}: 25")
    if groups and all(g in weights for g in groups) and all(weights[g] == 0.0 for g in groups):
        r.fail(_child(path, "groupWeights"), "gives every group weight 0; give at least one group a positive weight")
    st = r.mapping(c.get("scoreThresholds", {}), _child(path, "scoreThresholds"), ("pass", "marginal"))
    dc = defaults.classifier
    pass_score = r.number(st, "pass", _child(path, "scoreThresholds"), dc.pass_score, 0.0, 100.0, "95")
    marginal = r.number(st, "marginal", _child(path, "scoreThresholds"), dc.marginal_score, 0.0, 100.0, "75")
    if marginal > pass_score:
        r.fail(f"{path}.scoreThresholds.marginal", f"{_fmt(marginal)} is above pass ({_fmt(pass_score)}); "
               f"use a value at most {_fmt(pass_score)}, e.g. 75")
    return Classifier(group_weights=weights, pass_score=pass_score, marginal_score=marginal)


def load_canary_config(data: dict[str, Any] | None, *, where: str = "analysis") -> CanaryConfig:
    """Validate a mapping (e.g. the ``analysis`` section of config.yaml) into a CanaryConfig.

    None gives DEFAULT_CONFIG; missing sections keep their defaults; a given ``metrics``
    list replaces the default one. Raises CanaryConfigError naming each bad field.
    """
    if data is None:
        return DEFAULT_CONFIG
    return parse_config(data, where)


def load_canary_config_file(path: str | Path) -> CanaryConfig:
    """Read a YAML file holding an analysis configuration, optionally under a top-level ``analysis:`` key."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CanaryConfigError([f"{p}: cannot read the file ({exc.strerror or exc}); check the path"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise CanaryConfigError([f"{p}: is not valid YAML{line}; fix the syntax"]) from None
    if data is None:
        return DEFAULT_CONFIG
    wrapped = isinstance(data, dict) and set(data) == {"analysis"}
    try:
        return parse_config(data["analysis"] or {} if wrapped else data, "analysis" if wrapped else "")
    except CanaryConfigError as exc:
        raise CanaryConfigError([f"{p}: {problem}" for problem in exc.problems]) from None

