"""The approvals inbox (``/inbox``) over plain HTTP: sign-in, the session cookie, CSRF,
approve and reject bound to the action's digest, escaping what the proposer wrote.

The same flows in a real browser are in ``test_server_inbox_browser.py``."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from serving import ROOT, app_server

pytest.importorskip("starlette")
pytest.importorskip("itsdangerous")

from aigre_policy.gate import FakeClock, Gate, StaticDirectory, open_ledger
from aigre_policy.gate.errors import ApprovalRejected
from aigre_policy.pack import load_pack
from aigre_policy.server.app import create_app
from aigre_policy.server.config import ServerConfig, load_config
from aigre_policy.server.identity import key_digest
from aigre_policy.server.runtime import Runtime

BASELINE = ROOT / "policy_packs" / "aigre-baseline"
# The proposer here is an agent ("bot"): the pack denies an agent's standing admin grant in
# production (standing-privileged-grant-by-agent) and holds a bounded one for security.
GRANT = {
    **json.loads((ROOT / "examples" / "server" / "grant.json").read_text()),
    "access": {
        "principal": "user/k.mensah",
        "role": "role/prod-billing-admin",
        "expires_at": "2025-03-13T12:00:00Z",
    },
}
KEYS = {
    "bot": "bot-key-3c0e9a7d52f14b8e9a6d1c2b3a4f5e60",
    "fay": "fay-key-81b2c3d4e5f60718293a4b5c6d7e8f90",
    "sam": "sam-key-0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "viv": "viv-key-aa55bb66cc77dd88ee99ff0011223344",
}
SCOPES = {
    "bot": ["check"],
    "fay": ["check", "approve", "read"],
    "sam": ["check", "approve", "read"],
    "viv": ["read"],
}
HOSTILE = '<script>document.title="owned"</script><img src=x onerror=alert(1)>'


def _config(tmp_path: Path, jwks_path: Path | None = None) -> dict[str, Any]:
    keys = [
        {
            "name": name,
            "sha256": key_digest(key),
            "actor": {"id": name, "kind": "automation" if name == "bot" else "human", "trust": 3},
            "scopes": SCOPES[name],
        }
        for name, key in KEYS.items()
    ]
    auth: dict[str, Any] = {"api_keys": keys}
    if jwks_path is not None:
        auth["jwt"] = {
            "jwks_file": str(jwks_path),
            "issuer": "https://idp.test",
            "leeway_seconds": 0,
        }
    return {
        "ledger": f"sqlite:///{tmp_path / 'l.db'}",
        "log": str(tmp_path / "log.jsonl"),
        "directory": {"security": ["fay", "sam"]},
        "auth": auth,
    }


def _server(tmp_path: Path, **extra: Any) -> Runtime:
    config = ServerConfig.model_validate({**_config(tmp_path), **extra})
    return Runtime(BASELINE, config, clock=FakeClock("2025-03-12T12:00:00Z"))


@pytest.fixture
def server(tmp_path: Path):
    with app_server(create_app(_server(tmp_path))) as url:
        yield url


def _check(url: str, who: str, action: dict[str, Any] | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {KEYS[who]}"}
    return httpx.post(f"{url}/v1/check", json=action or GRANT, headers=headers).json()


class Visitor:
    """A browser, as far as the inbox can tell: keeps the session cookie (httpx would not
    send a ``Secure`` cookie over http) and reads the CSRF token off the last page."""

    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, follow_redirects=False)
        self.cookie = ""
        self.page = ""

    def _keep(self, answer: httpx.Response) -> httpx.Response:
        for header in answer.headers.get_list("set-cookie"):
            self.cookie = header.split(";")[0]
        if answer.headers.get("content-type", "").startswith("text/html"):
            self.page = answer.text
        return answer

    def get(self, path: str) -> httpx.Response:
        return self._keep(self.http.get(path, headers={"cookie": self.cookie}))

    def post(self, path: str, form: dict[str, str], **headers: str) -> httpx.Response:
        answer = self.http.post(path, data=form, headers={"cookie": self.cookie, **headers})
        return self._keep(answer)

    @property
    def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.page)
        assert found, "no CSRF token on the page"
        return found.group(1)

    def sign_in(self, credential: str) -> httpx.Response:
        self.get("/inbox/sign-in")
        return self.post("/inbox/sign-in", {"csrf": self.csrf, "credential": credential})


def _signed_in(url: str, who: str) -> Visitor:
    visitor = Visitor(url)
    answer = visitor.sign_in(KEYS[who])
    assert answer.status_code == 303, answer.text
    assert visitor.get("/inbox/").status_code == 200
    return visitor


def _pending(url: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {KEYS['fay']}"}
    return httpx.get(f"{url}/v1/approvals?state=pending", headers=headers).json()["approvals"]


def test_the_inbox_needs_a_sign_in(server):
    visitor = Visitor(server)
    assert visitor.get("/inbox/").headers["location"] == "/inbox/sign-in"
    refused = visitor.sign_in("not-a-key")
    assert refused.status_code == 401
    assert "unknown API key" in refused.text
    assert visitor.get("/inbox/").status_code == 303


def test_the_session_cookie_is_httponly_samesite_strict_and_secure(server):
    visitor = Visitor(server)
    visitor.get("/inbox/sign-in")
    answer = visitor.post("/inbox/sign-in", {"csrf": visitor.csrf, "credential": KEYS["fay"]})
    cookie = answer.headers["set-cookie"].lower()
    assert cookie.startswith("aigre_inbox=")
    for flag in ("httponly", "samesite=strict", "secure", "path=/inbox"):
        assert flag in cookie


def test_a_session_signed_with_another_key_is_no_session(server):
    visitor = _signed_in(server, "fay")
    value, signature = visitor.cookie.rsplit(".", 1)
    visitor.cookie = f"{value}.{'A' * len(signature)}"
    assert visitor.get("/inbox/").status_code == 303


def test_the_inbox_shows_the_evidence_and_escapes_what_the_proposer_wrote(server):
    action = {**GRANT, "target": f"role/admin-{HOSTILE}", "change": {"type": "access"}}
    action["access"] = {**GRANT["access"], "role": f"role/admin-{HOSTILE}"}
    action["justification"] = {"signal": "ticket", "ref": "ACCESS-1", "summary": HOSTILE}
    verdict = _check(server, "bot", action)
    assert verdict["decision"] == "require_approval"
    visitor = _signed_in(server, "fay")
    page = visitor.get("/inbox/")
    html = page.text
    assert verdict["decision_id"] in html
    assert verdict["gate"]["action_digest"] in html
    assert "admin-role-grant" in html  # the fired rule
    assert "policies/access.aigre:" in html  # where it lives
    assert "context.actor.id" in html  # a value it read
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;document.title=&#34;owned&#34;&lt;/script&gt;" in html
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy


def test_an_approval_in_the_inbox_lets_the_same_action_through(server):
    held = _check(server, "bot")
    assert held["decision"] == "require_approval"
    visitor = _signed_in(server, "fay")
    form = {"csrf": visitor.csrf, "digest": held["gate"]["action_digest"], "group": "security"}
    answer = visitor.post(f"/inbox/{held['decision_id']}/approve", form)
    assert answer.status_code == 303
    assert "Approved iam_grant for security" in visitor.get("/inbox/").text
    assert _pending(server) == []
    again = _check(server, "bot")
    assert again["decision"] == "allow"
    assert [a["by"] for a in again["gate"]["approvals"]["counted"]] == ["fay"]


def test_a_post_without_the_csrf_token_is_refused(server):
    held = _check(server, "bot")
    visitor = _signed_in(server, "fay")
    path = f"/inbox/{held['decision_id']}/approve"
    form = {"digest": held["gate"]["action_digest"], "group": "security"}
    assert visitor.post(path, form).status_code == 403
    assert visitor.post(path, {**form, "csrf": "guessed"}).status_code == 403
    assert "CSRF token is missing or wrong" in visitor.page
    assert [p["decision_id"] for p in _pending(server)] == [held["decision_id"]]


def test_a_post_from_another_origin_is_refused_even_with_the_token(server):
    held = _check(server, "bot")
    visitor = _signed_in(server, "fay")
    path = f"/inbox/{held['decision_id']}/approve"
    form = {"csrf": visitor.csrf, "digest": held["gate"]["action_digest"], "group": "security"}
    assert visitor.post(path, form, origin="http://evil.test").status_code == 403
    assert visitor.post(path, form, **{"sec-fetch-site": "same-site"}).status_code == 403
    assert "from another site" in visitor.page
    assert len(_pending(server)) == 1


def test_a_refused_post_leaves_the_session_alone(server):
    # a forged POST arrives without the cookie (SameSite=Strict): answering it with a fresh
    # session cookie would overwrite the victim's and sign them out
    held = _check(server, "bot")
    form = {"csrf": "guessed", "digest": held["gate"]["action_digest"], "group": "security"}
    answer = httpx.post(f"{server}/inbox/{held['decision_id']}/approve", data=form)
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers
    forged = httpx.post(f"{server}/inbox/sign-in", data={"credential": KEYS["fay"]})
    assert forged.status_code == 403
    assert "set-cookie" not in forged.headers


def test_an_approver_cannot_approve_their_own_action(server, tmp_path):
    held = _check(server, "sam")
    assert held["decision"] == "require_approval"
    visitor = _signed_in(server, "sam")
    assert "You proposed this action" in visitor.page
    form = {"csrf": visitor.csrf, "digest": held["gate"]["action_digest"], "group": "security"}
    answer = visitor.post(f"/inbox/{held['decision_id']}/approve", form)
    assert answer.status_code == 403
    assert "`sam` proposed this action and cannot approve it" in answer.text
    assert _check(server, "sam")["decision"] == "require_approval"


def test_the_approval_is_bound_to_the_digest_the_page_showed(server):
    held = _check(server, "bot")
    visitor = _signed_in(server, "fay")
    form = {"csrf": visitor.csrf, "digest": "sha256:" + "0" * 64, "group": "security"}
    answer = visitor.post(f"/inbox/{held['decision_id']}/approve", form)
    assert answer.status_code == 409
    assert len(_pending(server)) == 1


def test_a_reader_without_the_approve_scope_sees_but_cannot_approve(server):
    held = _check(server, "bot")
    visitor = _signed_in(server, "viv")
    assert held["decision_id"] in visitor.page
    assert 'class="approve"' not in visitor.page
    form = {"csrf": visitor.csrf, "digest": held["gate"]["action_digest"], "group": "security"}
    assert visitor.post(f"/inbox/{held['decision_id']}/approve", form).status_code == 403
    assert len(_pending(server)) == 1


def test_a_caller_without_the_read_scope_cannot_sign_in(server):
    assert Visitor(server).sign_in(KEYS["bot"]).status_code == 403


def test_a_rejection_is_recorded_and_takes_the_action_off_the_list(tmp_path):
    runtime = _server(tmp_path)
    with app_server(create_app(runtime)) as url:
        held = _check(url, "bot")
        visitor = _signed_in(url, "fay")
        form = {"csrf": visitor.csrf, "digest": held["gate"]["action_digest"], "group": "security"}
        form["note"] = "no ticket for this"
        assert visitor.post(f"/inbox/{held['decision_id']}/reject", form).status_code == 303
        assert "Rejected iam_grant for security" in visitor.get("/inbox/").text
        assert _pending(url) == []
        headers = {"Authorization": f"Bearer {KEYS['fay']}"}
        rejected = httpx.get(f"{url}/v1/approvals?state=rejected", headers=headers).json()
        assert rejected["approvals"][0]["rejection"]["note"] == "no ticket for this"
        # the gate holds no rejection: the action still waits, and asks again
        assert _check(url, "bot")["decision"] == "require_approval"
        assert len(_pending(url)) == 1
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    entries = [e["body"] for e in logged if e["kind"] == "approval"]
    assert entries == [
        {
            "decision_id": held["decision_id"],
            "by": "fay",
            "group": "security",
            "action_digest": held["gate"]["action_digest"],
            "status": "rejected",
            "note": "no ticket for this",
            "declined": True,
        }
    ]


def test_sign_out_ends_the_session(server):
    visitor = _signed_in(server, "fay")
    assert visitor.post("/inbox/sign-out", {"csrf": visitor.csrf}).status_code == 303
    assert visitor.get("/inbox/").status_code == 303


def test_a_token_session_ends_when_the_token_expires(tmp_path):
    private = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    jwks = tmp_path / "keys.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "k1", "alg": "ES256"}]}))
    config = ServerConfig.model_validate(_config(tmp_path, jwks))
    runtime = Runtime(BASELINE, config)
    claims = {"sub": "fay", "iss": "https://idp.test", "exp": int(time.time()) + 2}
    token = jwt.encode(claims, private, algorithm="ES256", headers={"kid": "k1"})
    with app_server(create_app(runtime)) as url:
        visitor = Visitor(url)
        assert visitor.sign_in(token).status_code == 303
        assert visitor.get("/inbox/").status_code == 200
        time.sleep(2.2)
        assert visitor.get("/inbox/").status_code == 303


def test_without_an_identity_source_the_inbox_says_so(tmp_path):
    config = ServerConfig(ledger=f"sqlite:///{tmp_path / 'l.db'}")
    with app_server(create_app(Runtime(BASELINE, config))) as url:
        visitor = Visitor(url)
        assert "no identity source" in visitor.get("/inbox/sign-in").text
        assert visitor.post("/inbox/sign-in", {"credential": "anything"}).status_code == 403


def test_replicas_sharing_a_session_secret_share_sign_ins(tmp_path):
    (tmp_path / "inbox.secret").write_text("a-secret-that-every-replica-reads-0123456789\n")
    settings = {**_config(tmp_path), "inbox": {"session_secret_file": "inbox.secret"}}
    (tmp_path / "server.yaml").write_text(json.dumps(settings))
    config = load_config(tmp_path / "server.yaml")
    assert config.inbox.session_secret_file == tmp_path / "inbox.secret"
    one, two = Runtime(BASELINE, config), Runtime(BASELINE, config)
    with app_server(create_app(one)) as first, app_server(create_app(two)) as second:
        visitor = _signed_in(first, "fay")
        visitor.http = httpx.Client(base_url=second, follow_redirects=False)
        assert visitor.get("/inbox/").status_code == 200
        other = _signed_in(first, "fay")  # without the shared file: sign in again
        (tmp_path / "lone").mkdir()
        lone = Runtime(BASELINE, ServerConfig.model_validate(_config(tmp_path / "lone")))
        with app_server(create_app(lone)) as third:
            other.http = httpx.Client(base_url=third, follow_redirects=False)
            assert other.get("/inbox/").status_code == 303


def test_a_session_secret_file_must_be_long_enough(tmp_path):
    short = tmp_path / "secret"
    short.write_text("too short")
    with pytest.raises(ValueError, match="32 characters"):
        _server(tmp_path, inbox={"session_secret_file": str(short)})


def test_the_gate_records_a_rejection_only_from_someone_who_could_approve(tmp_path):
    gate = Gate(
        load_pack(BASELINE),
        ledger=open_ledger(f"sqlite:///{tmp_path / 'l.db'}"),
        directory=StaticDirectory({"security": ("fay",)}),
        clock=FakeClock("2025-03-12T12:00:00Z"),
    )
    actor = {"id": "bot", "kind": "automation", "trust": 3}
    verdict = gate.check(yaml.safe_load(json.dumps(GRANT)), actor=actor)
    with pytest.raises(ApprovalRejected, match="not a member"):
        gate.reject(verdict, by="mallory", group="security")
    with pytest.raises(ApprovalRejected, match="proposed this action"):
        gate.reject(verdict, by="bot", group="security")
    rejection = gate.reject(verdict, by="fay", group="security", note="no")
    assert rejection["status"] == "rejected" and rejection["declined"] is True
    again = gate.check(yaml.safe_load(json.dumps(GRANT)), actor=actor)
    assert again.decision == "require_approval"


def test_an_action_held_on_one_replica_is_in_the_inbox_of_another_and_approved_there(tmp_path):
    """Two servers on one ledger: the inbox of the one that did not answer the check lists
    it, approves it and rejects another; the first then allows the retry."""
    config = ServerConfig.model_validate(_config(tmp_path))
    one = Runtime(BASELINE, config, clock=FakeClock("2025-03-12T12:00:00Z"))
    two = Runtime(BASELINE, config, clock=FakeClock("2025-03-12T12:00:00Z"))
    with app_server(create_app(one)) as first, app_server(create_app(two)) as second:
        held = _check(first, "bot")
        other = _check(first, "bot", {**GRANT, "target": "iam/role/billing-admin"})
        assert held["decision"] == other["decision"] == "require_approval"
        visitor = _signed_in(second, "fay")
        assert held["decision_id"] in visitor.page and other["decision_id"] in visitor.page
        form = {"csrf": visitor.csrf, "digest": held["gate"]["action_digest"], "group": "security"}
        assert visitor.post(f"/inbox/{held['decision_id']}/approve", form).status_code == 303
        form = {**form, "digest": other["gate"]["action_digest"], "note": "not this one"}
        assert visitor.post(f"/inbox/{other['decision_id']}/reject", form).status_code == 303
        listed = httpx.get(
            f"{first}/v1/approvals?state=all", headers={"Authorization": f"Bearer {KEYS['fay']}"}
        ).json()["approvals"]
        assert {p["decision_id"]: p["state"] for p in listed} == {
            held["decision_id"]: "approved",
            other["decision_id"]: "rejected",
        }
        assert _check(first, "bot")["decision"] == "allow"
        assert _pending(second) == []
