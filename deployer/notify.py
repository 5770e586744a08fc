"""Notifications: tell chat rooms and other systems when a release starts, ships, fails, rolls back or waits.

The notifier follows the audit log (the database is the only thing it shares with the
controller), records one delivery row per event and URL, and POSTs them from its own
thread with retries and exponential back-off, so a slow or dead receiver can never hold
up a release. Every attempt's outcome is stored on the delivery.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from deployer import store
from deployer.model import AuditEvent, NotificationDelivery, utcnow
from deployer.settings import NotificationSettings

log = logging.getLogger(__name__)
FAILED_STATUSES = {"tests_failed", "build_failed", "rolled_back"}


def classify(event: AuditEvent) -> str | None:
    """Which notification an audit event is, if any: started, succeeded, failed, rolled_back or paused."""
    if event.kind == "transition" and event.event == "start":
        return "started"
    if event.kind == "transition" and (event.to_status or "").startswith("rolling_back"):
        return "rolled_back"
    if event.kind == "transition" and (event.to_status or "").startswith("paused"):
        return "paused"
    if event.kind == "awaiting_operator":
        return "paused"
    if event.kind == "release_finished":
        status = (event.data or {}).get("status", "")
        if status == "succeeded":
            return "succeeded"
        if status in FAILED_STATUSES:
            return "failed"
    return None


HEADLINES = {"started": "started", "succeeded": "is on the whole fleet", "failed": "failed",
             "rolled_back": "is being rolled back", "paused": "is paused and needs a human"}
EMOJI = {"started": ":rocket:", "succeeded": ":white_check_mark:", "failed": ":x:", "rolled_back": ":rewind:",
         "paused": ":raised_hand:"}


def payload(kind: str, event: AuditEvent, fmt: str) -> dict[str, Any]:
    """The body to POST: a generic JSON document, or Slack's incoming-webhook format."""
    what = f"release {event.release_id}" if event.release_id else "the pipeline"
    text = f"{what} {HEADLINES[kind]}" + (f": {event.message}" if event.message else "")
    if fmt == "slack":
        return {"text": f"{EMOJI[kind]} {text}",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"{EMOJI[kind]} *{text}*"}}]}
    return {"event": kind, "text": text, "release_id": event.release_id, "deployment_id": event.deployment_id,
            "actor": event.actor, "at": event.at.isoformat() if event.at else None, "message": event.message,
            "audit_event_id": event.id}


class Notifier:
    """Follows the audit log and delivers notifications from its own thread."""

    def __init__(self, *, engine: Engine, settings: NotificationSettings, poll_s: float = 0.5) -> None:
        self.engine = engine
        self.settings = settings
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cursor: int | None = None
        self._http = httpx.Client(timeout=settings.timeout)

    def start(self) -> None:
        """Run in a daemon thread until stop()."""
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close connections (pending deliveries resume on the next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.timeout + 2)
        self._http.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - a notifier problem must never stop it, or anything else
                log.exception("notifier step failed; trying again")
            self._stop.wait(self.poll_s)

    def step(self) -> int:
        """Record deliveries for new events, then attempt the due ones; returns how many were attempted."""
        self.collect()
        return self.send_due()

    def collect(self) -> None:
        """One delivery per (new notifiable audit event, configured target)."""
        with store.session_scope(self.engine) as session:
            if self._cursor is None:
                last = session.exec(select(func.max(NotificationDelivery.event_id))).one()
                # First start: history before now is not news.
                self._cursor = int(last if last is not None else
                                   (session.exec(select(func.max(AuditEvent.id))).one() or 0))
            events = list(session.exec(select(AuditEvent).where(col(AuditEvent.id) > self._cursor)
                                       .order_by(col(AuditEvent.id)).limit(500)))
            for event in events:
                assert event.id is not None
                self._cursor = event.id
                kind = classify(event)
                if kind is None:
                    continue
                for target in self.settings.targets:
                    if kind in target.events:
                        session.add(NotificationDelivery(event_id=event.id, kind=kind, url=target.url,
                                                         format=target.format,
                                                         payload=payload(kind, event, target.format)))

    def send_due(self) -> int:
        """POST every pending delivery whose time has come; failures are retried with back-off."""
        with store.session_scope(self.engine) as session:
            due = list(session.exec(select(NotificationDelivery).where(
                NotificationDelivery.status == "pending", col(NotificationDelivery.next_attempt_at) <= utcnow())
                .order_by(col(NotificationDelivery.id)).limit(50)))
        for delivery in due:
            if self._stop.is_set():
                break
            self._attempt(delivery)
        return len(due)

    def _attempt(self, delivery: NotificationDelivery) -> None:
        error = ""
        try:
            response = self._http.post(delivery.url, json=delivery.payload)
            if response.status_code >= 300:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        with store.session_scope(self.engine) as session:
            row = session.get(NotificationDelivery, delivery.id)
            assert row is not None
            row.attempts += 1
            if not error:
                row.status, row.delivered_at, row.last_error = "delivered", utcnow(), ""
            else:
                row.last_error = error
                if row.attempts > self.settings.retries:
                    row.status = "failed"
                    log.warning("notification %s to %s failed after %d attempts: %s", row.id, row.url,
                                row.attempts, error)
                else:
                    row.next_attempt_at = utcnow() + timedelta(
                        seconds=self.settings.backoff * (2 ** (row.attempts - 1)))
            session.add(row)
