"""Load an analysis configuration (Kayenta vocabulary) from a mapping or a YAML file, with clear errors.

The pydantic models of ``canary.config_model`` do the validation; this module turns their
errors into the configuration's style: every problem names the field path, the bad value
and a fix, e.g. ``analysis.classifier.scoreThresholds.pass: 120 is not between 0 and 100;
use e.g. 95``. Every problem is reported at once.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .config_model import (
    DEFAULT_CONFIG,
    CanaryConfig,
    Classifier,
    Direction,
    EffectSize,
    LatencyTail,
    MemoryTrend,
    MetricConfig,
    MinimumEvidence,
    NanStrategy,
    Outliers,
    OutlierStrategy,
    Profile,
    Routes,
    ScoreThresholds,
    Sequential,
    SuccessRate,
)
from .exceptions import CanaryConfigError

__all__ = [
    "DEFAULT_CONFIG", "CanaryConfig", "Classifier", "Direction", "EffectSize", "LatencyTail", "MemoryTrend",
    "MetricConfig", "MinimumEvidence", "NanStrategy", "Outliers", "OutlierStrategy", "Profile", "Routes", "ScoreThresholds",
    "Sequential", "SuccessRate", "load_canary_config", "load_canary_config_file",
]

_EXAMPLE_KEYS = "metrics, classifier, confidence"


def _path(where: str, loc: tuple[Any, ...]) -> str:
    """Return 'where.a.b[0].c' for a pydantic location."""
    out = where
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Return the model class that holds the field at loc (aliases as pydantic reports them)."""
    model: Any = CanaryConfig
    for part in loc:
        if isinstance(part, int):
            continue
        fields = {f.alias or name: f for name, f in model.model_fields.items()}
        field = fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        args = getattr(annotation, "__args__", ()) or (annotation,)
        nested = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nested is None:
            return None
        model = nested
    return model


def _aliases(model: type[BaseModel]) -> list[str]:
    """Return the YAML names of a model's fields."""
    return [f.alias or name for name, f in model.model_fields.items()]


def _problems(exc: ValidationError, where: str) -> list[str]:
    """Turn pydantic's errors into 'path: value is wrong; fix' lines."""
    out: list[str] = []
    for e in exc.errors():
        loc, kind, value = tuple(e["loc"]), e["type"], e.get("input")
        # A failed check on a tuple/dict item is reported on the item, not the container.
        loc = tuple(p for p in loc if p not in ("function-before[check(), float]",))
        path = _path(where, loc) or "(top level)"
        if kind == "canary":
            out.append(f"{path}: {e['msg']}")
        elif kind == "canary_many":
            for sub, message in e["ctx"]["problems"]:
                out.append(f"{_path(_path(where, loc), (sub,)) if sub else path}: {message}")
        elif kind == "extra_forbidden":
            model = _model_at(loc[:-1])
            allowed = _aliases(model) if model else []
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(allowed)}"
            out.append(f"{path}: is not a known field; {hint}")
        elif kind == "missing":
            model = _model_at(loc[:-1])
            field = model.model_fields.get(str(loc[-1])) if model else None
            extra = field.json_schema_extra if field is not None and isinstance(field.json_schema_extra, dict) else {}
            out.append(f"{path}: is missing; {extra.get('missing', 'add it')}")
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            model = _model_at(loc)
            keys = ", ".join(_aliases(model)[:3]) if model else _EXAMPLE_KEYS
            out.append(f"{path}: {value!r} is not a mapping; use keys like {keys}")
        elif kind in ("tuple_type", "list_type"):
            out.append(f"{path}: {value!r} is not a list; use e.g. [0.95, 0.99]")
        else:
            out.append(f"{path}: {value!r} {e['msg'].lower()}")
    return out


def parse_config(data: Any, where: str) -> CanaryConfig:
    """Validate data (missing sections keep their defaults); raise CanaryConfigError listing every problem."""
    if not isinstance(data, dict):
        raise CanaryConfigError([f"{where or '(top level)'}: {data!r} is not a mapping; use keys like {_EXAMPLE_KEYS}"])
    try:
        return CanaryConfig.model_validate(data)
    except ValidationError as exc:
        raise CanaryConfigError(_problems(exc, where)) from None


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
