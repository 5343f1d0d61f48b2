"""``aigre-policy serve``: the gate behind HTTP, on a real server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from serving import ROOT, app_server

pytest.importorskip("starlette")

from aigre_policy.gate import FakeClock
from aigre_policy.server.app import create_app
from aigre_policy.server.config import ServerConfig
from aigre_policy.server.runtime import Runtime

BASELINE = ROOT / "policy_packs" / "aigre-baseline"
FIXTURES = ROOT / "fixtures" / "actions"


def fixture_action(name: str) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / name).read_text())["action"]


def runtime(tmp_path: Path, **config: Any) -> Runtime:
    config.setdefault("ledger", f"sqlite:///{tmp_path / 'ledger.db'}")
    return Runtime(BASELINE, ServerConfig(**config), clock=FakeClock("2025-03-11T14:02:40Z"))


@pytest.fixture
def server(tmp_path: Path):
    with app_server(create_app(runtime(tmp_path, log=tmp_path / "decisions.jsonl"))) as url:
        yield url


def test_health_and_readiness_name_the_pack(server):
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server}/readyz")
    assert ready.status_code == 200
    assert ready.json()["pack"]["name"] == "aigre-baseline"
    assert ready.json()["ledger"] == "ok"


def test_check_answers_the_gate_verdict_with_its_evidence(server, tmp_path):
    answer = httpx.post(f"{server}/v1/check", json=fixture_action("llm-rollback.yaml"))
    assert answer.status_code == 200
    verdict = answer.json()
    # anonymous: no attested actor, so the LLM's claimed trust 3 does not count
    assert verdict["decision"] == "deny"
    assert "llm-trust-below-production-minimum" in [r["id"] for r in verdict["fired"]]
    assert verdict["gate"]["action_digest"].startswith("sha256:")
    assert "actor" not in verdict["gate"]
    logged = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert any(e.get("kind") == "decision" for e in logged)


def test_request_id_is_echoed(server):
    answer = httpx.post(
        f"{server}/v1/check",
        json=fixture_action("llm-rollback.yaml"),
        headers={"X-Request-ID": "r-7"},
    )
    assert answer.headers["x-request-id"] == "r-7"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_parameter"),
        (b"", 400, "invalid_parameter"),
        (b'{"x": "' + b"a" * 2_000_000 + b'"}', 413, "request_too_large"),
    ],
)
def test_a_malformed_or_oversized_body_is_a_json_4xx(server, body, status, code):
    answer = httpx.post(f"{server}/v1/check", content=body)
    assert answer.status_code == status
    assert answer.json()["code"] == code


def test_an_action_breaking_the_schema_fails_closed(server):
    answer = httpx.post(f"{server}/v1/check", json={"kind": "rollback"})
    assert answer.status_code == 200
    assert answer.json()["fail_closed"] is True
    assert answer.json()["decision"] != "allow"


def test_an_internal_fault_answers_the_fail_closed_verdict(tmp_path):
    served = runtime(tmp_path)

    class Broken:
        def check(self, action: Any, **kw: Any) -> Any:
            raise RuntimeError("the gate blew up")

        def close(self) -> None:
            pass

    served.served = served.served.__class__(
        served.served.pack,
        Broken(),
        served.served.entrypoint,
        served.served.data,  # type: ignore[arg-type]
    )
    with app_server(create_app(served)) as url:
        answer = httpx.post(f"{url}/v1/check", json=fixture_action("llm-rollback.yaml"))
    verdict = answer.json()
    assert answer.status_code == 200
    assert verdict["fail_closed"] is True
    assert verdict["decision"] == served.served.pack.fail_closed != "allow"
    assert "the gate blew up" in verdict["errors"][0]["message"]


def test_unknown_route_is_a_json_404(server):
    answer = httpx.get(f"{server}/nope")
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"


def test_data_api_answers_undefined_paths_with_an_empty_object(server):
    assert httpx.post(f"{server}/v1/data/nothing/here", json={"input": {}}).json() == {}
    envelopes = httpx.post(f"{server}/v1/data/aigre/aigre_baseline/envelopes", json={})
    assert "cost" in envelopes.json()["result"]


def test_the_data_api_refuses_an_oversized_or_malformed_body(server):
    path = f"{server}/v1/data/aigre/aigre_baseline/decision"
    too_big = httpx.post(path, content=b'{"input": "' + b"a" * 2_000_000 + b'"}')
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "request_too_large"
    assert httpx.post(path, content=b"{nope").status_code == 400
    no_input = httpx.post(path, json={})
    assert no_input.json()["result"]["fail_closed"] is True
    assert no_input.json()["result"]["decision"] != "allow"


def _metric(text: str, name: str) -> float:
    """The value of one sample line ``name value`` in Prometheus' text format."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} in /metrics")


