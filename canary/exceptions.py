"""Errors of the canary analyzer, all under CanaryError with structured attributes."""

from __future__ import annotations


class CanaryError(Exception):
    """Base class: every error the canary analyzer raises on purpose."""


class CanaryConfigError(CanaryError):
    """An analysis configuration is wrong; each problem names the field, the value and the fix."""

    def __init__(self, problems: list[str]) -> None:
        """Keep the individual problems; the message lists them one per line."""
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class InvalidSamples(CanaryError):
    """A samples document does not have the expected shape; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        """Record which field is wrong and why."""
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class SourceError(CanaryError):
    """A metrics source could not be read (host down, Prometheus unreachable, bad answer)."""

    def __init__(self, source: str, reason: str) -> None:
        """Record which source failed and why."""
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")
