"""The MCP proxy over streamable HTTP attests each caller as the identity it authenticated
with: the same `auth` configuration as `aigre-policy serve` (API keys stored as their
SHA-256, JWT bearer tokens verified against a JWKS file). The SDK's own HTTP client sends
the bearer tokens; no credentials, or a forged token, is a 401."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import anyio
import httpx2
import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from aigre_policy.gate.log import read_log, verify_log
from aigre_policy.server.identity import key_digest
from tests.test_mcp_proxy import ENV, PACK, SERVER, _free_port, _wait_for, proxy_args

AGENT_KEY = "agent-key-0123456789abcdef0123456789abcdef"
OPERATOR_KEY = "operator-key-0123456789abcdef0123456789ab"


def _key(name: str, key: str, kind: str, trust: int) -> dict[str, Any]:
    return {
        "name": name,
        "sha256": key_digest(key),
        "actor": {"id": name, "kind": kind, "trust": trust},
    }


@pytest.fixture
def signing_key(tmp_path: Path) -> Any:
    private = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    jwks = {"keys": [{**public, "kid": "k1", "alg": "ES256", "use": "sig"}]}
    (tmp_path / "keys.jwks.json").write_text(json.dumps(jwks))
    return private


def _token(private: Any, **claims: Any) -> str:
    expires = int(time.time()) + 300
    body = {"iss": "https://idp.test", "aud": "aigre", "sub": "li.wen", "exp": expires}
    return jwt.encode({**body, **claims}, private, algorithm="ES256", headers={"kid": "k1"})


@pytest.fixture
def proxy(tmp_path: Path, signing_key: Any) -> Iterator[str]:
    (tmp_path / "directory.yaml").write_text("finops: [fay]\n")
    config = {
        "auth": {
            "api_keys": [
                _key("agent-7", AGENT_KEY, "llm", 3),
                _key("ops-person", OPERATOR_KEY, "human", 5),
            ],
            "jwt": {
                "jwks_file": "keys.jwks.json",
                "issuer": "https://idp.test",
                "audience": "aigre",
            },
        }
    }
    (tmp_path / "server.yaml").write_text(yaml.safe_dump(config))
    port = _free_port()
    args = proxy_args(tmp_path, "--listen", f"127.0.0.1:{port}")
    args += ["--config", str(tmp_path / "server.yaml"), "--hide-refused"]
    args += ["--", sys.executable, str(SERVER)]
    process = subprocess.Popen([sys.executable, *args], env=ENV, stderr=subprocess.PIPE)
    try:
        _wait_for(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _raised(exc: BaseException, kind: type) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_raised(e, kind) for e in exc.exceptions)
    return isinstance(exc, kind)


def _client(url: str, credential: str | None) -> Client:
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    http = create_mcp_http_client(headers=headers)
    return Client(streamable_http_client(url, http_client=http))


async def _tools(url: str, credential: str) -> set[str]:
    async with _client(url, credential) as client:
        return {tool.name for tool in (await client.list_tools()).tools}


async def _delete(url: str, credential: str | None) -> Any:
    async with _client(url, credential) as client:
        # the arguments claim a human: never read
        return await client.call_tool("delete_data", {"table": "orders", "actor": "root"})


def test_each_http_caller_is_attested_as_its_own_identity(
    tmp_path: Path, proxy: str, signing_key: Any
) -> None:
    as_agent = anyio.run(_delete, proxy, AGENT_KEY)
    as_operator = anyio.run(_delete, proxy, OPERATOR_KEY)
    as_jwt_human = anyio.run(_delete, proxy, _token(signing_key, aigre_kind="human"))
    as_jwt_llm = anyio.run(_delete, proxy, _token(signing_key, aigre_kind="llm", aigre_trust=2))
    # the same call, two verdicts: an agent may not delete data, a person may
    assert as_agent.is_error and "not an agent's to do" in as_agent.content[0].text
    assert not as_operator.is_error and as_operator.content[0].text == "deleted orders"
    assert not as_jwt_human.is_error
    assert as_jwt_llm.is_error
    log = tmp_path / "decisions.jsonl"
    actors = [e.body["input"]["context"]["actor"] for e in read_log(log) if e.kind == "decision"]
    assert actors == [
        {"id": "agent-7", "kind": "llm", "trust": 3},
        {"id": "ops-person", "kind": "human", "trust": 5},
        {"id": "li.wen", "kind": "human", "trust": 0},
        {"id": "li.wen", "kind": "llm", "trust": 2},
    ]
    assert verify_log(log).ok


def test_hide_refused_lists_what_each_caller_may_use(proxy: str) -> None:
    assert "delete_data" not in anyio.run(_tools, proxy, AGENT_KEY)
    assert "delete_data" in anyio.run(_tools, proxy, OPERATOR_KEY)


def test_config_is_for_http_callers(tmp_path: Path) -> None:
    from aigre_policy.cli.main import main

    (tmp_path / "server.yaml").write_text("auth: {api_keys: []}\n")
    args = ["mcp-proxy", "--pack", str(PACK), "--config", str(tmp_path / "server.yaml")]
    assert main([*args, "--", sys.executable, str(SERVER)]) == 2  # stdio: the --actor


@pytest.mark.parametrize("credential", ["none", "unknown key", "forged token", "expired token"])
def test_a_caller_without_valid_credentials_is_refused_with_401(
    tmp_path: Path, proxy: str, signing_key: Any, credential: str
) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    sent = {
        "none": None,
        "unknown key": "not-a-configured-key-0123456789abcdef",
        "forged token": _token(other, aigre_kind="human", aigre_trust=5),
        "expired token": _token(signing_key, aigre_kind="human", exp=int(time.time()) - 3600),
    }[credential]
    answer = httpx2.post(
        proxy,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {sent}"} if sent else {},
    )
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    try:  # the SDK's client cannot even connect
        anyio.run(_delete, proxy, sent)
    except Exception as exc:
        assert _raised(exc, MCPError), repr(exc)
    else:
        pytest.fail("the call went through without valid credentials")
    log = tmp_path / "decisions.jsonl"
    assert not log.exists() or not [e for e in read_log(log) if e.kind == "decision"]
