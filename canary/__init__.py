"""Canary analysis: judge a canary against a baseline started at the same moment.

The pure core (``judge``, ``replay``) takes samples and returns a ``Verdict``; the sources
(``canary.sources``: direct scrape or Prometheus) produce the samples; ``canary.report``
explains verdicts. This package knows nothing about the deploy controller or the dashboard.
"""

from __future__ import annotations

from .config import DEFAULT_CONFIG, CanaryConfig, load_canary_config, load_canary_config_file
from .exceptions import CanaryConfigError, CanaryError, InvalidSamples, SourceError
from .judge import judge, replay
from .report import explain_text, to_json
from .samples import Samples
from .verdict import Classification, Explanation, MetricResult, Result, Verdict

__all__ = [
    "DEFAULT_CONFIG",
    "CanaryConfig",
    "CanaryConfigError",
    "CanaryError",
    "Classification",
    "Explanation",
    "InvalidSamples",
    "MetricResult",
    "Result",
    "Samples",
    "SourceError",
    "Verdict",
    "explain_text",
    "judge",
    "load_canary_config",
    "load_canary_config_file",
    "replay",
    "to_json",
]
