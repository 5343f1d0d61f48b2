"""The published data models and their committed JSON Schemas."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, ValidationError

from aigre_policy.models.action import Context, ProposedAction
from aigre_policy.models.publish import published_schemas, render
from aigre_policy.models.verdict import VerdictDocument

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "schemas"
REGENERATE = "python -m aigre_policy.models.publish"

PUBLISHED = published_schemas()


def validator(file_name: str) -> jsonschema.Draft202012Validator:
    """A draft 2020-12 validator for one published schema, checking formats too."""
    return jsonschema.Draft202012Validator(
        PUBLISHED[file_name], format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def schema_errors(file_name: str, instance: Any) -> list[str]:
    return [error.message for error in validator(file_name).iter_errors(instance)]


# ------------------------------------------------------------------ examples

ACTION: dict[str, Any] = {
    "id": "act-2024-0412-0007",
    "kind": "rollback",
    "target": "checkout",
    "environment": "production",
    "actor": {
        "kind": "llm",
        "id": "agent:remediator",
        "model": "claude-sonnet",
        "trust": 3,
        "on_behalf_of": "alice@example.com",
    },
    "change": {"type": "config", "lines": 4, "files": 1, "summary": "revert to v2.14.1"},
    "reversible": True,
    "rollback": {"plan": "redeploy v2.15.0", "tested": True, "estimated_minutes": 5},
    "blast_radius": {"users_share": 0.35, "services": ["checkout"], "regions": ["eu-west-1"]},
    "cost": {"estimated_usd": 0, "recurring_monthly_usd": 0},
    "data": {
        "classification": "confidential",
        "personal_data": True,
        "subject_regions": ["eu"],
        "stored_in": ["eu-west-1"],
        "records": 120000,
    },
    "approvals": [{"by": "bob@example.com", "group": "sre-oncall", "at": "2024-04-12T09:58:00Z"}],
    "justification": {"signal": "slo_burn", "ref": "ALERT-8812", "summary": "p99 latency x4"},
    "requested_at": "2024-04-12T10:00:00Z",
}

CONTEXT: dict[str, Any] = {
    "now": "2024-04-12T10:00:05Z",
    "change_freezes": [
        {
            "name": "quarter-end",
            "starts_at": "2024-03-29T00:00:00Z",
            "ends_at": "2024-04-02T00:00:00Z",
            "services": ["billing"],
            "environments": ["production"],
        }
    ],
    "error_budget_remaining": 0.12,
    "incidents_open": [{"id": "INC-311", "severity": "sev2", "services": ["checkout"]}],
}

VERDICT: dict[str, Any] = {
    "decision": "require_approval",
    "fail_closed": False,
    "default_applied": False,
    "fired": [
        {
            "id": "irreversible-production-change",
            "verdict": "require_approval",
            "title": "Irreversible production changes need a human",
            "category": "risk",
            "severity": "high",
            "tags": ["production", "safety"],
            "message": "data_deletion on orders-db cannot be undone",
            "location": {"file": "policies/autonomy.aigre", "line": 12, "column": 3},
            "approvers": ["dba", "sre-oncall"],
            "escalate_to": [],
            "bindings": {
                "action.environment": "production",
                "action.reversible": False,
                "action.kind": "data_deletion",
                "action.target": "orders-db",
            },
            "comparisons": [
                {
                    "expression": 'action.environment == "production"',
                    "left": "production",
                    "op": "==",
                    "right": "production",
                    "result": True,
                }
            ],
        },
        {
            "id": "unfamiliar_change",
            "verdict": "escalate",
            "category": "data-residency",
            "severity": "medium",
            "tags": [],
            "message": "120000 records leave the EU",
            "location": {"file": "policies/data.aigre", "line": 40, "column": 3},
            "approvers": [],
            "escalate_to": ["llm-judge"],
            "bindings": {"action.data.records": 120000, "action.data.subject_regions": ["eu"]},
            "comparisons": [
                {
                    "expression": '"eu" in action.data.subject_regions',
                    "left": "eu",
                    "op": "in",
                    "right": ["eu"],
                    "result": True,
                },
                {
                    "expression": "action.data.records > data.max_records",
                    "left": 120000,
                    "op": ">",
                    "right": 10000,
                    "result": True,
                },
            ],
        },
    ],
    "warnings": [
        {
            "id": "low-error-budget",
            "verdict": "warn",
            "category": "reliability",
            "severity": "low",
            "tags": [],
            "message": "only 12% of the error budget is left",
            "location": {"file": "policies/slo.aigre", "line": 7, "column": 3},
            "approvers": [],
            "escalate_to": [],
            "bindings": {"context.error_budget_remaining": 0.12},
            "comparisons": [
                {
                    "expression": "(context.error_budget_remaining ?? 1) < 0.2",
                    "left": 0.12,
                    "op": "<",
                    "right": 0.2,
                    "result": True,
                }
            ],
        }
    ],
    "approvers": ["dba", "sre-oncall"],
    "escalate_to": ["llm-judge"],
    "errors": [],
    "pack": {
        "name": "autonomy",
        "version": "1.4.0-rc.1+build.7",
        "digest": "sha256:" + "3f" * 32,
    },
    "decision_id": "0b6f2c1e-7d3a-4c8e-9f10-2a4b6c8d0e1f",
    "input_digest": "sha256:" + "a0" * 32,
    "elapsed_us": 41.5,
}

FAIL_CLOSED_VERDICT: dict[str, Any] = {
    **VERDICT,
    "decision": "deny",
    "fail_closed": True,
    "fired": [],
    "warnings": [],
    "approvers": [],
    "escalate_to": [],
    "errors": [
        {
            "kind": "input",
            "path": "action.actor.trust",
            "message": "9 is greater than the maximum of 5",
            "keyword": "maximum",
        },
        {"kind": "engine", "path": "", "message": "evaluation exceeded its budget"},
    ],
}


DELETE = object()


def changed(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``document`` with the value at dotted ``path`` replaced.

    Numeric segments index lists; the value ``DELETE`` removes the key instead.
    """
    result = copy.deepcopy(document)
    *parents, last = path.split(".")
    node: Any = result
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return result