def test_metrics_count_decisions_and_read_the_log(server):
    for name in ("llm-rollback.yaml", "routine-restart-by-automation.yaml"):
        httpx.post(f"{server}/v1/check", json=fixture_action(name))
    httpx.post(f"{server}/v1/check", json={"kind": "rollback"})  # fails closed
    path = f"{server}/v1/data/aigre/aigre_baseline/decision"
    httpx.post(path, json={"input": {}})
    text = httpx.get(f"{server}/metrics").text
    assert _metric(text, 'aigre_decisions_total{api="check",decision="deny"}') >= 1
    assert _metric(text, 'aigre_fail_closed_total{api="check"}') == 1
    assert _metric(text, 'aigre_fail_closed_total{api="data"}') == 1
    assert _metric(text, 'aigre_decision_seconds_count{api="check"}') == 3
    assert _metric(text, "aigre_log_readable") == 1
    assert _metric(text, "aigre_log_fail_closed") == 1
    assert _metric(text, 'aigre_log_decisions{decision="deny"}') >= 1


def test_a_ledger_that_fails_gives_the_fail_closed_verdict_and_shows(tmp_path):
    from aigre_policy.gate.ledger import LedgerError

    served = runtime(tmp_path)

    def down():
        raise LedgerError("ledger.db: OperationalError: unable to open database file")

    with app_server(create_app(served)) as url:
        served.ledger.session = down  # type: ignore[method-assign]
        verdict = httpx.post(f"{url}/v1/check", json=fixture_action("llm-rollback.yaml")).json()
        ready = httpx.get(f"{url}/readyz")
        text = httpx.get(f"{url}/metrics").text
    assert verdict["fail_closed"] is True
    assert verdict["decision"] != "allow"
    assert any(e["path"] == "gate.ledger" for e in verdict["errors"])
    assert ready.status_code == 503
    assert "unable to open" in ready.json()["ledger"]
    assert _metric(text, "aigre_ledger_errors_total") == 1


def test_shutdown_drains_the_checks_in_flight(tmp_path):
    import threading
    import time

    served = runtime(tmp_path, log=tmp_path / "decisions.jsonl")
    gate = served.served.gate
    original = gate.check
    started = threading.Event()

    def slow(action: Any, **kw: Any) -> Any:
        started.set()
        time.sleep(1.0)
        return original(action, **kw)

    gate.check = slow  # type: ignore[method-assign]
    answers: list[httpx.Response] = []
    with app_server(create_app(served)) as url:

        def ask() -> None:
            action = fixture_action("llm-rollback.yaml")
            answers.append(httpx.post(f"{url}/v1/check", json=action, timeout=30))

        asking = threading.Thread(target=ask)
        asking.start()
        assert started.wait(10)
    # the server was told to stop while the check was in flight
    asking.join(30)
    assert answers[0].status_code == 200
    assert answers[0].json()["decision"] == "deny"
    entries = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert [e["body"]["verdict"]["decision_id"] for e in entries if e["kind"] == "decision"] == [
        answers[0].json()["decision_id"]
    ]
    assert served.inflight == 0


def _wait_for(predicate: Any, seconds: float = 30.0) -> Any:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("the server did not get there in time")


