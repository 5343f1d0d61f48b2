"""AuthZEN 1.0 on ``aigre-policy serve``: the interop suites, batches, search, discovery."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from serving import ROOT, app_server, serve_process

pytest.importorskip("starlette")

from aigre_policy.gate import FakeClock
from aigre_policy.server.app import create_app
from aigre_policy.server.config import ServerConfig
from aigre_policy.server.identity import key_digest
from aigre_policy.server.runtime import Runtime

TODO = ROOT / "examples" / "authzen-todo"
SEARCH = ROOT / "examples" / "authzen-search"
BASELINE = ROOT / "policy_packs" / "aigre-baseline"
# CI has shared/ beside the checkout; AIGRE_SHARED_DIR points elsewhere (a worktree)
SHARED = Path(os.environ.get("AIGRE_SHARED_DIR") or ROOT.parent / "shared")
INTEROP = SHARED / "authzen-interop" / "run_interop.py"
PEP_KEY = "pep-key-0123456789abcdef0123456789abcdef"

RICK = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
MORTY = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
JERRY = "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"


def _pep_config(tmp_path: Path) -> Path:
    config = {
        "auth": {
            "api_keys": [
                {
                    "name": "todo-backend",
                    "sha256": key_digest(PEP_KEY),
                    "actor": {"id": "todo-backend", "kind": "automation", "trust": 3},
                    "scopes": ["authzen"],
                }
            ]
        }
    }
    path = tmp_path / "server.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _interop(url: str, *suites: str) -> subprocess.CompletedProcess:
    args = [
        sys.executable,
        str(INTEROP),
        url,
        "--quiet",
        "--header",
        f"Authorization: Bearer {PEP_KEY}",
    ]
    for suite in suites:
        args += ["--suite", suite]
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def interop_runner():
    if not INTEROP.is_file():
        if os.environ.get("AIGRE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"the AuthZEN interop runner is missing: {INTEROP}")
        pytest.skip(f"the AuthZEN interop runner is not beside the checkout: {INTEROP}")
    return INTEROP


def test_the_todo_pack_passes_every_todo_and_gateway_interop_suite(interop_runner, tmp_path):
    config = _pep_config(tmp_path)
    ledger = f"sqlite:///{tmp_path / 'todo.db'}"
    with serve_process(str(TODO), "--config", str(config), "--ledger", ledger) as url:
        done = _interop(url, "todo", "todo-01", "todo-00", "todo-decisions", "gateway")
    assert done.returncode == 0, done.stdout[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "188 passed, 0 failed"


def test_the_search_pack_passes_the_search_interop_suite(interop_runner, tmp_path):
    config = _pep_config(tmp_path)
    ledger = f"sqlite:///{tmp_path / 'search.db'}"
    with serve_process(str(SEARCH), "--config", str(config), "--ledger", ledger) as url:
        done = _interop(url, "search")
    assert done.returncode == 0, done.stdout[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "198 passed, 0 failed"


# -- the API, in process ---------------------------------------------------------------------


@pytest.fixture
def todo(tmp_path):
    config = ServerConfig(ledger=f"sqlite:///{tmp_path / 'l.db'}", log=tmp_path / "log.jsonl")
    runtime = Runtime(TODO, config, clock=FakeClock("2025-03-11T14:00:00Z"))
    with app_server(create_app(runtime)) as url:
        yield url


def _todo(subject: str, action: str, owner: str) -> dict:
    return {
        "subject": {"type": "user", "id": subject},
        "action": {"name": action},
        "resource": {"type": "todo", "id": "t-1", "properties": {"ownerID": owner}},
    }


def test_a_deny_is_200_with_reasons_from_the_fired_rules(todo):
    allowed = httpx.post(f"{todo}/access/v1/evaluation", json=_todo(RICK, "can_update_todo", "x@y"))
    assert allowed.status_code == 200
    assert allowed.json()["decision"] is True
    assert allowed.json()["context"]["reason_admin"]["rules"] == ["evil-genius-updates-any"]
    assert "is an evil genius" in allowed.json()["context"]["reason_user"]["en"]
    denied = httpx.post(f"{todo}/access/v1/evaluation", json=_todo(JERRY, "can_create_todo", "x"))
    assert denied.status_code == 200
    assert denied.json()["decision"] is False
    assert "default is deny" in denied.json()["context"]["reason_admin"]["en"]


def test_an_unknown_subject_has_no_roles(todo):
    answer = httpx.post(
        f"{todo}/access/v1/evaluation", json=_todo("nobody", "can_create_todo", "x")
    )
    assert answer.json()["decision"] is False


def test_a_missing_entity_is_400_with_a_json_error(todo):
    request = _todo(RICK, "can_read_todos", "x")
    del request["resource"]
    answer = httpx.post(f"{todo}/access/v1/evaluation", json=request)
    assert answer.status_code == 400
    assert "resource" in answer.json()["message"]


def test_evaluations_take_defaults_and_answer_in_request_order(todo):
    body = {
        "subject": {"type": "user", "id": MORTY},
        "action": {"name": "can_update_todo"},
        "evaluations": [
            {
                "resource": {
                    "type": "todo",
                    "id": "1",
                    "properties": {"ownerID": "rick@the-citadel.com"},
                }
            },
            {
                "resource": {
                    "type": "todo",
                    "id": "2",
                    "properties": {"ownerID": "morty@the-citadel.com"},
                }
            },
            {"action": {"name": "can_read_todos"}, "resource": {"type": "todo", "id": "3"}},
            {"resource": {"type": "todo"}},  # no id: this entry fails, the others stand
        ],
    }
    answer = httpx.post(f"{todo}/access/v1/evaluations", json=body, headers={"X-Request-ID": "b-1"})
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == "b-1"
    results = answer.json()["evaluations"]
    assert [r["decision"] for r in results] == [False, True, True, False]
    assert "resource.id" in results[3]["context"]["error"]["message"]


@pytest.mark.parametrize(
    ("semantic", "expected"),
    [
        ("execute_all", [True, False, True]),
        ("deny_on_first_deny", [True, False]),
        ("permit_on_first_permit", [True]),
    ],
)
def test_evaluations_semantics_stop_where_asked(todo, semantic, expected):
    body = {
        "subject": {"type": "user", "id": JERRY},
        "resource": {"type": "todo", "id": "1"},
        "evaluations": [
            {"action": {"name": "can_read_todos"}},
            {"action": {"name": "can_create_todo"}},
            {"action": {"name": "can_read_user"}},
        ],
        "options": {"evaluations_semantic": semantic},
    }
    answer = httpx.post(f"{todo}/access/v1/evaluations", json=body)
    assert [r["decision"] for r in answer.json()["evaluations"]] == expected


def test_evaluations_without_entries_is_the_single_evaluation(todo):
    answer = httpx.post(f"{todo}/access/v1/evaluations", json=_todo(RICK, "can_delete_todo", "x"))
    assert answer.json()["decision"] is True


def test_discovery_names_every_endpoint(todo):
    meta = httpx.get(f"{todo}/.well-known/authzen-configuration").json()
    assert meta["policy_decision_point"] == todo
    assert meta["access_evaluations_endpoint"] == f"{todo}/access/v1/evaluations"
    assert meta["search_action_endpoint"] == f"{todo}/access/v1/search/action"


def test_without_credentials_the_authzen_api_is_401(tmp_path):
    config = ServerConfig.model_validate(
        {
            **yaml.safe_load(_pep_config(tmp_path).read_text()),
            "ledger": f"sqlite:///{tmp_path}/l.db",
        }
    )
    with app_server(create_app(Runtime(TODO, config))) as url:
        request = _todo(RICK, "can_read_todos", "x")
        assert httpx.post(f"{url}/access/v1/evaluation", json=request).status_code == 401
        wrong = {"Authorization": "Bearer not-the-key"}
        assert (
            httpx.post(f"{url}/access/v1/evaluation", json=request, headers=wrong).status_code
            == 401
        )
        right = {"Authorization": f"Bearer {PEP_KEY}"}
        answer = httpx.post(f"{url}/access/v1/evaluation", json=request, headers=right)
        assert answer.json()["decision"] is True
        # the PEP's key has only the authzen scope: the native check is refused
        assert httpx.post(f"{url}/v1/check", json={}, headers=right).status_code == 403


def test_require_approval_answers_false_with_the_binding_hash(tmp_path):
    mapping = tmp_path / "authzen.yaml"
    mapping.write_text(
        yaml.safe_dump(
            {
                "action": {
                    "id": {"digest": "request"},
                    "kind": "action.name",
                    "target": "resource.id",
                    "environment": {"value": "production"},
                    "actor": {
                        "kind": {"value": "human"},
                        "id": "subject.id",
                        "trust": {"value": 4},
                    },
                    "change": {"type": {"value": "access"}},
                    "reversible": {"value": True},
                    "cost": {"estimated_usd": {"value": 0}},
                    "justification": {"signal": {"value": "ticket"}, "ref": {"value": "A-1"}},
                    "blast_radius": {"value": {"users_share": 0, "services": ["billing"]}},
                    "requested_at": {"value": "2025-03-12T12:00:00Z"},
                },
                "actor": {"id": "subject.id", "kind": {"value": "human"}, "trust": {"value": 4}},
            }
        )
    )
    config = ServerConfig(ledger=f"sqlite:///{tmp_path / 'l.db'}", authzen=mapping)
    with app_server(create_app(Runtime(BASELINE, config))) as url:
        request = {
            "subject": {"type": "user", "id": "rui.almeida"},
            "action": {"name": "iam_grant"},
            "resource": {"type": "role", "id": "role/prod-billing-admin:user/k.mensah"},
        }
        answer = httpx.post(f"{url}/access/v1/evaluation", json=request).json()
        pending = httpx.get(f"{url}/v1/approvals?state=pending").json()["approvals"]
    assert answer["decision"] is False, answer
    assert "access_request" in answer["context"], answer["context"]
    access = answer["context"]["access_request"]
    assert access["binding_hash"].startswith("sha256:")
    assert access["approvers"] == ["security"]
    assert answer["context"]["verdict"] == "require_approval"
    assert [p["action_digest"] for p in pending] == [access["binding_hash"]]


def test_search_on_a_pack_with_directories(tmp_path):
    config = ServerConfig(ledger=f"sqlite:///{tmp_path / 'l.db'}")
    with app_server(create_app(Runtime(SEARCH, config))) as url:
        actions = httpx.post(
            f"{url}/access/v1/search/action",
            json={
                "subject": {"type": "user", "id": "felix"},
                "resource": {"type": "record", "id": "101"},
            },
        )
        unknown = httpx.post(f"{url}/access/v1/search/nothing", json={})
    assert actions.json() == {"results": [], "page": {"next_token": ""}}
    assert unknown.status_code == 404


def test_a_pack_without_a_mapping_answers_501(tmp_path):
    config = ServerConfig(ledger=f"sqlite:///{tmp_path / 'l.db'}")
    with app_server(create_app(Runtime(BASELINE, config))) as url:
        answer = httpx.post(f"{url}/access/v1/evaluation", json=_todo(RICK, "x", "y"))
    assert answer.status_code == 501


def test_a_fault_in_an_evaluation_is_decision_false_never_true(tmp_path):
    runtime = Runtime(TODO, ServerConfig(ledger=f"sqlite:///{tmp_path / 'l.db'}"))

    async def broken(*args, **kwargs):
        raise RuntimeError("the ledger caught fire")

    runtime.check = broken  # type: ignore[method-assign]
    with app_server(create_app(runtime)) as url:
        one = httpx.post(f"{url}/access/v1/evaluation", json=_todo(RICK, "can_read_todos", "x"))
        batch = httpx.post(
            f"{url}/access/v1/evaluations",
            json={**_todo(RICK, "can_read_todos", "x"), "evaluations": [{}, {}]},
        )
        metrics = httpx.get(f"{url}/metrics").text
    assert one.status_code == 200
    assert one.json()["decision"] is False
    assert one.json()["context"]["error"] == {
        "status": 500,
        "message": "RuntimeError: the ledger caught fire",
    }
    assert [e["decision"] for e in batch.json()["evaluations"]] == [False, False]
    assert 'aigre_fail_closed_total{api="authzen"} 3.0' in metrics
