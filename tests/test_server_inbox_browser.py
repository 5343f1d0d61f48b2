"""The approvals inbox in a real browser: Debian's Chromium, driven by Playwright, against
``aigre-policy serve`` on 127.0.0.1.

An agent's action is held (``require_approval``) over ``/v1/check``; an approver signs in,
sees the evidence, approves, and the same action is then allowed. A form without its CSRF
token, a form posted from another site, and a self-approval are refused. What the
proposer wrote shows as text and runs nothing.

Skipped, with the reason, when Chromium or Playwright is missing; failed instead when
``AIGRE_REQUIRE_SERVICES=1``. ``AIGRE_INBOX_SCREENSHOT=PATH`` keeps the inbox's
screenshot there (docs/img/inbox.png is one).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving import ROOT, free_port, serve_process

pytest.importorskip("starlette")

from aigre_policy.server.identity import key_digest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BASELINE = ROOT / "policy_packs" / "aigre-baseline"


def _grant() -> dict[str, Any]:
    """The grant, asked now: the server runs on the real clock and the pack holds back
    proposals older than its max_request_age (15m), so the time is taken when a test runs,
    not when the module is collected. It is for a day: the proposer is an agent, and the
    pack denies an agent's standing admin grant in production
    (standing-privileged-grant-by-agent) but holds a bounded one for security."""
    now = datetime.now(UTC)
    return {
        **json.loads((ROOT / "examples" / "server" / "grant.json").read_text()),
        "requested_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "access": {
            "principal": "user/k.mensah",
            "role": "role/prod-billing-admin",
            "expires_at": (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


KEYS = {
    "deploy-bot": "bot-key-7e1d2c3b4a5f60718293a4b5c6d7e8f9",
    "fay": "fay-key-19a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4",
    "sam": "sam-key-c4b5a6f7e8d9c0b1a2f3e4d5c6b7a8f9",
}
HOSTILE = '<script>document.title="owned"</script><img src=x onerror="alert(1)">'


def _unavailable(reason: str) -> None:
    if os.environ.get("AIGRE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and AIGRE_REQUIRE_SERVICES=1")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the module: each test asks about an action of its own."""
    tmp_path = tmp_path_factory.mktemp("inbox")
    keys = [
        {
            "name": name,
            "sha256": key_digest(key),
            "actor": {
                "id": name,
                "kind": "automation" if name == "deploy-bot" else "human",
                "trust": 3,
            },
            "scopes": ["check"] if name == "deploy-bot" else ["check", "approve", "read"],
        }
        for name, key in KEYS.items()
    ]
    config = {
        "ledger": f"sqlite:///{tmp_path / 'ledger.db'}",
        "log": str(tmp_path / "decisions.jsonl"),
        "directory": {"security": ["fay", "sam"]},
        "auth": {"api_keys": keys},
        "reload": False,
    }
    path = tmp_path / "server.yaml"
    path.write_text(json.dumps(config))
    with serve_process(str(BASELINE), "--config", str(path)) as url:
        yield url