# ------------------------------------------------------- committed schemas


@pytest.mark.parametrize("file_name", sorted(PUBLISHED))
def test_committed_schema_is_current(file_name: str) -> None:
    path = SCHEMA_DIR / file_name
    assert path.exists(), f"{path} is missing; run `{REGENERATE}` and commit docs/schemas/"
    committed = path.read_text(encoding="utf-8")
    assert json.loads(committed) == PUBLISHED[file_name], (
        f"{path} is stale: a model changed without regenerating its schema. "
        f"Run `{REGENERATE}` and commit docs/schemas/."
    )
    assert committed == render(PUBLISHED[file_name]), (
        f"{path} is not in canonical form; run `{REGENERATE}` and commit docs/schemas/."
    )


def test_no_unexpected_schema_files() -> None:
    committed = {path.name for path in SCHEMA_DIR.glob("*.schema.json")}
    assert committed == set(PUBLISHED), (
        f"docs/schemas/ holds {sorted(committed)}, published are {sorted(PUBLISHED)}"
    )


@pytest.mark.parametrize("file_name", sorted(PUBLISHED))
def test_published_schema_is_valid_draft_2020_12(file_name: str) -> None:
    schema = PUBLISHED[file_name]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://aigre.dev/schemas/{file_name}"
    assert schema["title"]


def test_publish_main_writes_the_published_schemas(tmp_path: Path) -> None:
    from aigre_policy.models.publish import main

    assert main([str(tmp_path)]) == 0
    for file_name, schema in PUBLISHED.items():
        text = (tmp_path / file_name).read_text(encoding="utf-8")
        assert text.endswith("}\n")
        assert json.loads(text) == schema


# ---------------------------------------------------------------- verdict


@pytest.mark.parametrize("document", [VERDICT, FAIL_CLOSED_VERDICT], ids=["rules", "failed"])
def test_realistic_verdict_validates(document: dict[str, Any]) -> None:
    model = VerdictDocument.model_validate(document)
    assert model.model_dump(mode="json", exclude_none=True) == document
    assert schema_errors("verdict.schema.json", document) == []


