"""Identity on ``aigre-policy serve`` comes from the credentials, never the body; approvals
over HTTP follow the gate's rules (nobody approves their own action)."""

from __future__ import annotations

import json
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

from aigre_policy.gate import FakeClock
from aigre_policy.server.app import create_app
from aigre_policy.server.config import ServerConfig
from aigre_policy.server.identity import key_digest
from aigre_policy.server.runtime import Runtime

BASELINE = ROOT / "policy_packs" / "aigre-baseline"
FIXTURES = ROOT / "fixtures" / "actions"
KEYS = {
    "rui": "rui-key-7d1f0b8e2c4a4f3aa9e0c1d2b3a4f5e6",
    "fay": "fay-key-0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d",
    "bot": "bot-key-5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b",
}


def _key(name: str, kind: str, trust: int, scopes: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "sha256": key_digest(KEYS[name]),
        "actor": {"id": name if name != "rui" else "rui.almeida", "kind": kind, "trust": trust},
        "scopes": scopes,
    }


def _auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def _action(name: str) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / name).read_text())["action"]


@pytest.fixture
def jwks(tmp_path: Path):
    private = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    path = tmp_path / "keys.jwks.json"
    path.write_text(json.dumps({"keys": [{**public, "kid": "k1", "alg": "ES256", "use": "sig"}]}))
    return private, path


@pytest.fixture
def server(tmp_path: Path, jwks):
    _, jwks_path = jwks
    config = ServerConfig.model_validate(
        {
            "ledger": f"sqlite:///{tmp_path / 'l.db'}",
            "log": str(tmp_path / "log.jsonl"),
            "directory": {"security": ["fay", "rui.almeida"]},
            "auth": {
                "api_keys": [
                    _key("rui", "human", 4, ["check", "approve", "read"]),
                    _key("fay", "human", 4, ["check", "approve", "read"]),
                    _key("bot", "llm", 1, ["check"]),
                ],
                "jwt": {
                    "jwks_file": str(jwks_path),
                    "issuer": "https://idp.test",
                    "audience": "aigre",
                },
            },
        }
    )
    runtime = Runtime(BASELINE, config, clock=FakeClock("2025-03-12T12:00:20Z"))
    with app_server(create_app(runtime)) as url:
        yield url


def test_no_credentials_is_401(server):
    answer = httpx.post(f"{server}/v1/check", json=_action("llm-rollback.yaml"))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["code"] == "unauthorized"


def test_the_actor_comes_from_the_key_not_from_the_body(server):
    action = _action("llm-rollback.yaml")
    action["actor"] = {"kind": "human", "id": "root", "trust": 5}  # the body's claim
    verdict = httpx.post(f"{server}/v1/check", json=action, headers=_auth("bot")).json()
    assert verdict["gate"]["actor"] == {"id": "bot", "kind": "llm", "trust": 1}
    assert verdict["decision"] == "deny"  # an LLM of trust 1 in production


def test_a_scope_the_key_lacks_is_403(server):
    answer = httpx.get(f"{server}/v1/approvals", headers=_auth("bot"))
    assert answer.status_code == 403


def test_approval_end_to_end_and_never_by_the_proposer(server):
    action = _action("admin-role-grant.yaml")
    first = httpx.post(f"{server}/v1/check", json=action, headers=_auth("rui")).json()
    assert first["decision"] == "require_approval"
    pending = httpx.get(f"{server}/v1/approvals?state=pending", headers=_auth("fay")).json()
    assert [p["decision_id"] for p in pending["approvals"]] == [first["decision_id"]]
    assert pending["approvals"][0]["fired"][0]["id"] == "admin-role-grant"
    body = {"decision_id": first["decision_id"], "group": "security"}
    own = httpx.post(f"{server}/v1/approvals", json=body, headers=_auth("rui"))
    assert own.status_code == 403
    assert "cannot approve" in own.json()["message"]
    # the body cannot name the approver: `by` is ignored, the key decides
    granted = httpx.post(
        f"{server}/v1/approvals", json={**body, "by": "rui.almeida"}, headers=_auth("fay")
    )
    assert granted.status_code == 201
    assert granted.json()["approval"]["by"] == "fay"
    assert granted.json()["state"] == "approved"
    again = httpx.post(f"{server}/v1/check", json=action, headers=_auth("rui")).json()
    assert again["decision"] == "allow"
    assert [a["by"] for a in again["gate"]["approvals"]["counted"]] == ["fay"]
    # the allowed check settled the action's entry
    listed = httpx.get(f"{server}/v1/approvals?state=all", headers=_auth("fay")).json()
    assert listed["approvals"] == []


