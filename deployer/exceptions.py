"""Errors of the deploy controller, all under DeployerError with structured attributes."""

from __future__ import annotations


class DeployerError(Exception):
    """Base class: every error the controller raises on purpose."""


class ConfigError(DeployerError):
    """A configuration value is wrong; the message names the field, the value and the fix."""

    def __init__(self, problems: list[str], *, source: str = "config.yaml") -> None:
        self.problems = problems
        self.source = source
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


class InvalidTransition(DeployerError):
    """An event that the deployment's current status does not accept."""

    def __init__(self, status: str, event: str) -> None:
        self.status = status
        self.event = event
        super().__init__(f"event {event!r} is not allowed in status {status!r}")


class HostFailed(DeployerError):
    """A host did not come up healthy on the requested version."""

    def __init__(self, host: str, version: str, reason: str) -> None:
        self.host = host
        self.version = version
        self.reason = reason
        super().__init__(f"host {host} failed on {version[:12]}: {reason}")


class SourceError(DeployerError):
    """The git source could not be read (missing repository, unknown branch or commit)."""


class BuildError(DeployerError):
    """An artifact could not be built from a commit."""


class NotFound(DeployerError):
    """A release, deployment or host that does not exist was asked for."""

    def __init__(self, kind: str, key: object) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"no {kind} {key!r}")


class Conflict(DeployerError):
    """An operator command that the current state does not allow (e.g. promote when idle)."""


class SchemaError(DeployerError):
    """The database schema is not what this version needs (and was not, or could not be, migrated)."""

    def __init__(self, message: str, *, current: str | None = None, head: str | None = None) -> None:
        self.current = current
        self.head = head
        super().__init__(message)


class RampError(DeployerError, ValueError):
    """A guarded rollout's ramp is wrong; the message names the field, the value and the fix."""

    def __init__(self, field: str, value: object, message: str) -> None:
        self.field = field
        self.value = value
        super().__init__(message)