BROKEN_VERDICTS = {
    "bad decision": changed(VERDICT, "decision", "permit"),
    "missing pack digest": changed(VERDICT, "pack.digest", DELETE),
    "wrong verdict in a fired rule": changed(VERDICT, "fired.0.verdict", "block"),
    "pack digest not sha256": changed(VERDICT, "pack.digest", "md5:" + "0" * 32),
    "short input digest": changed(VERDICT, "input_digest", "sha256:abc"),
    "pack version not semver": changed(VERDICT, "pack.version", "1.4"),
    "decision id not a uuid": changed(VERDICT, "decision_id", "decision-1"),
    "negative elapsed time": changed(VERDICT, "elapsed_us", -1.0),
    "line 0": changed(VERDICT, "fired.0.location.line", 0),
    "rule id with capitals": changed(VERDICT, "fired.0.id", "Irreversible"),
    "unknown comparison op": changed(VERDICT, "fired.0.comparisons.0.op", "=~"),
    "unknown severity": changed(VERDICT, "fired.0.severity", "severe"),
    "unknown problem kind": changed(FAIL_CLOSED_VERDICT, "errors.0.kind", "schema"),
    "extra field": changed(VERDICT, "score", 0.9),
    "null title": changed(VERDICT, "fired.1.title", None),
    "missing fired": changed(VERDICT, "fired", DELETE),
}


@pytest.mark.parametrize("document", BROKEN_VERDICTS.values(), ids=BROKEN_VERDICTS.keys())
def test_broken_verdict_is_rejected_by_the_schema(document: dict[str, Any]) -> None:
    assert schema_errors("verdict.schema.json", document)


@pytest.mark.parametrize(
    "document",
    [doc for name, doc in BROKEN_VERDICTS.items() if name != "null title"],
    ids=[name for name in BROKEN_VERDICTS if name != "null title"],
)
def test_broken_verdict_is_rejected_by_the_model(document: dict[str, Any]) -> None:
    # The model accepts an explicit None for an optional field (it dumps to absent);
    # everything else the published schema rejects, the model rejects too.
    with pytest.raises(ValidationError):
        VerdictDocument.model_validate(document)


# ------------------------------------------------------- action and context

INPUTS: dict[str, tuple[type[BaseModel], str, dict[str, Any]]] = {
    "action": (ProposedAction, "proposed-action.schema.json", ACTION),
    "context": (Context, "context.schema.json", CONTEXT),
}

BROKEN_INPUTS = {
    "action unknown field": ("action", changed(ACTION, "priority", "p1")),
    "action nested unknown field": ("action", changed(ACTION, "actor.role", "admin")),
    "action trust 9": ("action", changed(ACTION, "actor.trust", 9)),
    "action unknown environment": ("action", changed(ACTION, "environment", "prodution")),
    "action missing kind": ("action", changed(ACTION, "kind", DELETE)),
    "context unknown field": ("context", changed(CONTEXT, "weather", "sunny")),
    "context unknown environment": (
        "context",
        changed(CONTEXT, "change_freezes.0.environments", ["prod"]),
    ),
    "context budget above 1": ("context", changed(CONTEXT, "error_budget_remaining", 1.5)),
}


@pytest.mark.parametrize("which", sorted(INPUTS))
def test_realistic_input_validates(which: str) -> None:
    model_type, file_name, document = INPUTS[which]
    model_type.model_validate(document)
    assert schema_errors(file_name, document) == []


@pytest.mark.parametrize(("which", "document"), BROKEN_INPUTS.values(), ids=BROKEN_INPUTS.keys())
def test_broken_input_is_rejected(which: str, document: dict[str, Any]) -> None:
    model_type, file_name, _ = INPUTS[which]
    with pytest.raises(ValidationError):
        model_type.model_validate(document)
    assert schema_errors(file_name, document)


