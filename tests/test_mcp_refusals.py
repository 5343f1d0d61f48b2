"""Every call the MCP gate refuses is in the decision log, even when the pack never judged
it: an unmapped tool, arguments that break the tool's input schema, a tool the server
does not declare, a mapping that cannot read the call. Each is the gate's own fail-closed
decision (hash-chained like any other), the reason in its evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import anyio

from aigre_policy.gate import FakeClock, Gate
from aigre_policy.gate.log import read_log, verify_log
from aigre_policy.mcp.mapping import load_mapping
from aigre_policy.mcp.toolgate import ToolGate

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "examples" / "mcp" / "ops-tools-pack"
AGENT = {"kind": "llm", "id": "agent-7", "trust": 3}
SCALE = {
    "type": "object",
    "properties": {"service": {"type": "string"}, "replicas": {"type": "integer"}},
    "required": ["service", "replicas"],
}


def decisions(log: Path) -> list[dict[str, Any]]:
    return [e.body for e in read_log(log) if e.kind == "decision"]


async def never() -> Any:
    raise AssertionError("a refused call reached the server")


@pytest.mark.parametrize(
    ("name", "arguments", "declared", "reason", "evidence"),
    [
        ("status", {"service": "checkout"}, {"status": None}, "unmapped", "has no mapping"),
        (
            "scale",
            {"service": "search", "replicas": "many"},
            {"scale": SCALE},
            "malformed",
            "replicas: 'many' is not of type 'integer'",
        ),
        ("restart", {"service": "api"}, {"scale": SCALE}, "unknown", "declares no tool `restart`"),
        # no input schema to catch it: the mapping's source finds no `service`
        ("restart", {}, {"restart": None}, "mapping", "arguments.service"),
    ],
)
def test_a_call_refused_before_judging_is_a_logged_fail_closed_decision(
    tmp_path: Path, name: str, arguments: Any, declared: Any, reason: str, evidence: str
) -> None:
    log = tmp_path / "decisions.jsonl"
    gate = Gate.from_pack(PACK, log=log, clock=FakeClock("2025-03-11T14:00:00Z"))
    with gate:
        toolgate = ToolGate(gate, load_mapping(PACK, gate.pack.input_schema), actor=AGENT)
        result = anyio.run(toolgate.call, name, arguments, declared, never)
    assert result.is_error and result.structured_content["reason"] == reason
    assert evidence in result.content[0].text
    [entry] = decisions(log)
    verdict = entry["verdict"]
    assert verdict["decision"] == "deny" and verdict["fail_closed"] is True
    assert verdict["decision_id"] == result.structured_content["decision_id"]
    assert any(
        e["path"] == "gate.caller" and f"mcp {reason}:" in e["message"] and evidence in e["message"]
        for e in verdict["errors"]
    ), verdict["errors"]
    assert entry["input"]["action"]["tool"] == {"name": name, "arguments": arguments}
    assert entry["input"]["context"]["actor"]["id"] == "agent-7"  # the attested actor
    assert verify_log(log).ok


def test_a_refusal_the_log_cannot_take_still_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate.from_pack(PACK, log=tmp_path / "decisions.jsonl")
    with gate:
        toolgate = ToolGate(gate, load_mapping(PACK, gate.pack.input_schema), actor=AGENT)

        def broken(*args: Any, **kwargs: Any) -> None:
            raise OSError("disk full")

        assert gate.log is not None
        monkeypatch.setattr(gate.log, "append", broken)
        result = anyio.run(toolgate.call, "status", {}, {"status": None}, never)
    assert result.is_error and result.structured_content["decision"] == "deny"
