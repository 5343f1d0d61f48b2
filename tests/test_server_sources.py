"""``serve`` with approver groups from a JWT's groups claim or a directory file, and with
notifications: the gate still checks membership, and a waiting check reaches a webhook."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from serving import ROOT, app_server
from test_gate_notify import Receiver

pytest.importorskip("starlette")

from aigre_policy.gate import FakeClock
from aigre_policy.server.app import create_app
from aigre_policy.server.config import ConfigError, ServerConfig, load_config
from aigre_policy.server.identity import key_digest
from aigre_policy.server.runtime import Runtime

BASELINE = ROOT / "policy_packs" / "aigre-baseline"
GRANT = json.loads((ROOT / "examples" / "server" / "grant.json").read_text())
RUI = "rui-key-7d1f0b8e2c4a4f3aa9e0c1d2b3a4f5e6"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _server_config(tmp_path: Path, **more: Any) -> tuple[Any, Path]:
    private = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    jwks = tmp_path / "keys.jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "k1", "alg": "ES256"}]}))
    config = {
        "ledger": f"sqlite:///{tmp_path / 'l.db'}",
        "auth": {
            "api_keys": [
                {
                    "name": "rui",
                    "sha256": key_digest(RUI),
                    "actor": {"id": "rui.almeida", "kind": "human", "trust": 4},
                }
            ],
            "jwt": {"jwks_file": str(jwks), "issuer": "https://idp.test", "audience": "aigre"},
        },
        **more,
    }
    return private, config


def _token(private: Any, sub: str, groups: list[str]) -> str:
    claims = {
        "iss": "https://idp.test",
        "aud": "aigre",
        "sub": sub,
        "exp": int(time.time()) + 300,
        "groups": groups,
    }
    return jwt.encode(claims, private, algorithm="ES256", headers={"kid": "k1"})


def _run(config: dict[str, Any]):
    runtime = Runtime(
        BASELINE, ServerConfig.model_validate(config), clock=FakeClock("2025-03-12T12:00:20Z")
    )
    return app_server(create_app(runtime))


def _approve(url: str, token: str, decision_id: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/approvals",
        json={"decision_id": decision_id, "group": "security"},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_an_approvers_groups_claim_counts_when_the_config_says_so(tmp_path: Path) -> None:
    private, config = _server_config(tmp_path, directory_from_claims={"remember_minutes": 5})
    rui = {"Authorization": f"Bearer {RUI}"}
    with _run(config) as url:
        first = httpx.post(f"{url}/v1/check", json=GRANT, headers=rui).json()
        assert first["decision"] == "require_approval"
        outsider = _approve(url, _token(private, "li.wen", ["finops"]), first["decision_id"])
        assert outsider.status_code == 403 and "not a member" in outsider.json()["message"]
        granted = _approve(url, _token(private, "sue", ["security"]), first["decision_id"])
        assert granted.status_code == 201, granted.text
        again = httpx.post(f"{url}/v1/check", json=GRANT, headers=rui).json()
        assert again["decision"] == "allow"
        assert [a["by"] for a in again["gate"]["approvals"]["counted"]] == ["sue"]


def test_groups_in_a_request_body_or_a_proposal_are_never_membership(tmp_path: Path) -> None:
    private, config = _server_config(tmp_path, directory_from_claims={})
    claiming = {**GRANT, "actor": {**GRANT["actor"], "groups": ["security"]}}
    with _run(config) as url:
        first = httpx.post(
            f"{url}/v1/check", json=claiming, headers={"Authorization": f"Bearer {RUI}"}
        ).json()
        held = httpx.post(
            f"{url}/v1/check", json=GRANT, headers={"Authorization": f"Bearer {RUI}"}
        ).json()
        body = {"decision_id": held["decision_id"], "group": "security", "groups": ["security"]}
        token = _token(private, "sue", [])
        answer = httpx.post(
            f"{url}/v1/approvals", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    assert first["decision"] != "allow"
    assert answer.status_code == 403 and "not a member" in answer.json()["message"]


def test_a_groups_claim_is_not_membership_unless_configured(tmp_path: Path) -> None:
    private, config = _server_config(tmp_path)
    with _run(config) as url:
        first = httpx.post(
            f"{url}/v1/check", json=GRANT, headers={"Authorization": f"Bearer {RUI}"}
        ).json()
        refused = _approve(url, _token(private, "sue", ["security"]), first["decision_id"])
        assert refused.status_code == 403


def test_a_directory_file_serves_approver_groups(tmp_path: Path) -> None:
    private, config = _server_config(tmp_path, directory_file=str(tmp_path / "groups.yaml"))
    (tmp_path / "groups.yaml").write_text("security: [sue]\n")
    with _run(config) as url:
        first = httpx.post(
            f"{url}/v1/check", json=GRANT, headers={"Authorization": f"Bearer {RUI}"}
        ).json()
        granted = _approve(url, _token(private, "sue", []), first["decision_id"])
        assert granted.status_code == 201, granted.text


def test_a_check_that_waits_notifies_the_configured_webhook(
    tmp_path: Path, receiver: Receiver
) -> None:
    secret = tmp_path / "hook.secret"
    secret.write_text("a-webhook-secret-of-some-length\n")
    notify = {
        "inbox_url": "https://aigre.example/inbox/",
        "webhooks": [{"name": "sre", "url": receiver.url, "secret_file": str(secret)}],
    }
    _, config = _server_config(tmp_path, notify=notify)
    with _run(config) as url:
        verdict = httpx.post(
            f"{url}/v1/check", json=GRANT, headers={"Authorization": f"Bearer {RUI}"}
        ).json()
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
    event = receiver.bodies()[0]
    assert (event["decision_id"], event["approver_groups"]) == (
        verdict["decision_id"],
        ["security"],
    )
    assert event["inbox_url"] == "https://aigre.example/inbox/"
    assert verdict["gate"]["notify"]["queued"][0]["webhook"] == "sre"


def test_a_notify_section_is_validated_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text("notify:\n  webhooks:\n    - url: ftp://example.com/hook\n")
    with pytest.raises(ConfigError, match=r"server.yaml:3:\d+: notify.webhooks.0.url"):
        load_config(path)


def test_the_context_section_reads_prometheus_for_each_check(tmp_path: Path) -> None:
    from test_gate_providers import Fake, prom

    fake = Fake()
    fake.answer = prom("0.05")
    try:
        context = {"prometheus": [{"url": fake.url, "query": 'budget{service="{target}"}'}]}
        _, config = _server_config(tmp_path, context=context)
        with _run(config) as url:
            action = {**GRANT, "kind": "deploy", "target": "checkout"}
            verdict = httpx.post(
                f"{url}/v1/check", json=action, headers={"Authorization": f"Bearer {RUI}"}
            ).json()
    finally:
        fake.server.shutdown()
        fake.server.server_close()
    assert fake.requests[0][1]["query"] == ['budget{service="checkout"}']
    assert verdict["gate"]["context_sources"][0]["status"] == "fresh"
    assert "error-budget-exhausted" in [r["id"] for r in verdict["fired"]]