def test_minimal_action_dump_omits_absent_fields_and_validates() -> None:
    """The contract: optional fields are absent, never null."""
    minimal = {
        key: ACTION[key]
        for key in (
            "id",
            "kind",
            "target",
            "environment",
            "reversible",
            "blast_radius",
            "cost",
            "requested_at",
        )
    }
    minimal["actor"] = {"kind": "automation", "id": "deploy-bot", "trust": 2}
    minimal["change"] = {"type": "code"}
    action = ProposedAction.model_validate(minimal)

    dumped = action.model_dump(mode="json", exclude_none=True)
    assert schema_errors("proposed-action.schema.json", dumped) == []
    for absent in ("rollback", "data", "justification"):
        assert absent not in dumped
    assert "model" not in dumped["actor"]

    # Keeping the Nones publishes nulls, which the schema rejects.
    with_nulls = action.model_dump(mode="json")
    assert schema_errors("proposed-action.schema.json", with_nulls)


@pytest.mark.parametrize("which", sorted(INPUTS))
def test_full_dump_round_trips_through_the_schema(which: str) -> None:
    model_type, file_name, document = INPUTS[which]
    dumped = model_type.model_validate(document).model_dump(mode="json", exclude_none=True)
    assert schema_errors(file_name, dumped) == []
    assert model_type.model_validate(dumped) == model_type.model_validate(document)


# ------------------------------------------------------------- trust boundary


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}/{i}")


def test_claims_and_attestations_are_marked_in_the_builtin_schema() -> None:
    from aigre_policy.inputs import builtin_schema, compose

    schema = compose(builtin_schema("builtin:proposed-action/v1"), {"type": "object"})
    action = schema["properties"]["action"]["properties"]
    claimed = {name for name, field in action.items() if field.get("x-aigre-claim") is True}
    assert claimed == {"actor", "approvals", "justification", "requested_at"}
    assert action["actor"]["x-aigre-attested-as"] == "context.actor"
    assert action["approvals"]["x-aigre-attested-as"] == "context.approvals"
    assert schema["properties"]["context"]["x-aigre-attested"] is True
    assert schema["properties"]["usage"]["x-aigre-attested"] is True
    context = schema["properties"]["context"]["properties"]
    assert {"actor", "approvals"} <= set(context)
    assert "actor" not in schema["properties"]["context"]["required"]


def test_every_list_of_the_builtin_schema_is_bounded() -> None:
    for file_name in ("proposed-action.schema.json", "context.schema.json"):
        schema = published_schemas()[file_name]
        unbounded = [
            path
            for path, node in _walk(schema)
            if node.get("type") == "array" and not isinstance(node.get("maxItems"), int)
        ]
        assert unbounded == [], (file_name, unbounded)


def test_a_list_past_its_bound_breaks_the_schema() -> None:
    services = [f"svc-{i}" for i in range(129)]
    document = changed(ACTION, "blast_radius.services", services)
    assert schema_errors("proposed-action.schema.json", document)
    with pytest.raises(ValidationError):
        ProposedAction.model_validate(document)


def test_attested_actor_and_approvals_validate_in_the_context() -> None:
    document = {
        **CONTEXT,
        "actor": {"kind": "llm", "id": "agent-7", "trust": 3, "groups": ["agents"]},
        "approvals": [
            {"by": "li", "group": "sre-oncall", "at": "2025-03-11T14:00:00Z", "reusable": True}
        ],
    }
    Context.model_validate(document)
    assert schema_errors("context.schema.json", document) == []
    assert schema_errors("context.schema.json", changed(document, "actor.trust", 6))


def test_editing_the_builtin_schema_a_caller_got_loosens_no_later_pack(tmp_path):
    """The built-in schema is made once per process; a caller that edits the copy it was
    given (dropping the cost ceiling here) must not change what the next pack accepts."""
    from aigre_policy import load_pack
    from aigre_policy.inputs import builtin_schema

    given = builtin_schema("builtin:proposed-action/v1")
    given["$defs"]["Cost"]["properties"]["estimated_usd"].pop("maximum")
    given["$defs"]["Cost"]["properties"]["recurring_monthly_usd"].pop("maximum")
    assert (
        "maximum"
        in builtin_schema("builtin:proposed-action/v1")["$defs"]["Cost"]["properties"][
            "estimated_usd"
        ]
    )

    pack = load_pack(Path(__file__).parent.parent / "policy_packs" / "aigre-baseline")
    cost = pack.checked.input_schema["$defs"]["Cost"]["properties"]["estimated_usd"]
    assert cost["maximum"] == 1e12