def test_hot_reload_swaps_a_new_version_and_keeps_the_old_on_a_broken_one(tmp_path):
    import shutil

    pack = tmp_path / "pack"
    shutil.copytree(BASELINE, pack)
    config = ServerConfig(ledger=f"sqlite:///{tmp_path / 'l.db'}", reload_seconds=0.2)
    served = Runtime(pack, config, clock=FakeClock("2025-03-11T14:02:40Z"))
    manifest = pack / "pack.yaml"
    with app_server(create_app(served)) as url:
        manifest.write_text(manifest.read_text().replace("version: 1.0.0", "version: 1.0.1"))
        _wait_for(lambda: httpx.get(f"{url}/readyz").json()["pack"]["version"] == "1.0.1")
        policy = next((pack / "policies").glob("*.aigre"))
        policy.write_text(policy.read_text() + "\nrule broken {\n")
        ready = _wait_for(lambda: (r := httpx.get(f"{url}/readyz").json())["reload"]["error"] and r)
        assert ready["pack"]["version"] == "1.0.1"  # the old version keeps serving
        assert ready["ready"] is True
        assert ".aigre:" in ready["reload"]["error"]  # file:line:col of the first error
        verdict = httpx.post(f"{url}/v1/check", json=fixture_action("llm-rollback.yaml")).json()
        assert verdict["pack"]["version"] == "1.0.1"
        assert verdict["fail_closed"] is False
        policy.write_text(policy.read_text().replace("\nrule broken {\n", ""))
        _wait_for(lambda: httpx.get(f"{url}/readyz").json()["reload"]["ok"])


def test_checks_past_the_queue_limit_fail_closed_at_once(tmp_path):
    import threading
    import time

    served = runtime(tmp_path, limits={"max_queued_checks": 1})
    gate = served.served.gate
    original = gate.check
    started = threading.Event()

    def slow(action: Any, **kw: Any) -> Any:
        started.set()
        time.sleep(1.0)
        return original(action, **kw)

    gate.check = slow  # type: ignore[method-assign]
    action = fixture_action("llm-rollback.yaml")
    with app_server(create_app(served)) as url:
        first: list[httpx.Response] = []
        asking = threading.Thread(
            target=lambda: first.append(httpx.post(f"{url}/v1/check", json=action, timeout=30))
        )
        asking.start()
        assert started.wait(10)
        second = httpx.post(f"{url}/v1/check", json=action, timeout=30).json()
        asking.join(30)
    assert second["fail_closed"] is True
    assert second["decision"] != "allow"
    assert "Busy: 1 checks are already waiting" in second["errors"][0]["message"]
    assert first[0].json()["fail_closed"] is False


def test_a_fault_in_pure_evaluation_answers_the_fail_closed_document(tmp_path):
    served = runtime(tmp_path)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("evaluation blew up")

    served.served.pack.evaluate = broken  # type: ignore[method-assign]
    path = "/v1/data/aigre/aigre_baseline/decision"
    with app_server(create_app(served)) as url:
        answer = httpx.post(f"{url}{path}", json={"input": {"action": {}}})
    result = answer.json()["result"]
    assert answer.status_code == 200
    assert result["fail_closed"] is True
    assert result["decision"] == "require_approval"  # the pack's fail_closed, never allow
    assert "evaluation blew up" in result["errors"][0]["message"]


def _pack_with_sensitive(tmp_path: Path, sensitive: str) -> Path:
    import shutil

    pack = tmp_path / "pack"
    if not pack.exists():
        shutil.copytree(BASELINE, pack)
    manifest = pack / "pack.yaml"
    text = manifest.read_text().split("\nsensitive:")[0].rstrip("\n")
    manifest.write_text(f"{text}\nsensitive:\n  {sensitive}: drop\n")
    return pack


def test_the_log_drops_what_the_pack_marks_sensitive(tmp_path):
    pack = _pack_with_sensitive(tmp_path, "action.justification.summary")
    config = ServerConfig(ledger=f"sqlite:///{tmp_path / 'l.db'}", log=tmp_path / "d.jsonl")
    served = Runtime(pack, config, clock=FakeClock("2025-03-11T14:02:40Z"))
    action = fixture_action("llm-rollback.yaml")
    secret = action["justification"]["summary"]
    with app_server(create_app(served)) as url:
        httpx.post(f"{url}/v1/check", json=action)
    logged = (tmp_path / "d.jsonl").read_text()
    assert '"decision"' in logged
    assert secret not in logged


def test_a_new_version_that_changes_what_is_sensitive_is_refused(tmp_path):
    pack = _pack_with_sensitive(tmp_path, "action.justification.summary")
    config = ServerConfig(ledger=f"sqlite:///{tmp_path / 'l.db'}", log=tmp_path / "d.jsonl")
    served = Runtime(pack, config)
    _pack_with_sensitive(tmp_path, "action.target")
    assert served.reload() is False
    assert "sensitive" in (served.reload_error or "")
    assert served.served.pack.sensitive == {"action.justification.summary": "drop"}