def test_asking_again_about_one_action_keeps_one_inbox_entry(server):
    action = _action("admin-role-grant.yaml")
    ids = [
        httpx.post(f"{server}/v1/check", json=action, headers=_auth("rui")).json()["decision_id"]
        for _ in range(3)
    ]
    listed = httpx.get(f"{server}/v1/approvals?state=all", headers=_auth("fay")).json()
    assert [p["decision_id"] for p in listed["approvals"]] == ids[-1:]


def test_an_approver_outside_the_group_is_refused(server):
    first = httpx.post(
        f"{server}/v1/check", json=_action("admin-role-grant.yaml"), headers=_auth("rui")
    ).json()
    body = {"decision_id": first["decision_id"], "group": "finops"}
    answer = httpx.post(f"{server}/v1/approvals", json=body, headers=_auth("fay"))
    assert answer.status_code == 403
    missing = {"decision_id": "no-such-decision", "group": "security"}
    assert (
        httpx.post(f"{server}/v1/approvals", json=missing, headers=_auth("fay")).status_code == 404
    )


def _token(private: Any, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": "https://idp.test", "aud": "aigre", "sub": "li.wen", "exp": now + 300, **claims}
    return jwt.encode(body, private, algorithm="ES256", headers={"kid": "k1"})


def test_a_jwt_maps_its_claims_to_the_actor(server, jwks):
    private, _ = jwks
    token = _token(private, aigre_kind="automation", aigre_trust=3, scope="check read")
    verdict = httpx.post(
        f"{server}/v1/check",
        json=_action("routine-restart-by-automation.yaml"),
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert verdict["gate"]["actor"] == {"id": "li.wen", "kind": "automation", "trust": 3}


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 1},  # expired
        {"aud": "someone-else"},
        {"iss": "https://evil.test"},
        {"aigre_trust": 9},
    ],
)
def test_a_jwt_that_does_not_verify_is_401(server, jwks, claims):
    private, _ = jwks
    token = _token(private, **claims)
    answer = httpx.post(f"{server}/v1/check", json={}, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401


def test_a_jwt_signed_by_another_key_is_401(server):
    stranger = ec.generate_private_key(ec.SECP256R1())
    token = _token(stranger)
    answer = httpx.post(f"{server}/v1/check", json={}, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401


def test_the_data_api_needs_credentials_and_the_evaluate_scope(server):
    path = f"{server}/v1/data/aigre/aigre_baseline/decision"
    body = {"input": {"action": _action("llm-rollback.yaml"), "context": {}, "usage": {}}}
    assert httpx.post(path, json=body).status_code == 401
    # the caller attests the whole input here, so a plain key may not use it
    assert httpx.post(path, json=body, headers=_auth("bot")).status_code == 403


def test_a_key_without_scopes_may_not_attest_inputs_or_subjects():
    from aigre_policy.server.config import AuthConfig
    from aigre_policy.server.identity import Authenticator

    auth = AuthConfig.model_validate(
        {
            "api_keys": [
                {
                    "name": "plain",
                    "sha256": key_digest("plain-key-0123456789abcdef0123456789"),
                    "actor": {"id": "plain", "kind": "llm", "trust": 2},
                }
            ]
        }
    )
    caller = Authenticator(auth).caller(
        {"authorization": "Bearer plain-key-0123456789abcdef0123456789"}
    )
    assert caller.actor == {"id": "plain", "kind": "llm", "trust": 2}
    assert caller.may("check") and caller.may("approve") and caller.may("read")
    assert not caller.may("evaluate") and not caller.may("authzen")