def _check(url: str, who: str, action: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {KEYS[who]}"}
    return httpx.post(f"{url}/v1/check", json=action, headers=headers, timeout=30).json()


def _pending_ids(url: str) -> list[str]:
    headers = {"Authorization": f"Bearer {KEYS['fay']}"}
    found = httpx.get(f"{url}/v1/approvals?state=pending", headers=headers, timeout=30).json()
    return [item["decision_id"] for item in found["approvals"]]


def _sign_in(page: Any, url: str, who: str) -> None:
    page.goto(f"{url}/inbox/")
    assert page.url.endswith("/inbox/sign-in")
    page.fill("#credential", KEYS[who])
    page.click("form.sign-in button")
    page.wait_for_url(f"{url}/inbox/")


@contextlib.contextmanager
def _other_site(html: str) -> Iterator[str]:
    """A page served from ``localhost``: another site than ``127.0.0.1``."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(html.encode())

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    site = http.server.ThreadingHTTPServer(("127.0.0.1", port), Page)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{port}/"
    finally:
        site.shutdown()
        site.server_close()


def test_an_approver_approves_an_agents_action_in_the_browser(server, browser, tmp_path):
    action = {**_grant(), "actor": {"kind": "automation", "id": "deploy-bot", "trust": 3}}
    action["justification"] = {"signal": "ticket", "ref": "ACCESS-2291", "summary": HOSTILE}
    held = _check(server, "deploy-bot", action)
    assert held["decision"] == "require_approval"
    decision_id, digest = held["decision_id"], held["gate"]["action_digest"]

    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    _sign_in(page, server, "fay")

    # the evidence: the rule, its message, the values it read, the action and its digest
    card = page.locator(f"#decision-{decision_id}")
    text = card.inner_text()
    assert "admin-role-grant" in text
    assert "security must approve it" in text
    assert "context.actor.id" in text and "deploy-bot" in text
    assert digest in text
    assert "ACCESS-2291" in text
    # what the proposer wrote is text on the page, and ran nothing
    card.locator("details summary").click()
    assert HOSTILE in card.locator("pre.action").inner_text().replace('\\"', '"')
    assert page.title() != "owned" and dialogs == []
    assert page.locator("script").count() == 0
    screenshot = tmp_path / "inbox.png"
    card.locator("details summary").click()
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    keep = os.environ.get("AIGRE_INBOX_SCREENSHOT")
    if keep:
        Path(keep).write_bytes(screenshot.read_bytes())

    # a form whose CSRF token was taken out is refused
    card.locator("input[name=csrf]").evaluate("input => input.remove()")
    with page.expect_response(f"{server}/inbox/{decision_id}/approve") as refused:
        card.locator("button.approve").click()
    assert refused.value.status == 403
    assert "CSRF token is missing or wrong" in page.inner_text("main")
    assert decision_id in _pending_ids(server)

    # the same approval posted from another site is refused
    attack = (
        f'<form method="post" action="{server}/inbox/{decision_id}/approve">'
        f'<input name="digest" value="{digest}"><input name="group" value="security">'
        '<input name="csrf" value="guessed"><button id="go">go</button></form>'
    )
    with _other_site(attack) as evil:
        attacker = context.new_page()
        attacker.goto(evil)
        with attacker.expect_response(f"{server}/inbox/{decision_id}/approve") as forged:
            attacker.click("#go")
        assert forged.value.status == 403
        attacker.close()
    assert decision_id in _pending_ids(server)

    # approved from the inbox: the same action is then allowed, resting on fay's approval
    page.goto(f"{server}/inbox/")
    page.locator(f"#decision-{decision_id} button.approve").click()
    page.wait_for_url(f"{server}/inbox/")
    assert "Approved iam_grant for security" in page.inner_text("main")
    assert decision_id not in _pending_ids(server)
    allowed = _check(server, "deploy-bot", action)
    assert allowed["decision"] == "allow"
    assert [a["by"] for a in allowed["gate"]["approvals"]["counted"]] == ["fay"]
    context.close()


def test_an_approver_cannot_approve_their_own_action_in_the_browser(server, browser):
    action = {**_grant(), "target": "role/prod-billing-admin:user/sam"}
    held = _check(server, "sam", action)
    assert held["decision"] == "require_approval"
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, server, "sam")
    card = page.locator(f"#decision-{held['decision_id']}")
    assert "You proposed this action" in card.inner_text()
    with page.expect_response(f"{server}/inbox/{held['decision_id']}/approve") as answer:
        card.locator("button.approve").click()
    assert answer.value.status == 403
    assert "`sam` proposed this action and cannot approve it" in page.inner_text("main")
    assert _check(server, "sam", action)["decision"] == "require_approval"
    context.close()
