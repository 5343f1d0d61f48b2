"""The MCP mapping: mcp.yaml read into tool rules, its diagnostics, and the sources it reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from aigre_policy.diagnostics import CompileError
from aigre_policy.mcp.mapping import MappingError, load_mapping
from aigre_policy.mcp.upstream_check import check_upstream
from aigre_policy.pack import load_pack

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "examples" / "mcp" / "ops-tools-pack"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return load_pack(PACK).input_schema


def mapping_of(tmp_path: Path, text: str, schema: dict[str, Any] | None) -> Any:
    path = tmp_path / "mcp.yaml"
    path.write_text(text, encoding="utf-8")
    return load_mapping(path, schema)


def problems(tmp_path: Path, text: str, schema: dict[str, Any] | None) -> list[str]:
    with pytest.raises(CompileError) as raised:
        mapping_of(tmp_path, text, schema)
    return [f"{d.span.line}:{d.span.column} {d.code} {d.message}" for d in raised.value.diagnostics]


def test_the_example_mapping_proposes_the_action_and_the_call(schema: dict[str, Any]) -> None:
    mapping = load_mapping(PACK, schema)
    rule = mapping.match("scale")
    assert rule is not None and mapping.with_tool
    assert mapping.propose(rule, "scale", {"service": "web", "replicas": 4}) == {
        "environment": "production",
        "reversible": True,
        "cost": {"estimated_usd": 120},
        "kind": "scale",
        "target": "web",
        "change": {"type": "infra"},
        "tool": {"name": "scale", "arguments": {"service": "web", "replicas": 4}},
    }
    assert mapping.match("status") is None and mapping.unmapped == "deny"


def test_sources_read_walk_default_and_scale(tmp_path: Path) -> None:
    mapping = mapping_of(
        tmp_path,
        "defaults: {cost: {estimated_usd: 0, recurring_monthly_usd: 1}}\n"
        "tools:\n"
        "  - tool: 'db_*'\n"
        "    action:\n"
        "      kind: {from: arguments.kind, default: run_job}\n"
        "      target: {from: arguments.where.table}\n"
        "      cost: {estimated_usd: {from: arguments.rows, times: 0.5, plus: 2}}\n"
        "  - tool: db_drop\n"
        "    action: {kind: data_deletion}\n",
        None,
    )
    rule = mapping.match("db_drop")
    assert rule is mapping.rules[0]  # the first entry that matches wins
    action = mapping.propose(rule, "db_drop", {"where": {"table": "t"}, "rows": 10})
    assert action == {
        "cost": {"estimated_usd": 7.0, "recurring_monthly_usd": 1},  # nested fields merge
        "kind": "run_job",
        "target": "t",
    }
    with pytest.raises(MappingError, match=re.escape("the call has no `arguments.where.table`")):
        mapping.propose(rule, "db_drop", {"rows": 1})
    for rows in ("10", True, None):
        with pytest.raises(MappingError, match="not a number"):
            mapping.propose(rule, "db_drop", {"where": {"table": "t"}, "rows": rows})


def test_a_mapping_that_breaks_the_schema_is_reported_where_it_breaks(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "unmapped: allow\ntools:\n  - tool: 3\n    action: {kind: restart}\n  - {tool: x}\n",
        None,
    )
    assert found == [
        "1:11 E520 unmapped: 'allow' is not one of ['deny', 'forward']",
        "3:11 E520 tools.0.tool: 3 is not of type 'string'",
        "5:5 E520 tools.1: 'action' is a required property",
    ]


def test_a_mapping_the_pack_cannot_judge_is_reported(tmp_path: Path, schema: dict) -> None:
    found = problems(
        tmp_path,
        "tools:\n"
        "  - tool: scale\n"
        "    action:\n"
        "      kind: scale\n"
        "      targte: {from: arguments.service}\n"
        "      cost: {estimated_usd: {from: arguments.replicas, timez: 3}}\n"
        "  - tool: scale\n"
        "    action: {id: x, tool: y}\n",
        schema,
    )
    assert found == [
        "5:15 E521 `action.targte` is not a field of the pack's input schema",
        "6:63 E521 a source takes from, times, plus and default, not timez",
        "7:11 E521 tool `scale` is mapped twice (entries 0 and 1)",
        "8:13 E521 tool `scale` proposes no `kind`",
        "8:18 E521 `action.id` is filled by the gate for each call, not by the mapping",
        "8:27 E521 `action.tool` holds the call's name and arguments, filled by the gate",
    ]


def test_check_upstream_reports_names_and_argument_paths(schema: dict[str, Any]) -> None:
    mapping = load_mapping(PACK, schema)
    declared = {
        "restart": {"type": "object", "properties": {"service": {"type": "string"}}},
        "scale": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "replicas": {"type": "string"}},
            "required": ["name", "replicas"],
        },
        "rollback": {
            "type": "object",
            "properties": {"service": {"type": "string"}},
            "required": ["service"],
        },
    }
    found = [f"{d.span.line} {d.message}" for d in check_upstream(mapping, declared)]
    assert [re.sub(r"^\d+ ", "", f) for f in found] == [
        "`action.target` reads `arguments.service` of `restart`: "
        "the argument is optional; give the source a `default`",
        "`action.cost.estimated_usd` reads `arguments.replicas` of `scale`: "
        "`times`/`plus` need a number, and the schema does not say it is one",
        "`action.target` reads `arguments.service` of `scale`: "
        "the tool's input schema declares no `service` there",
        "no tool the upstream declares matches `delete_data`",
        "no tool the upstream declares matches `grant_access`",
    ]


def test_arguments_are_judged_by_the_tools_schema_and_fail_closed() -> None:
    pytest.importorskip("mcp")
    from aigre_policy.mcp.toolgate import schema_problems

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert schema_problems(schema, {"n": 1}) == []
    assert schema_problems(schema, {"n": "1"}) == ["n: '1' is not of type 'integer'"]
    assert schema_problems(schema, ["n"]) == ["the arguments are not an object"]
    broken = schema_problems({"type": "object", "properties": {"n": {"type": 5}}}, {"n": 1})
    assert broken and broken[0].startswith("the tool's input schema")


def test_without_the_mcp_extra_the_proxy_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from aigre_policy.cli.main import main

    monkeypatch.setitem(sys.modules, "mcp", None)  # `import mcp` raises ImportError
    for name in [m for m in sys.modules if m.startswith(("aigre_policy.mcp", "mcp."))]:
        monkeypatch.delitem(sys.modules, name)
    assert main(["mcp-proxy", "--pack", str(PACK), "--", "server"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "aigre-policy[mcp]"' in err and "Traceback" not in err
