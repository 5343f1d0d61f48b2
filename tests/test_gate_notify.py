"""Notifications: a durable outbox in the ledger, delivered over real HTTP to a receiver on
127.0.0.1, at least once, with retries, never blocking or changing a decision. Every test
runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import gate_action, write_pack

from aigre_policy.gate import FakeClock, Gate, StaticDirectory
from aigre_policy.gate.notify import Notify, Webhook, signature

POLICY = """
rule big-spend {
  require_approval by ["finops"] when action.cost.estimated_usd > 100
}
rule huge-patch {
  escalate to ["llm-judge"] when action.change.lines > 400
}
"""


class Receiver:
    """A webhook receiver on 127.0.0.1: answers each POST with the next planned status
    (200 once the plan runs out), or sleeps ``hang`` seconds first."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.plan: list[int | str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                step = outer.plan.pop(0) if outer.plan else 200
                if step == "hang":
                    time.sleep(1.5)
                    step = 200
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(int(step))
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    return write_pack(tmp_path / "pack", POLICY)


def notify(*hooks: Webhook, **options: Any) -> Notify:
    options.setdefault("background", False)
    options.setdefault("backoff", 0.05)
    options.setdefault("max_backoff", 0.2)
    return Notify(tuple(hooks), inbox_url="https://aigre.example/inbox/", **options)


def gate_over(pack: Path, ledger: str, how: Notify, **options: Any) -> Gate:
    return Gate.from_pack(
        pack,
        ledger=ledger,
        clock=FakeClock("2025-03-10T12:00:00Z"),
        directory=StaticDirectory({"finops": ["fay"]}),
        notify=how,
        identity={"id": "agent-7", "kind": "llm", "trust": 3},
        **options,
    )


def drain(gate: Gate, rounds: int = 40) -> None:
    """Deliver what is due until the outbox has nothing pending (retries wait their delay)."""
    assert gate.notifier is not None
    for _ in range(rounds):
        gate.notifier.deliver_due()
        if all(r["state"] != "pending" for r in gate.notifier.rows()):
            return
        time.sleep(0.05)


def test_a_decision_waiting_for_approval_is_delivered_once(
    pack: Path, ledger_url: str, receiver: Receiver
) -> None:
    hook = Webhook(receiver.url, name="finops-channel", secret="s3cret-s3cret")
    with gate_over(pack, ledger_url, notify(hook)) as gate:
        verdict = gate.check(gate_action(cost={"estimated_usd": 500}))
        assert verdict.decision == "require_approval"
        queued = verdict.gate["notify"]["queued"]
        assert [q["webhook"] for q in queued] == ["finops-channel"]
        assert gate.check(gate_action(n=2)).decision == "allow"  # nothing to tell
        drain(gate)
        drain(gate)  # nothing left: no second delivery
        assert [r["state"] for r in gate.notifier.rows()] == ["delivered"]
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    event = json.loads(body)
    assert event["type"] == "approval.required"
    assert event["decision_id"] == verdict.decision_id
    assert event["action_digest"] == verdict.action_digest
    assert event["approver_groups"] == ["finops"]
    assert event["inbox_url"] == "https://aigre.example/inbox/"
    assert event["summary"].startswith("agent-7 proposes scale on checkout (production)")
    assert event["rules"][0]["id"] == "big-spend"
    assert headers["idempotency-key"] == event["id"] == queued[0]["id"]
    # the generic payload is signed: HMAC-SHA256 over "<timestamp>.<body>"
    stamp = int(headers["x-aigre-timestamp"])
    expected = hmac.new(b"s3cret-s3cret", f"{stamp}.".encode() + body, hashlib.sha256)
    assert headers["x-aigre-signature"] == f"sha256={expected.hexdigest()}"
    assert headers["x-aigre-signature"] == signature("s3cret-s3cret", stamp, body)


