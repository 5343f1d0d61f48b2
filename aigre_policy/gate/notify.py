"""Notifications: who to tell when an action waits for an approval or an escalation waits.

``Notify`` holds the webhooks and the delivery policy; ``event_for`` turns a verdict that
waits for people into the event document; ``render`` gives the bytes a webhook receives
(generic JSON, or the Slack incoming-webhook shape ``{"text", "blocks"}``); ``signed``
the headers, with an HMAC-SHA256 signature on generic JSON when the webhook has a secret.
The outbox (``outbox.py``) keeps what is rendered and delivers it.

Everything the proposer wrote is data in these payloads: in Slack's markup ``&``, ``<``
and ``>`` are escaped, so an action cannot ping ``<!channel>`` or disguise a link.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from aigre_policy.gate.errors import GateError

FORMATS = ("json", "slack")
WAITING = ("require_approval", "escalate")  # the decisions that wait for people
MAX_TEXT = 2900  # Slack refuses a section over 3000 characters


@dataclass(frozen=True)
class Webhook:
    """One receiver: ``url``, its payload ``format`` (``json`` or ``slack``), and for
    ``json`` an optional ``secret`` that signs each body (``X-Aigre-Signature``)."""

    url: str
    format: Literal["json", "slack"] = "json"
    secret: str | None = None
    name: str = ""  # how the outbox names it; the URL when empty
    timeout: float = 5.0  # seconds for one delivery (connect, then read)
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise GateError(f"a webhook URL must be http(s): {self.url!r}")
        if self.format not in FORMATS:
            raise GateError(f"a webhook's format is json or slack, not {self.format!r}")
        if self.timeout <= 0:
            raise GateError("a webhook's timeout must be positive")
        if not self.name:
            object.__setattr__(self, "name", self.url)


@dataclass(frozen=True)
class Notify:
    """Webhooks told when a decision waits for people, and how delivery is retried.

    ``inbox_url``: the server's ``/inbox/``, linked from each notification. Delivery is
    at least once: a failed attempt (a network error, a timeout, a 5xx, 408, 429) is
    retried after ``backoff`` seconds, doubling each time up to ``max_backoff``, until
    ``max_attempts``; another 4xx fails at once. ``renotify_after``: the same action
    waiting for the same groups is announced again only after this long (``None``:
    every time it is checked). ``background``: a worker thread delivers; without it
    ``Notifier.deliver_due()`` does (a cron job, a test).
    """

    webhooks: tuple[Webhook, ...]
    inbox_url: str | None = None
    on: tuple[str, ...] = WAITING
    max_attempts: int = 8
    backoff: float = 2.0
    max_backoff: float = 600.0
    renotify_after: timedelta | None = timedelta(hours=1)
    poll_seconds: float = 1.0
    background: bool = True

    def __post_init__(self) -> None:
        hooks = (self.webhooks,) if isinstance(self.webhooks, Webhook) else self.webhooks
        object.__setattr__(self, "webhooks", tuple(hooks))
        if not self.webhooks or not all(isinstance(w, Webhook) for w in self.webhooks):
            raise GateError("notify needs one webhook or more")
        names = [w.name for w in self.webhooks]
        if len(set(names)) != len(names):
            raise GateError("two webhooks have the same name")
        if unknown := set(self.on) - set(WAITING):
            raise GateError(f"notifications are for {', '.join(WAITING)}, not {sorted(unknown)}")
        if self.max_attempts < 1 or self.backoff <= 0 or self.max_backoff < self.backoff:
            raise GateError("max_attempts >= 1 and 0 < backoff <= max_backoff")


def as_notify(value: Notify | Webhook | Sequence[Webhook]) -> Notify:
    """``Gate(notify=...)`` takes a ``Notify``, one ``Webhook`` or a list of them."""
    if isinstance(value, Notify):
        return value
    if isinstance(value, Webhook):
        return Notify((value,))
    return Notify(tuple(value))


def waits(verdict: Any, on: Sequence[str] = WAITING) -> bool:
    """The verdict waits for people: an approval, or a reviewer tier (never a fault's)."""
    return verdict.decision in on and not verdict.fail_closed


def event_for(verdict: Any, at: str, inbox_url: str | None) -> dict[str, Any]:
    """The generic event document of a verdict that waits for people."""
    action = verdict.input.get("action") if isinstance(verdict.input, dict) else None
    action = action if isinstance(action, dict) else {}
    approval = verdict.decision == "require_approval"
    fired = [
        {
            "id": r.get("id"),
            "verdict": r.get("verdict"),
            "severity": r.get("severity"),
            "message": r.get("message"),
        }
        for r in verdict.fired
        if r.get("verdict") in ("deny", "require_approval", "escalate")
    ]
    actor = verdict.gate.get("actor") if isinstance(verdict.gate, dict) else None
    event: dict[str, Any] = {
        "type": "approval.required" if approval else "escalation.waiting",
        "decision_id": verdict.decision_id,
        "decision": verdict.decision,
        "action_digest": verdict.action_digest,
        "approver_groups": list(verdict.approvers) if approval else [],
        "escalate_to": list(verdict.escalate_to) if not approval else [],
        "summary": _summary(verdict, action, actor),
        "rules": fired,
        # the proposer's claims, as written: a receiver shows them as such
        "action": {k: action[k] for k in ("id", "kind", "target", "environment") if k in action},
        "actor": actor,
        "pack": dict(verdict.pack),
        "at": at,
    }
    if inbox_url:
        event["inbox_url"] = inbox_url
    return event


def _summary(verdict: Any, action: Mapping[str, Any], actor: Any) -> str:
    who = actor.get("id") if isinstance(actor, Mapping) else None
    what = f"{action.get('kind', '?')} on {action.get('target', '?')}"
    if action.get("environment"):
        what += f" ({action['environment']})"
    by = f"{who} proposes" if who else "an unauthenticated caller proposes"
    if verdict.decision == "require_approval":
        waiting = f"waits for an approval by {' or '.join(verdict.approvers) or 'nobody named'}"
    else:
        waiting = f"waits for a reviewer: {', '.join(verdict.escalate_to) or 'escalated'}"
    return f"{by} {what}; it {waiting}"


def render(event: Mapping[str, Any], format: str) -> bytes:
    """The body a webhook of ``format`` receives (compact JSON, keys sorted)."""
    document = slack_message(event) if format == "slack" else event
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def slack_escape(text: Any) -> str:
    """Text safe in Slack's mrkdwn: its control characters escaped (Slack's own rule)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(event: Mapping[str, Any]) -> dict[str, Any]:
    """The Slack incoming-webhook shape: ``text`` (the fallback) and Block Kit ``blocks``."""
    head = "Approval needed" if event["type"] == "approval.required" else "Escalation waiting"
    summary = slack_escape(event["summary"])
    rules = "\n".join(
        f"• `{slack_escape(r['id'])}` ({slack_escape(r['verdict'])}): {slack_escape(r['message'])}"
        for r in event.get("rules", [])
    )
    body = f"*{head}*: {summary}" + (f"\n{rules}" if rules else "")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": body[:MAX_TEXT]}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"decision `{slack_escape(event['decision_id'])}` · action "
                    f"`{slack_escape(event['action_digest'][:19])}` · pack "
                    f"{slack_escape(event['pack'].get('name', ''))}",
                }
            ],
        },
    ]
    if event.get("inbox_url"):
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the inbox"},
                        "url": event["inbox_url"],
                    }
                ],
            }
        )
    return {"text": f"{head}: {summary}"[:MAX_TEXT], "blocks": blocks}


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with the secret over ``<timestamp>.<body>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def signed(webhook: Webhook, delivery_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers of one delivery: the idempotency key (the same on every retry) and,
    for generic JSON with a secret, the timestamp and the signature."""
    headers = {
        **webhook.headers,
        "Content-Type": "application/json",
        "Idempotency-Key": delivery_id,
        "X-Aigre-Delivery": delivery_id,
    }
    if webhook.format == "json" and webhook.secret:
        headers["X-Aigre-Timestamp"] = str(timestamp)
        headers["X-Aigre-Signature"] = signature(webhook.secret, timestamp, body)
    return headers
