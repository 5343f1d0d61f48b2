"""DNS rebinding: a server answers only the ``Host`` headers it is meant for. A page on an
attacker's domain that resolves to 127.0.0.1 reaches the socket, but names its own domain
in ``Host``: refused with 400 and a problem document, before any route (or the Data API's
fast path) runs. Real requests on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from serving import ROOT, app_server, serve_process

pytest.importorskip("starlette")

from aigre_policy.server.app import create_app
from aigre_policy.server.config import ConfigError, load_config
from aigre_policy.server.hosts import allowed_hosts
from aigre_policy.server.runtime import Runtime

BASELINE = ROOT / "policy_packs" / "aigre-baseline"
ENTRYPOINT = "/v1/data/aigre/baseline/decision"


def _runtime(tmp_path: Path, **config: Any) -> Runtime:
    from aigre_policy.server.config import ServerConfig

    config.setdefault("ledger", f"sqlite:///{tmp_path / 'ledger.db'}")
    return Runtime(BASELINE, ServerConfig(**config))


def _refused(answer: httpx.Response) -> None:
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["code"] == "invalid_host"


def test_a_foreign_host_is_refused_on_a_loopback_server(tmp_path: Path) -> None:
    with app_server(create_app(_runtime(tmp_path))) as url:
        port = url.rsplit(":", 1)[1]
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
            _refused(httpx.get(f"{url}/healthz", headers={"Host": host}))
            _refused(httpx.get(f"{url}/v1/approvals", headers={"Host": host}))
            _refused(httpx.post(f"{url}{ENTRYPOINT}", json={"input": {}}, headers={"Host": host}))
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
            answer = httpx.get(f"{url}/healthz", headers={"Host": host})
            assert answer.status_code == 200, (host, answer.text)
        assert httpx.get(f"{url}/healthz").status_code == 200  # what a client sends itself


def test_the_configured_hosts_replace_the_defaults(tmp_path: Path) -> None:
    served = _runtime(tmp_path, allowed_hosts=["aigre.example", "*.aigre.internal"])
    with app_server(create_app(served)) as url:
        for host in ("aigre.example", "eu.aigre.internal:8181"):
            assert httpx.get(f"{url}/healthz", headers={"Host": host}).status_code == 200
        _refused(httpx.get(f"{url}/healthz"))  # 127.0.0.1 is no longer named
        _refused(httpx.get(f"{url}/healthz", headers={"Host": "aigre.example.evil"}))


def test_a_server_bound_beyond_loopback_answers_any_host_unless_told() -> None:
    assert allowed_hosts(None, "0.0.0.0") == ["*"]
    assert "::1" in allowed_hosts(None, "127.0.0.1")
    assert allowed_hosts(None, "::1")[-1] == "[::1]"
    assert allowed_hosts(("a.example",), "0.0.0.0") == ["a.example"]


def test_a_wildcard_inside_a_host_pattern_is_refused_with_its_place(tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("allowed_hosts:\n  - aigre.*.example\n")
    with pytest.raises(
        ConfigError, match=r"server.yaml:2:3: allowed_hosts: .*aigre.\*.example.*wildcard"
    ):
        load_config(config)


def test_serve_checks_the_host_of_every_request(tmp_path: Path) -> None:
    """The command, not only the app: ``serve`` on 127.0.0.1 passes its address on."""
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    with serve_process(str(BASELINE), "--ledger", ledger) as url:
        _refused(httpx.get(f"{url}/readyz", headers={"Host": "rebound.evil.example"}))
        assert httpx.get(f"{url}/readyz").status_code == 200