def test_the_slack_payload_has_the_incoming_webhook_shape_and_escapes_claims(
    pack: Path, ledger_url: str, receiver: Receiver
) -> None:
    hook = Webhook(receiver.url, format="slack", secret="unused-for-slack")
    with gate_over(pack, ledger_url, notify(hook)) as gate:
        hostile = gate_action(
            cost={"estimated_usd": 500}, target="<!channel> <https://evil.example|click>"
        )
        gate.check(hostile)
        drain(gate)
    headers, body = receiver.received[0]
    message = json.loads(body)
    assert set(message) == {"text", "blocks"}
    assert [b["type"] for b in message["blocks"]] == ["section", "context", "actions"]
    assert message["blocks"][2]["elements"][0]["url"] == "https://aigre.example/inbox/"
    text = message["blocks"][0]["text"]["text"]
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt;" in text and "&lt;!channel&gt;" in message["text"]
    assert "x-aigre-signature" not in headers  # Slack checks no signature
    assert headers["idempotency-key"]


def test_an_escalation_that_waits_is_announced(
    pack: Path, ledger_url: str, receiver: Receiver
) -> None:
    from aigre_policy.gate import FunctionReviewer, ReviewAnswer

    passing = FunctionReviewer("llm-judge", lambda r: ReviewAnswer("escalate", "unsure"))
    with gate_over(pack, ledger_url, notify(Webhook(receiver.url)), reviewers=[passing]) as gate:
        verdict = gate.check(gate_action(change={"type": "code", "lines": 900}))
        assert verdict.decision == "escalate"
        drain(gate)
    event = receiver.bodies()[0]
    assert event["type"] == "escalation.waiting"
    assert event["escalate_to"] == ["llm-judge"]


def test_deliveries_are_retried_after_500s_and_a_timeout_with_the_same_key(
    pack: Path, ledger_url: str, receiver: Receiver
) -> None:
    receiver.plan = [500, 503, "hang"]
    hook = Webhook(receiver.url, timeout=0.5)
    with gate_over(pack, ledger_url, notify(hook)) as gate:
        gate.check(gate_action(cost={"estimated_usd": 500}))
        drain(gate)
        time.sleep(1.2)  # the hung request's answer arrives after the client gave up
        drain(gate)
        (row,) = gate.notifier.rows()
    assert row["state"] == "delivered" and row["attempts"] == 4
    keys = {headers["idempotency-key"] for headers, _ in receiver.received}
    assert keys == {row["id"]}  # every attempt carries the same idempotency key
    assert len(receiver.received) == 4  # 500, 503, the hung one, then 200


def test_a_refusing_receiver_fails_the_row_and_never_the_decision(
    pack: Path, ledger_url: str, receiver: Receiver
) -> None:
    receiver.plan = [404]
    with gate_over(pack, ledger_url, notify(Webhook(receiver.url))) as gate:
        verdict = gate.check(gate_action(cost={"estimated_usd": 500}))
        drain(gate)
        (row,) = gate.notifier.rows()
        assert row["state"] == "failed" and row["last_error"].startswith("HTTP 404")
        assert verdict.decision == "require_approval"  # what the rules said, unchanged


def test_attempts_stop_at_max_attempts(pack: Path, ledger_url: str, receiver: Receiver) -> None:
    receiver.plan = [500] * 10
    with gate_over(pack, ledger_url, notify(Webhook(receiver.url), max_attempts=3)) as gate:
        gate.check(gate_action(cost={"estimated_usd": 500}))
        drain(gate)
        (row,) = gate.notifier.rows()
    assert (row["state"], row["attempts"], len(receiver.received)) == ("failed", 3, 3)


def test_the_same_action_waiting_again_is_not_announced_twice(
    pack: Path, ledger_url: str, receiver: Receiver
) -> None:
    with gate_over(pack, ledger_url, notify(Webhook(receiver.url))) as gate:
        first = gate.check(gate_action(cost={"estimated_usd": 500}))
        again = gate.check(gate_action(cost={"estimated_usd": 500}))
        other = gate.check(gate_action(n=3, cost={"estimated_usd": 700}))
        drain(gate)
    assert first.gate["notify"]["queued"]
    assert again.gate["notify"] == {"queued": [], "already_notified": [receiver.url]}
    assert other.gate["notify"]["queued"]
    assert len(receiver.received) == 2


