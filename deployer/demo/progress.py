"""Turn the controller's audit trail into a readable running commentary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deployer.service import DeployService

ARROWS = {"succeeded": "✔", "rolled_back": "✘", "tests_failed": "✘", "build_failed": "✘", "aborted": "■"}


class Progress:
    """Prints audit events it has not printed yet."""

    def __init__(self, service: DeployService, say: Callable[[str], None], *, verbose: bool = True) -> None:
        self.service = service
        self.say = say
        self.verbose = verbose
        self.last_id = 0

    def show(self) -> None:
        """Print every new event."""
        for view in self.service.events(after_id=self.last_id, limit=500):
            event = view.model_dump(mode="json", by_alias=True)
            self.last_id = event["id"]
            line = self.format(event)
            if line and self.verbose:
                self.say(line)

    @staticmethod
    def format(event: dict[str, Any]) -> str | None:
        """One line for an event, or None for the ones not worth a line."""
        kind, message = event["kind"], event["message"]
        release = f"release {event['release_id']}" if event.get("release_id") else ""
        if kind == "commit_discovered":
            return f"   noticed {message}"
        if kind == "release_created":
            return f"▶ {message}"
        if kind == "transition":
            reason = message.splitlines()[0] if message else ""
            return f"   {release}: {event['from']} → {event['to']}" + (f" — {reason[:160]}" if reason else "")
        if kind == "host_deployed":
            return f"     {message}"
        if kind == "host_failed":
            return f"   ! {message.splitlines()[0][:200]}"
        if kind == "release_finished":
            status = event["data"].get("status", "")
            return f"{ARROWS.get(status, '•')} {message}"
        if kind in ("bootstrap", "recovered", "awaiting_operator", "command", "lock", "unlock"):
            return f"   {message}"
        return None
