"""Webhook intake from GitHub and GitLab: verify, refuse replays, turn events into gate actions.

* GitHub: `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body>` with the shared
  secret, compared in constant time; `X-GitHub-Event`; `X-GitHub-Delivery` is the id.
* GitLab: `X-Gitlab-Token` equal to the shared token (constant time); `X-Gitlab-Event`;
  `X-Gitlab-Event-UUID` (or `Idempotency-Key`) is the id.

A delivery id is accepted once; the same id again is a replay (409). Nothing is triggered
before the signature, the id and the JSON have all been checked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.engine import Engine

from deployer import store
from deployer.exceptions import DeployerError
from deployer.gate_service import GateService, RefUpdate
from deployer.model import WebhookDelivery
from deployer.settings import Settings

Intent = Callable[[], tuple[str, list[str]]]  # what an accepted event does, run after it is remembered
PR_CHECK_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review"})
MR_CHECK_ACTIONS = frozenset({"open", "update", "reopen"})


class WebhookRefused(DeployerError):
    """A delivery that is not accepted; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(detail)


class WebhookResult(BaseModel):
    """What an accepted delivery did."""

    provider: str
    event: str
    delivery: str
    action: str
    checks: list[str] = []


def github_signature(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _header(headers: dict[str, str], name: str) -> str:
    return headers.get(name.lower(), "").strip()


@dataclass
class WebhookIntake:
    engine: Engine
    settings: Settings
    gate: GateService

    def receive(self, provider: str, headers: dict[str, str], body: bytes) -> WebhookResult:
        """Verify and act on one delivery (headers with lower-case names); WebhookRefused otherwise."""
        if provider == "github":
            event, delivery = self._verify_github(headers, body)
        elif provider == "gitlab":
            event, delivery = self._verify_gitlab(headers, body)
        else:
            raise WebhookRefused(404, f"unknown webhook provider {provider!r}; use github or gitlab")
        payload = _json(body)
        actor = f"webhook:{provider}"
        # Read every field first, so a malformed event is refused before anything is triggered or remembered.
        intent = (self._github_event if provider == "github" else self._gitlab_event)(event, payload, actor)
        self._remember(provider, delivery, event)
        action, checks = intent()
        return WebhookResult(provider=provider, event=event, delivery=delivery, action=action, checks=checks)

    # --- verification --------------------------------------------------------------------------

    def _verify_github(self, headers: dict[str, str], body: bytes) -> tuple[str, str]:
        secret = self.settings.webhooks.github_secret
        if not secret:
            raise WebhookRefused(403, "GitHub webhooks are not enabled: set webhooks.github_secret "
                                      "(DEPLOYER__WEBHOOKS__GITHUB_SECRET) to the webhook's secret")
        sent = _header(headers, "x-hub-signature-256")
        if not sent:
            raise WebhookRefused(401, "missing X-Hub-Signature-256 header: configure the webhook with a secret")
        if not hmac.compare_digest(sent.encode(), github_signature(secret, body).encode()):
            raise WebhookRefused(401, "X-Hub-Signature-256 does not match the body: wrong secret, or the body "
                                      "was changed on the way")
        return self._event_and_delivery(headers, "x-github-event", ("x-github-delivery",), "GitHub")

    def _verify_gitlab(self, headers: dict[str, str], body: bytes) -> tuple[str, str]:
        token = self.settings.webhooks.gitlab_token
        if not token:
            raise WebhookRefused(403, "GitLab webhooks are not enabled: set webhooks.gitlab_token "
                                      "(DEPLOYER__WEBHOOKS__GITLAB_TOKEN) to the webhook's secret token")
        sent = _header(headers, "x-gitlab-token")
        if not sent:
            raise WebhookRefused(401, "missing X-Gitlab-Token header: set the webhook's secret token")
        if not hmac.compare_digest(sent.encode(), token.encode()):
            raise WebhookRefused(401, "X-Gitlab-Token is wrong")
        return self._event_and_delivery(headers, "x-gitlab-event", ("x-gitlab-event-uuid", "idempotency-key"),
                                        "GitLab")

    @staticmethod
    def _event_and_delivery(headers: dict[str, str], event_header: str, id_headers: tuple[str, ...],
                            who: str) -> tuple[str, str]:
        event = _header(headers, event_header)
        if not event:
            raise WebhookRefused(400, f"missing {event_header} header: this is not a {who} webhook delivery")
        delivery = next((_header(headers, h) for h in id_headers if _header(headers, h)), "")
        if not delivery or len(delivery) > 150:
            raise WebhookRefused(400, f"missing or overlong delivery id ({' or '.join(id_headers)}); {who} sends "
                                      f"one with every delivery")
        return event, delivery

    def _remember(self, provider: str, delivery: str, event: str) -> None:
        try:
            with store.session_scope(self.engine) as session:
                session.add(WebhookDelivery(id=f"{provider}:{delivery}", event=event[:100]))
        except IntegrityError:
            raise WebhookRefused(409, f"delivery {delivery} was already received: a replay is ignored") from None

    # --- events --------------------------------------------------------------------------------

    def _push(self, update: RefUpdate, actor: str) -> Intent:
        def act() -> tuple[str, list[str]]:
            outcome = self.gate.pushed([update], actor=actor)
            return ("discovery and checks" if outcome.discovery else "checks"), [c.name for c in outcome.checks]
        return act

    def _checks(self, sha: str, ref: str, target: str, actor: str) -> Intent:
        def act() -> tuple[str, list[str]]:
            checks = self.gate.pull_request(sha=sha, ref=ref, target_branch=target, actor=actor)
            return "checks", [c.name for c in checks]
        return act

    def _merged(self, reason: str, actor: str) -> Intent:
        def act() -> tuple[str, list[str]]:
            self.gate.merged(actor=actor, reason=reason)
            return "discovery", []
        return act

    def _github_event(self, event: str, payload: dict[str, Any], actor: str) -> Intent:
        if event == "ping":
            return _nothing("pong")
        if event == "push":
            return self._push(_push_update(payload, "before", "after", "ref"), actor)
        if event == "pull_request":
            action = _field(payload, "action", str)
            pr = _field(payload, "pull_request", dict)
            number = _field(pr, "number", int) if "number" in pr else _field(payload, "number", int)
            head, base = _field(pr, "head", dict), _field(pr, "base", dict)
            if action == "closed" and pr.get("merged") is True:
                return self._merged(f"pull request #{number} merged", actor)
            if action in PR_CHECK_ACTIONS:
                return self._checks(_sha(_field(head, "sha", str)), f"refs/pull/{number}/head",
                                    _field(base, "ref", str), actor)
            return _nothing(f"ignored: pull_request action {action}")
        return _nothing(f"ignored: {event} events are not used")

    def _gitlab_event(self, event: str, payload: dict[str, Any], actor: str) -> Intent:
        kind = payload.get("object_kind")
        if event == "Push Hook" or kind == "push":
            return self._push(_push_update(payload, "before", "after", "ref"), actor)
        if event == "Merge Request Hook" or kind == "merge_request":
            attrs = _field(payload, "object_attributes", dict)
            action = str(attrs.get("action") or "")
            iid = _field(attrs, "iid", int)
            if action == "merge" or attrs.get("state") == "merged":
                return self._merged(f"merge request !{iid} merged", actor)
            if action in MR_CHECK_ACTIONS:
                last = _field(attrs, "last_commit", dict)
                return self._checks(_sha(_field(last, "id", str)), f"refs/merge-requests/{iid}/head",
                                    _field(attrs, "target_branch", str), actor)
            return _nothing(f"ignored: merge request action {action or 'none'}")
        return _nothing(f"ignored: {event} events are not used")


def _nothing(action: str) -> Intent:
    return lambda: (action, [])


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookRefused(400, f"the body is not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise WebhookRefused(400, f"the body is JSON {type(payload).__name__}, not an object")
    return payload


def _field(payload: dict[str, Any], name: str, kind: type) -> Any:
    value = payload.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise WebhookRefused(422, f"field {name!r} is missing or not a {kind.__name__} in the event")
    return value


def _sha(value: str) -> str:
    value = value.strip().lower()
    if not 7 <= len(value) <= 64 or any(c not in "0123456789abcdef" for c in value):
        raise WebhookRefused(422, f"{value[:80]!r} is not a commit sha")
    return value


def _push_update(payload: dict[str, Any], before: str, after: str, ref: str) -> RefUpdate:
    name = _field(payload, ref, str)
    if not name.startswith("refs/") or len(name) > 500:
        raise WebhookRefused(422, f"ref {name[:80]!r} is not a full ref name such as refs/heads/main")
    old = payload.get(before) or ""
    return RefUpdate(ref=name, before=old if isinstance(old, str) else "", after=_sha(_field(payload, after, str)))