CRASHING = """
import os, sys
from aigre_policy.gate import Gate, FakeClock
from aigre_policy.gate.notify import Notify, Webhook
sys.path.insert(0, "tests")
from conftest import gate_action
gate = Gate.from_pack(sys.argv[1], ledger=sys.argv[2], clock=FakeClock("2025-03-10T12:00:00Z"),
                      notify=Notify((Webhook(sys.argv[3]),), background=False))
verdict = gate.check(gate_action(cost={"estimated_usd": 500}))
print(verdict.decision, flush=True)
os._exit(0)  # dies between the decision and any delivery
"""


def test_a_crash_before_delivery_delivers_after_restart(
    pack: Path, ledger_url: str, receiver: Receiver
) -> None:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", CRASHING, str(pack), ledger_url, receiver.url],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "require_approval", done.stderr
    assert receiver.received == []
    how = Notify((Webhook(receiver.url),), background=True, poll_seconds=0.05)
    with gate_over(pack, ledger_url, how):  # the restarted process's worker finds it
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [e["type"] for e in receiver.bodies()] == ["approval.required"]


def test_a_receiver_that_is_down_never_blocks_checks(pack: Path, ledger_url: str) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    how = Notify(
        (Webhook(dead, timeout=2),),
        background=True,
        poll_seconds=0.01,
        backoff=0.01,
        max_backoff=0.02,
        renotify_after=None,
    )
    with gate_over(pack, ledger_url, how) as gate:
        started = time.perf_counter()
        verdicts = [gate.check(gate_action(n, cost={"estimated_usd": 500})) for n in range(20)]
        elapsed = time.perf_counter() - started
    assert {v.decision for v in verdicts} == {"require_approval"}
    assert all(v.gate["notify"]["queued"] for v in verdicts)
    assert elapsed < 5, elapsed


def test_a_gate_without_a_ledger_refuses_notifications(pack: Path) -> None:
    from aigre_policy.gate import GateError

    with pytest.raises(GateError, match="need a ledger"):
        Gate.from_pack(pack, notify=Webhook("http://127.0.0.1:9/hook"))


def test_a_notification_that_cannot_be_queued_never_changes_the_decision(
    pack: Path, ledger_url: str, ledger_sql: Any, receiver: Receiver
) -> None:
    with gate_over(pack, ledger_url, notify(Webhook(receiver.url))) as gate:
        gate.check(gate_action(n=9))  # the ledger's tables exist
        ledger_sql("CREATE TABLE notification_outbox (unrelated INTEGER)")  # not ours
        verdict = gate.check(gate_action(cost={"estimated_usd": 500}))
        assert verdict.decision == "require_approval" and not verdict.fail_closed
        assert verdict.gate["notify"]["error"].startswith("not queued")
        assert gate.approve(verdict, by="fay", group="finops")  # the decision was kept
        assert gate.check(gate_action(cost={"estimated_usd": 500})).decision == "allow"


def test_notify_needs_a_webhook() -> None:
    from aigre_policy.gate import GateError

    with pytest.raises(GateError, match="one webhook or more"):
        Notify(())


def test_delivered_rows_are_deleted_after_a_week_and_failed_ones_kept(
    pack: Path, ledger_url: str, receiver: Receiver
) -> None:
    now = [time.time()]
    receiver.plan = [200, 404]
    with gate_over(pack, ledger_url, notify(Webhook(receiver.url))) as gate:
        gate.notifier.timer = lambda: now[0]
        gate.check(gate_action(1, cost={"estimated_usd": 500}))
        gate.check(gate_action(2, cost={"estimated_usd": 700}))
        drain(gate)
        assert sorted(r["state"] for r in gate.notifier.rows()) == ["delivered", "failed"]
        now[0] += 8 * 86400
        gate.notifier.deliver_due()
        assert [r["state"] for r in gate.notifier.rows()] == ["failed"]
