"""``aigre-policy serve`` attacked as a hostile caller would: identity from anywhere but the
credentials, forged tokens, approvals replayed or self-given, bodies built to break the
parser, and a server killed mid-load. Every attempt runs against a real server on
127.0.0.1; each answer must be a refusal (4xx) or a verdict that is not ``allow``."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving import ROOT, app_server, free_port, wait_ready

pytest.importorskip("starlette")

from aigre_policy.gate import FakeClock
from aigre_policy.server.app import create_app
from aigre_policy.server.config import ServerConfig
from aigre_policy.server.identity import key_digest
from aigre_policy.server.runtime import Runtime

BASELINE = ROOT / "policy_packs" / "aigre-baseline"
FIXTURES = ROOT / "fixtures" / "actions"


def now() -> int:
    """Tokens are checked against the real clock, not the gate's: read when minted (a
    module-level time would expire before a long run reaches these tests)."""
    return int(time.time())


KEYS = {
    "rui": "rui-key-7d1f0b8e2c4a4f3aa9e0c1d2b3a4f5e6",
    "fay": "fay-key-0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d",
    "bot": "bot-key-5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b",
}
ACTORS = {
    "rui": {"id": "rui.almeida", "kind": "human", "trust": 4},
    "fay": {"id": "fay", "kind": "human", "trust": 4},
    "bot": {"id": "bot", "kind": "llm", "trust": 1},
}
SCOPES = {"rui": ["check", "approve", "read"], "fay": ["check", "approve", "read"]}
LIMIT = 64 * 1024


def _auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def _action(name: str) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / name).read_text())["action"]


def _b64(data: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Keys:
    def __init__(self, tmp_path: Path):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        self.path = tmp_path / "keys.jwks.json"
        keys = [{**rsa_jwk, "kid": "r1", "use": "sig"}, {**ec_jwk, "kid": "e1", "use": "sig"}]
        self.path.write_text(json.dumps({"keys": keys}))
        self.public_pem = self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def claims(self, **over: Any) -> dict[str, Any]:
        base = {"sub": "ana", "iss": "https://idp.test", "aud": "aigre", "exp": now() + 600}
        base.update({"aigre_kind": "human", "aigre_trust": 4, "scope": "check"})
        return {k: v for k, v in {**base, **over}.items() if v is not None}

    def token(self, kid: str = "r1", **over: Any) -> str:
        key, alg = (self.rsa, "RS256") if kid != "e1" else (self.ec, "ES256")
        return jwt.encode(self.claims(**over), key, algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("jwks"))


def _config(tmp_path: Path, keys: Keys) -> ServerConfig:
    api_keys = [
        {
            "name": name,
            "sha256": key_digest(KEYS[name]),
            "actor": ACTORS[name],
            "scopes": SCOPES.get(name, ["check", "evaluate"]),
        }
        for name in KEYS
    ]
    return ServerConfig.model_validate(
        {
            "ledger": f"sqlite:///{tmp_path / 'ledger.db'}",
            "log": str(tmp_path / "log.jsonl"),
            "directory": {"security": ["fay", "rui.almeida"]},
            "limits": {"max_body_bytes": LIMIT},
            "auth": {
                "api_keys": api_keys,
                "jwt": {
                    "jwks_file": str(keys.path),
                    "issuer": "https://idp.test",
                    "audience": "aigre",
                },
            },
        }
    )


@pytest.fixture
def runtime(tmp_path: Path, keys: Keys) -> Runtime:
    return Runtime(BASELINE, _config(tmp_path, keys), clock=FakeClock("2025-03-12T12:00:20Z"))


@pytest.fixture
def server(runtime: Runtime):
    with app_server(create_app(runtime)) as url:
        yield url


def _logged(runtime_or_path: Any) -> dict[str, dict[str, Any]]:
    path = (
        Path(runtime_or_path.config.log) if hasattr(runtime_or_path, "config") else runtime_or_path
    )
    if not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["id"]: r for r in records if r.get("kind") == "decision"}


def _not_allowed(answer: httpx.Response) -> None:
    """A refusal (4xx) or a verdict that is not ``allow``, never a 5xx."""
    assert answer.status_code < 500, answer.text
    if answer.status_code == 200:
        body = answer.json()
        document = body.get("result", body)
        assert document.get("decision") != "allow", body


# -- identity: only the credentials say who is calling ----------------------------------


def test_no_body_header_or_query_sets_the_actor(server):
    action = _action("llm-rollback.yaml")
    action["actor"] = {"kind": "human", "id": "fay", "trust": 5, "groups": ["security"]}
    action["context"] = {"actor": {"kind": "human", "id": "fay", "trust": 5}}
    forged = {
        **_auth("bot"),
        "X-Forwarded-For": "127.0.0.1",
        "X-Forwarded-User": "fay",
        "X-Actor": '{"id": "fay", "kind": "human", "trust": 5}',
        "X-Remote-User": "fay",
        "X-Auth-Request-User": "fay",
        "X-Auth-Request-Groups": "security",
        "X-API-Key": KEYS["fay"],  # a second credential does not replace the first
    }
    answer = httpx.post(
        f"{server}/v1/check?actor=fay&trust=5", json=action, headers=forged, timeout=10
    )
    verdict = answer.json()
    assert verdict["gate"]["actor"] == ACTORS["bot"]
    assert verdict["decision"] != "allow"


def test_a_valid_token_is_the_control(server, keys):
    headers = {"Authorization": f"Bearer {keys.token()}"}
    verdict = httpx.post(f"{server}/v1/check", json=_action("llm-rollback.yaml"), headers=headers)
    assert verdict.status_code == 200
    assert verdict.json()["gate"]["actor"] == {"id": "ana", "kind": "human", "trust": 4}


def _forged_tokens(keys: Keys) -> dict[str, str]:
    claims = keys.claims()
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'r1'})}.{_b64(claims)}."
    # key confusion: HS256 with the RSA public key (as served in the JWKS) for a secret
    confused = jwt.api_jws.PyJWS()
    confused._algorithms["HS256"].prepare_key = lambda key: key  # type: ignore[attr-defined]
    hs = confused.encode(
        json.dumps(claims).encode(), keys.public_pem, algorithm="HS256", headers={"kid": "r1"}
    )
    header = _b64({"alg": "ES256", "kid": "r1", "typ": "JWT"})
    return {
        "alg none": unsigned,
        "alg None": f"{_b64({'alg': 'None', 'kid': 'r1'})}.{_b64(claims)}.",
        "HS256 with the public key": hs,
        "ES256 header over the RSA key": f"{header}.{_b64(claims)}.{_b64(b'x' * 64)}",
        "EdDSA header over the RSA key": f"{_b64({'alg': 'EdDSA', 'kid': 'r1'})}.{_b64(claims)}.AA",
        "RS256 header over the EC key": f"{_b64({'alg': 'RS256', 'kid': 'e1'})}.{_b64(claims)}.AA",
        "expired": keys.token(exp=now() - 3600),
        "not yet valid": keys.token(nbf=now() + 3600),
        "no expiry": keys.token(exp=None),
        "wrong audience": keys.token(aud="someone-else"),
        "wrong issuer": keys.token(iss="https://evil.test"),
        "kid not in the JWKS": keys.token(kid="zz"),
        "no kid with two keys": jwt.encode(claims, keys.rsa, algorithm="RS256"),
        "signed by the other key": keys.token(kid="r1").rsplit(".", 1)[0]
        + "."
        + keys.token(kid="e1").rsplit(".", 1)[1],
        "claims swapped after signing": keys.token().split(".")[0]
        + "."
        + _b64({**claims, "sub": "fay", "trust": 5})
        + "."
        + keys.token().split(".")[2],
        "garbage": "a.b.c",
    }


def test_forged_tokens_are_refused_on_every_route(server, keys, runtime):
    action = _action("llm-rollback.yaml")
    routes = [
        ("/v1/check", action),
        (f"/v1/data/{runtime.served.entrypoint}", {"input": {"action": action}}),  # the fast path
        ("/v1/data/aigre", {"input": {}}),
        ("/v1/approvals", {"decision_id": "x", "group": "security"}),
    ]
    for name, token in _forged_tokens(keys).items():
        for path, body in routes:
            answer = httpx.post(
                f"{server}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 401, (name, path, answer.status_code, answer.text)
            assert answer.json()["code"] == "unauthorized", (name, path)


def test_a_jwks_with_a_duplicate_kid_lets_no_forged_token_through(tmp_path):
    keys = Keys(tmp_path)
    first = json.loads(keys.path.read_text())["keys"][0]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    second = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(other.public_key())), "kid": "r1"}
    keys.path.write_text(json.dumps({"keys": [first, second]}))
    runtime = Runtime(BASELINE, _config(tmp_path, keys), clock=FakeClock("2025-03-12T12:00:20Z"))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(keys.claims(), stranger, algorithm="RS256", headers={"kid": "r1"})
    with app_server(create_app(runtime)) as url:
        answer = httpx.post(
            f"{url}/v1/check",
            json=_action("llm-rollback.yaml"),
            headers={"Authorization": f"Bearer {forged}"},
        )
    assert answer.status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer"},
        {"Authorization": ""},
        {"X-API-Key": ""},
        {"Authorization": "Bearer ,"},
        {"Authorization": f"Basic {KEYS['fay']}"},
        {"Authorization": f"Bearer {KEYS['fay'][:-1]}"},
        {"Authorization": f"Bearer {KEYS['fay']}x"},
        {"Authorization": f"Bearer {KEYS['fay'].upper()}"},
        {"Authorization": f"Bearer {key_digest(KEYS['fay'])}"},  # the stored digest itself
    ],
)
def test_empty_or_near_miss_keys_are_401(server, headers):
    answer = httpx.post(f"{server}/v1/check", json=_action("llm-rollback.yaml"), headers=headers)
    assert answer.status_code == 401, answer.text


def test_a_key_of_another_scope_cannot_approve(server):
    first = httpx.post(
        f"{server}/v1/check", json=_action("admin-role-grant.yaml"), headers=_auth("rui")
    ).json()
    assert first["decision"] == "require_approval"
    body = {"decision_id": first["decision_id"], "group": "security"}
    answer = httpx.post(f"{server}/v1/approvals", json=body, headers=_auth("bot"))
    assert answer.status_code == 403


# -- approvals: never one's own, never for another action -----------------------------------


def test_the_proposer_cannot_approve_their_own_action(server, keys):
    first = httpx.post(
        f"{server}/v1/check", json=_action("admin-role-grant.yaml"), headers=_auth("rui")
    ).json()
    body = {"decision_id": first["decision_id"], "group": "security"}
    by_key = httpx.post(f"{server}/v1/approvals", json=body, headers=_auth("rui"))
    assert by_key.status_code == 403, by_key.text
    # the same person through another credential: a token whose subject is the proposer
    token = keys.token(sub="rui.almeida", scope="approve", groups=["security"])
    by_token = httpx.post(
        f"{server}/v1/approvals", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert by_token.status_code == 403, by_token.text
    again = httpx.post(
        f"{server}/v1/check", json=_action("admin-role-grant.yaml"), headers=_auth("rui")
    ).json()
    assert again["decision"] == "require_approval"


def test_a_group_the_token_claims_is_not_membership(server, keys):
    first = httpx.post(
        f"{server}/v1/check", json=_action("admin-role-grant.yaml"), headers=_auth("rui")
    ).json()
    token = keys.token(sub="mallory", scope="approve", groups=["security"])
    body = {"decision_id": first["decision_id"], "group": "security"}
    answer = httpx.post(
        f"{server}/v1/approvals", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 403, answer.text


def _approved(server: str) -> dict[str, Any]:
    """The admin grant, proposed by rui and approved by fay; returns the approved action."""
    action = _action("admin-role-grant.yaml")
    first = httpx.post(f"{server}/v1/check", json=action, headers=_auth("rui")).json()
    body = {"decision_id": first["decision_id"], "group": "security"}
    answer = httpx.post(f"{server}/v1/approvals", json=body, headers=_auth("fay"))
    assert answer.status_code == 201, answer.text
    return action


def _variants(action: dict[str, Any]) -> dict[str, dict[str, Any]]:
    target = str(action["target"])
    lookalike = target.replace("a", "\u0430", 1) if "a" in target else target + "\u200b"
    return {
        "changed target": {**action, "target": target + "-2"},
        "Unicode look-alike target": {**action, "target": lookalike},
        "NFD form of the target": {**action, "target": target + "e\u0301"},
        "changed environment": {**action, "environment": "staging"},
        "extra field": {**action, "note": "also"},
    }


def test_an_approval_is_not_replayed_onto_another_action(server):
    action = _approved(server)
    reordered = dict(reversed(list(action.items())))
    same = httpx.post(f"{server}/v1/check", json=reordered, headers=_auth("rui")).json()
    assert same["gate"]["approvals"], same  # the same action, keys reordered: the approval holds
    for name, variant in _variants(action).items():
        verdict = httpx.post(f"{server}/v1/check", json=variant, headers=_auth("rui")).json()
        assert verdict["gate"]["action_digest"] != same["gate"]["action_digest"], name
        assert not verdict["gate"].get("approvals"), name


def test_numeric_forms_share_a_digest_only_when_judged_alike(server):
    action = _approved(server)
    held = httpx.post(f"{server}/v1/check", json=action, headers=_auth("rui")).json()
    trust = action["actor"]["trust"]
    for form in (f"{trust}.0", f"{trust}e0", f"{trust}.000", f"{trust}0e-1"):
        raw = json.dumps(action).replace(f'"trust": {trust}', f'"trust": {form}')
        answer = httpx.post(
            f"{server}/v1/check",
            content=raw,
            headers={**_auth("rui"), "Content-Type": "application/json"},
        )
        verdict = answer.json()
        same_digest = verdict["gate"]["action_digest"] == held["gate"]["action_digest"]
        # one meaning: a number judged as its JSON round-trip; the approval follows the digest
        assert same_digest == bool(verdict["gate"].get("approvals")), form
        if same_digest:
            assert verdict["decision"] == held["decision"], form


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    field=st.sampled_from(["target", "kind", "environment", "id"]),
    suffix=st.text(min_size=1, max_size=3),
)
def test_no_changed_field_inherits_an_approval(server_with_approval, field, suffix):
    url, action = server_with_approval
    changed = {**action, field: f"{action.get(field, '')}{suffix}"}
    answer = httpx.post(f"{url}/v1/check", json=changed, headers=_auth("rui"))
    assert answer.status_code == 200
    assert not answer.json()["gate"].get("approvals")


@pytest.fixture
def server_with_approval(server):
    return server, _approved(server)


# -- fail closed: bodies built to break the parser ---------------------------------------


HOSTILE_BODIES = {
    "NaN": b'{"kind": NaN}',
    "Infinity": b'{"cost": {"estimated_usd": Infinity}}',
    "-Infinity": b'{"cost": {"estimated_usd": -Infinity}}',
    "lone surrogate": b'{"target": "\\ud800"}',
    "invalid UTF-8": b'{"target": "\xff\xfe"}',
    "overlong UTF-8": b'{"target": "\xc0\xaf"}',
    "UTF-16 BOM": '{"kind": "rollback"}'.encode("utf-16"),
    "deep arrays": b"[" * 5000 + b"]" * 5000,
    "deep objects": b'{"a":' * 2000 + b"1" + b"}" * 2000,
    "trailing garbage": b'{"kind": "rollback"} {"kind": "x"}',
    "array": b"[]",
    "number": b"1",
    "null": b"null",
    "string": b'"allow"',
    "empty": b"",
    "whitespace": b"   \n",
    "huge integer": b'{"cost": {"estimated_usd": 1' + b"0" * 400 + b"}}",
    "comment": b'{"kind": "rollback" /* x */}',
}


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_hostile_bodies_never_answer_allow(server, runtime, name):
    body = HOSTILE_BODIES[name]
    for path, wrap in (
        ("/v1/check", lambda b: b),
        (f"/v1/data/{runtime.served.entrypoint}", lambda b: b'{"input": {"action": ' + b + b"}}"),
    ):
        for kind in ("application/json", "text/plain", "application/x-www-form-urlencoded"):
            headers = {**_auth("bot"), "Content-Type": kind}
            _not_allowed(httpx.post(f"{server}{path}", content=wrap(body), headers=headers))


def test_deeply_nested_valid_json_fails_closed_and_is_logged(server, runtime):
    action = json.dumps(_action("llm-rollback.yaml"))[:-1]
    body = action + ', "target": ' + '{"a":' * 900 + "1" + "}" * 900 + "}"
    answer = httpx.post(f"{server}/v1/check", content=body, headers=_auth("rui"))
    verdict = answer.json()
    assert verdict["fail_closed"] and verdict["decision"] != "allow"
    assert verdict["decision_id"] in _logged(runtime)


def test_a_duplicate_key_is_judged_and_logged_as_one_value(server, runtime):
    # a proxy reading the first `environment` would see staging; the gate must judge and log
    # the same value it answers about, so the answer and the log never disagree
    action = _action("admin-role-grant.yaml")
    raw = json.dumps(action)[:-1] + ', "environment": "staging"}'
    raw = raw.replace('"environment": "production"', '"environment": "production"', 1)
    answer = httpx.post(
        f"{server}/v1/check",
        content=raw,
        headers={**_auth("rui"), "Content-Type": "application/json"},
    )
    verdict = answer.json()
    record = _logged(runtime)[verdict["decision_id"]]
    logged = record["body"]["verdict"]
    assert logged["decision"] == verdict["decision"]
    assert logged["gate"]["action_digest"] == verdict["gate"]["action_digest"]
    judged = record["body"]["input"]["action"]
    assert judged["environment"] == "staging"  # the last value, the one orjson keeps


def test_a_body_over_the_limit_is_413_declared_or_chunked(server, runtime):
    big = b'{"kind": "' + b"x" * (LIMIT + 10) + b'"}'
    for path in ("/v1/check", f"/v1/data/{runtime.served.entrypoint}"):
        declared = httpx.post(f"{server}{path}", content=big, headers=_auth("bot"))
        assert declared.status_code == 413, (path, declared.text)

        def chunks():
            for start in range(0, len(big), 4096):
                yield big[start : start + 4096]

        chunked = httpx.post(f"{server}{path}", content=chunks(), headers=_auth("bot"))
        assert chunked.status_code == 413, (path, chunked.text)


def test_a_lying_content_length_is_refused(server):
    for value in ("-1", "abc", "1e3", "0x10"):
        with socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1])), 5) as sock:
            sock.sendall(
                b"POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + KEYS["bot"].encode()
                + b"\r\nContent-Length: "
                + value.encode()
                + b"\r\n\r\n{}"
            )
            sock.settimeout(5)
            reply = sock.recv(4096)
        status = int(reply.split(b" ", 2)[1])
        assert 400 <= status < 500, (value, reply[:200])


def test_a_slow_partial_body_does_not_hold_the_server(server):
    port = int(server.rsplit(":", 1)[1])
    socks = []
    try:
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", port), 5)
            sock.sendall(
                b"POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + KEYS["bot"].encode()
                + b'\r\nContent-Length: 1000\r\n\r\n{"kind": '
            )
            socks.append(sock)
        started = time.monotonic()
        answer = httpx.post(
            f"{server}/v1/check",
            json=_action("llm-rollback.yaml"),
            headers=_auth("bot"),
            timeout=10,
        )
        assert answer.status_code == 200
        assert time.monotonic() - started < 5
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/v1/check"),
        ("PUT", "/v1/check"),
        ("DELETE", "/v1/approvals"),
        ("PATCH", "/v1/approvals"),
        ("GET", "/access/v1/evaluation"),
    ],
)
def test_method_confusion_is_405(server, method, path):
    answer = httpx.request(method, f"{server}{path}", headers=_auth("bot"))
    assert answer.status_code == 405


@pytest.mark.parametrize(
    "path",
    [
        "/v1/data/%2e%2e/%2e%2e/etc/passwd",
        "/v1/data/../../etc/passwd",
        "/v1/data/aigre/%2e%2e/aigre",
        "/v1/data/aigre%2F..%2F..%2Fetc",
        "/v1/data/..%5c..%5cetc",
        "/v1/data/aigre/aigre_baseline/envelopes/../../../../../pyproject.toml",
    ],
)
def test_path_traversal_in_the_data_api_reads_nothing_outside_the_pack(server, path):
    for method in ("GET", "POST"):
        answer = httpx.request(method, f"{server}{path}", json={"input": {}}, headers=_auth("bot"))
        assert answer.status_code in (200, 400, 404), answer.text
        text = answer.text
        assert "[project]" not in text and "root:" not in text
        if answer.status_code == 200:
            assert answer.json() == {} or "result" in answer.json()


# -- AuthZEN: a failing entry is a deny, wherever it stands ---------------------------------

TODO = ROOT / "examples" / "authzen-todo"
RICK = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"


@pytest.fixture
def todo(tmp_path: Path):
    config = ServerConfig.model_validate(
        {"ledger": f"sqlite:///{tmp_path / 'az.db'}", "log": str(tmp_path / "az.jsonl")}
    )
    runtime = Runtime(TODO, config, clock=FakeClock("2025-03-12T12:00:20Z"))
    with app_server(create_app(runtime)) as url:
        yield url


def test_authzen_failing_entries_are_denies_in_every_semantic(todo):
    good = {
        "subject": {"type": "user", "id": RICK},
        "action": {"name": "can_read_todos"},
        "resource": {"type": "todo", "id": "todo-1"},
    }
    control = httpx.post(f"{todo}/access/v1/evaluation", json=good).json()
    assert control["decision"] is True
    broken = [
        "not an object",
        {"subject": {"type": "user"}},
        {"action": {"name": 7}},
        {"resource": None, "subject": None},
        {"subject": {"type": "user", "id": RICK, "properties": "x"}},
    ]
    for semantic in ("execute_all", "deny_on_first_deny", "permit_on_first_permit"):
        for bad in broken:
            body = {
                "evaluations": [bad, {}],
                "options": {"evaluations_semantic": semantic},
                **good,
            }
            if isinstance(bad, dict) and not bad:
                continue
            answers = httpx.post(f"{todo}/access/v1/evaluations", json=body).json()["evaluations"]
            assert answers[0]["decision"] is False, (semantic, bad, answers)
            assert "error" in answers[0]["context"], (semantic, bad)
            if semantic == "deny_on_first_deny":
                assert len(answers) == 1
    # a subject the directory does not know is the least trusted, never a known one
    stranger = {
        "subject": {"type": "user", "id": RICK + "x", "properties": {"roles": ["admin"]}},
        "action": {"name": "can_delete_todo"},
        "resource": {
            "type": "todo",
            "id": "t-1",
            "properties": {"ownerID": "rick@the-citadel.com"},
        },
    }
    assert httpx.post(f"{todo}/access/v1/evaluation", json=stranger).json()["decision"] is False


# -- records: what was answered was logged, even when the server is killed -----------------


def test_every_answer_before_a_kill_is_in_the_verified_log(tmp_path: Path):
    log = tmp_path / "log.jsonl"
    ledger = tmp_path / "ledger.db"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "aigre_policy.cli.main", "serve", str(BASELINE),
        "--ledger", f"sqlite:///{ledger}", "--log", str(log),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    answered: list[str] = []
    stop = threading.Event()

    def load() -> None:
        action = _action("llm-rollback.yaml")
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                try:
                    reply = client.post(f"{url}/v1/check", json=action)
                except httpx.HTTPError:
                    return
                if reply.status_code == 200:
                    answered.append(reply.json()["decision_id"])

    try:
        wait_ready(url, process)
        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 10
        while len(answered) < 150 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        stop.set()
        for worker in workers:
            worker.join(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert len(answered) >= 50
    verified = subprocess.run(
        [sys.executable, "-m", "aigre_policy.cli.main", "log", "verify", str(log)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    logged = _logged(log)
    missing = [d for d in answered if d not in logged]
    assert not missing, f"{len(missing)} answered decisions are not in the log"


# -- the inbox: no self-approval, no forms but its own ---------------------------------------


def _visitor(url: str, who: str) -> Any:
    from test_server_inbox import Visitor

    visitor = Visitor(url)
    answer = visitor.sign_in(KEYS[who])
    assert answer.status_code == 303, answer.text
    return visitor


def test_the_proposer_cannot_approve_in_the_inbox(server):
    held = httpx.post(
        f"{server}/v1/check", json=_action("admin-role-grant.yaml"), headers=_auth("rui")
    ).json()
    visitor = _visitor(server, "rui")
    visitor.get("/inbox/")
    form = {"csrf": visitor.csrf, "digest": held["gate"]["action_digest"], "group": "security"}
    visitor.post(f"/inbox/{held['decision_id']}/approve", form)
    again = httpx.post(
        f"{server}/v1/check", json=_action("admin-role-grant.yaml"), headers=_auth("rui")
    ).json()
    assert again["decision"] == "require_approval"
    assert not again["gate"].get("approvals")


def test_the_inbox_takes_no_form_but_a_urlencoded_one_with_its_token(server):
    held = httpx.post(
        f"{server}/v1/check", json=_action("admin-role-grant.yaml"), headers=_auth("rui")
    ).json()
    visitor = _visitor(server, "fay")
    visitor.get("/inbox/")
    fields = {"csrf": visitor.csrf, "digest": held["gate"]["action_digest"], "group": "security"}
    path = f"/inbox/{held['decision_id']}/approve"
    encoded = "&".join(f"{k}={v}" for k, v in fields.items())
    for kind, body in (
        ("text/plain", encoded),
        ("application/json", json.dumps(fields)),
        ("multipart/form-data; boundary=x", "".join(
            f'--x\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in fields.items()
        ) + "--x--\r\n"),
        ("application/x-www-form-urlencoded", encoded.replace(visitor.csrf, "forged")),
    ):  # fmt: skip
        answer = visitor.http.post(
            path, content=body, headers={"cookie": visitor.cookie, "content-type": kind}
        )
        assert answer.status_code in (403, 415), (kind, answer.status_code)
    # the wrong digest (another action's) approves nothing either
    wrong = {**fields, "digest": "sha256:" + "0" * 64}
    visitor.post(path, wrong)
    after = httpx.post(
        f"{server}/v1/check", json=_action("admin-role-grant.yaml"), headers=_auth("rui")
    ).json()
    assert not after["gate"].get("approvals")


def test_sign_in_has_no_redirect_target_and_pages_refuse_framing(server):
    visitor = __import__("test_server_inbox").Visitor(server)
    page = visitor.get("/inbox/sign-in?next=https://evil.test/")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    answer = visitor.post(
        "/inbox/sign-in?next=https://evil.test/",
        {"csrf": visitor.csrf, "credential": KEYS["fay"], "next": "https://evil.test/"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] in ("/inbox/", "/inbox")
    # a session cookie from before sign-in is not kept (no fixation)
    before = visitor.cookie
    visitor.get("/inbox/sign-in")
    fresh = visitor.post("/inbox/sign-in", {"csrf": visitor.csrf, "credential": KEYS["rui"]})
    assert fresh.status_code == 303 and visitor.cookie != before


# -- SSRF: the server posts and reads only where its config says ----------------------------

API = "https://api.github.com"
ENDPOINT = "/repos/octo/hello/actions/runs/1/deployment_protection_rule"


@pytest.mark.parametrize(
    "url",
    [
        "https://api.github.com.evil.test" + ENDPOINT,
        "https://api.github.com@evil.test" + ENDPOINT,
        "http://api.github.com" + ENDPOINT,
        API + "/repos/octo/hello?to=/actions/runs/1/deployment_protection_rule",
        API + "/repos/octo/hello#/actions/runs/1/deployment_protection_rule",
        API + "/repos/octo%2F..%2F../hello/actions/runs/1/deployment_protection_rule",
        API + "/repos/octo/hello\\@evil.test/actions/runs/1/deployment_protection_rule",
        API + "/repos/../hello/actions/runs/1/deployment_protection_rule",
        API + "/repos/octo/../actions/runs/1/deployment_protection_rule",
        API + ENDPOINT + "\n",
        API + ENDPOINT + "?next=https://evil.test",
    ],
)
def test_a_callback_url_off_the_protection_endpoint_is_refused(url):
    """The callback carries the App's token: only the endpoint itself, nothing the query,
    fragment, encoded slashes or dot segments could turn into another request."""
    from aigre_policy.adapters.common import AdapterError
    from aigre_policy.adapters.github import check_callback_url

    check_callback_url(API + ENDPOINT, API)  # the control
    with pytest.raises(AdapterError):
        check_callback_url(url, API)


def test_link_pagination_never_leaves_the_api(tmp_path):
    """A ``Link: next`` elsewhere would carry the token away: it is not followed."""
    from aigre_policy.adapters.github import Deployment
    from aigre_policy.server.github_api import GitHubApi
    from aigre_policy.server.webhooks_config import GitHubWebhook

    seen: list[str] = []
    nexts = iter(
        [
            "https://api.github.com.evil.test/x?page=2",
            "https://api.github.com@evil.test/x?page=2",
            "http://api.github.com/repos/octo/hello/pulls/1/reviews?page=2",
            "https://evil.test/repos/octo/hello/pulls/1/reviews?page=2",
        ]
    )

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        link = next(nexts, None)
        headers = {"Link": f'<{link}>; rel="next"'} if link else {}
        return httpx.Response(200, json=[], headers=headers)

    (tmp_path / "secret").write_text("s")
    (tmp_path / "token").write_text("ghs_static")
    config = GitHubWebhook.model_validate(
        {"secret": {"file": str(tmp_path / "secret")}, "token": {"file": str(tmp_path / "token")}}
    )
    api = GitHubApi(config, client=httpx.Client(transport=httpx.MockTransport(answer)))
    deployment = Deployment({}, None, "production", API + ENDPOINT, ({"number": 1},), "octo")
    for _ in range(4):
        api.reviews(deployment)
    assert seen and all(url.startswith(API + "/") for url in seen), seen


# -- a web page the operator visits cannot use a server on their machine --------------------


@pytest.fixture
def anonymous(tmp_path: Path):
    config = ServerConfig.model_validate(
        {"ledger": f"sqlite:///{tmp_path / 'anon.db'}", "log": str(tmp_path / "anon.jsonl")}
    )
    runtime = Runtime(BASELINE, config, clock=FakeClock("2025-03-12T12:00:20Z"))
    with app_server(create_app(runtime)) as url:
        yield url, runtime


def test_a_cross_site_form_cannot_spend_an_anonymous_servers_budget(anonymous):
    """Without an `auth` section (loopback only) every caller may check; a page on another
    site can still send a "simple" request (text/plain, no preflight) to 127.0.0.1, which
    would record decisions and spend the budget. Requests a browser marks as cross-site
    are refused before anything is read or recorded."""
    url, runtime = anonymous
    body = json.dumps(_action("llm-rollback.yaml"))
    for headers in (
        {"Origin": "https://evil.test", "Content-Type": "text/plain"},
        {"Origin": "null", "Content-Type": "text/plain"},
        {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
    ):
        answer = httpx.post(f"{url}/v1/check", content=body, headers=headers)
        assert answer.status_code == 403, (headers, answer.text)
    assert not _logged(runtime)
    # curl, SDKs and the server's own origin are not browsers sent from elsewhere
    host = url.removeprefix("http://")
    for headers in ({}, {"Origin": f"http://{host}"}, {"Sec-Fetch-Site": "same-origin"}):
        assert httpx.post(f"{url}/v1/check", content=body, headers=headers).status_code == 200


# -- records: the answer is the recorded decision, whatever fails around it -----------------


def test_a_fault_after_the_gate_recorded_answers_the_recorded_decision(runtime, monkeypatch):
    """The inbox or the metrics failing after the gate logged (and spent) a decision must
    not answer a different, unlogged one: the caller's answer and the record agree."""

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the inbox is full")

    monkeypatch.setattr(runtime, "pending_from", broken)
    with app_server(create_app(runtime)) as url:
        native = httpx.post(
            f"{url}/v1/check", json=_action("llm-rollback.yaml"), headers=_auth("rui")
        ).json()
    logged = _logged(runtime)
    assert native["decision_id"] in logged, native.get("errors")
    assert logged[native["decision_id"]]["body"]["verdict"]["decision"] == native["decision"]


def test_a_busy_refusal_is_in_the_log(runtime):
    with app_server(create_app(runtime)) as url:
        runtime.inflight = runtime.config.limits.max_queued_checks + 1  # a full queue
        try:
            answer = httpx.post(
                f"{url}/v1/check", json=_action("llm-rollback.yaml"), headers=_auth("rui")
            ).json()
        finally:
            runtime.inflight = 0
    assert answer["fail_closed"] and answer["decision"] != "allow"  # fails closed, as promised
    logged = _logged(runtime)
    assert answer["decision_id"] in logged  # and is recorded, as every answer is
    assert logged[answer["decision_id"]]["body"]["verdict"]["fail_closed"] is True
    assert "Busy: " in answer["errors"][0]["message"]
