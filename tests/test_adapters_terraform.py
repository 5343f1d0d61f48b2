"""Terraform/OpenTofu plan JSON: one action per resource change, one verdict per plan.

The plans are published fixtures (``fixtures/adapters/terraform-plan/SOURCES.md``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigre_policy import load_pack
from aigre_policy.adapters.common import pack_judge
from aigre_policy.adapters.terraform import (
    PlanOptions,
    costs_from_infracost,
    judge_plan,
    read_plan,
)
from aigre_policy.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
PLANS = ROOT / "fixtures" / "adapters" / "terraform-plan"
BASELINE = ROOT / "policy_packs" / "aigre-baseline"
REVIEW_PACK = Path(__file__).resolve().parent / "adapters_pack"
NOW = "2025-03-11T14:00:00Z"
# a healthy error budget, as the gate reads it from its source: an unknown one counts as spent
HUMAN = {
    "now": NOW,
    "actor": {"kind": "human", "id": "ana", "trust": 3},
    "error_budget_remaining": 0.8,
}
USAGE = {"spend_this_month_usd": 0, "agent_actions_last_hour": 0, "restarts_of_target_last_hour": 0}


@pytest.fixture(scope="module")
def baseline():
    return load_pack(BASELINE)


@pytest.fixture(scope="module")
def review():
    return load_pack(REVIEW_PACK)


def plan_text(name: str) -> str:
    return (PLANS / f"{name}.json").read_text()


def judged(pack: Any, payload: Any, context: Any = HUMAN, **options: Any):
    usage = USAGE if pack.name == "aigre-baseline" else None
    return judge_plan(
        payload,
        pack_judge(pack, context, usage),
        fail_closed=pack.fail_closed,
        pack={"name": pack.name},
        options=PlanOptions(**options),
    )


def actions_by_address(name: str, **options: Any) -> dict[str, dict[str, Any]]:
    plan = read_plan(plan_text(name), PlanOptions(requested_at=NOW, **options))
    return {c.address: c.action for c in plan.changes if c.action is not None}


@pytest.mark.parametrize("name", sorted(p.stem for p in PLANS.glob("*.json")))
def test_every_published_plan_is_read_and_judged(baseline, name):
    verdict = judged(baseline, plan_text(name))
    assert not verdict.errors, verdict.errors
    assert verdict.resources, "every example changes something"
    for resource in verdict.resources:
        assert resource.verdict is not None
        assert resource.verdict["pack"]["name"] == "aigre-baseline"


def test_a_plan_with_one_risky_resource_gets_a_verdict_naming_it(baseline):
    verdict = judged(baseline, plan_text("mixed-with-unsupported"))
    assert verdict.decision == "require_approval"
    assert [r.address for r in verdict.deciding] == ["azurerm_managed_disk.data"]
    assert "azurerm_managed_disk.data (irreversible-production-change)" in verdict.summary
    document = verdict.to_dict()
    assert document["deciding"] == ["azurerm_managed_disk.data"]
    assert document["approvers"] == ["sre-oncall"]
    by_address = {r["address"]: r for r in document["resources"]}
    assert by_address["azurerm_resource_group.rg"]["decision"] == "allow"
    assert by_address["azurerm_managed_disk.data"]["fired"] == ["irreversible-production-change"]


def test_the_plan_verdict_is_the_most_restrictive_of_its_resources(review):
    verdict = judged(review, plan_text("aws-no-precise-rules"))
    assert verdict.decision == "deny"
    assert sorted(r.address for r in verdict.deciding) == [
        "aws_dynamodb_table.sessions",
        "google_sql_database_instance.main",
    ]
    assert {r.decision for r in verdict.resources} == {"allow", "deny"}


def test_deletes_and_replaces_of_stateful_types_are_irreversible():
    actions = actions_by_address("aws-no-precise-rules")
    assert actions["aws_dynamodb_table.sessions"]["kind"] == "data_deletion"
    assert actions["aws_dynamodb_table.sessions"]["reversible"] is False
    assert actions["google_sql_database_instance.main"]["reversible"] is False  # a replace
    assert actions["aws_db_instance.prod"]["reversible"] is True  # a create
    assert actions["aws_route_table.public"]["reversible"] is True  # not stateful
    assert actions["aws_route_table.public"]["kind"] == "infra_change"
    replaced = actions_by_address("replace")["azurerm_storage_account.s"]
    assert (replaced["kind"], replaced["reversible"]) == ("data_deletion", False)
    assert replaced["change"]["summary"].startswith("replace azurerm_storage_account.s")


def test_the_kind_follows_the_resource_type_table():
    plan = json.loads(plan_text("nsg-rule-open"))
    change = plan["resource_changes"][0]
    kinds = {}
    for resource_type in (
        "aws_iam_role_policy",
        "google_project_iam_member",
        "aws_route53_record",
        "aws_acm_certificate",
        "aws_secretsmanager_secret_version",
        "aws_s3_bucket_policy",
        "azurerm_network_security_rule",
    ):
        entry = {**change, "type": resource_type, "address": f"{resource_type}.x"}
        plan["resource_changes"] = [entry]
        (read,) = read_plan(plan).changes
        kinds[resource_type] = read.action["kind"]
    assert kinds == {
        "aws_iam_role_policy": "iam_grant",
        "google_project_iam_member": "iam_grant",
        "aws_route53_record": "dns_change",
        "aws_acm_certificate": "certificate_rotation",
        "aws_secretsmanager_secret_version": "secret_rotation",
        "aws_s3_bucket_policy": "bucket_policy",
        "azurerm_network_security_rule": "infra_change",
    }


def test_the_environment_comes_from_a_tag_then_the_workspace():
    plan = json.loads(plan_text("mixed-with-unsupported"))
    plan["resource_changes"][1]["change"]["after"]["tags"] = {"environment": "dev"}
    changes = {c.address: c.action for c in read_plan(plan, PlanOptions(workspace="stg")).changes}
    assert changes["azurerm_resource_group.rg"]["environment"] == "development"
    assert changes["azurerm_managed_disk.data"]["environment"] == "staging"  # the workspace
    unknown = read_plan(plan, PlanOptions(workspace="blue")).changes[0].action
    assert unknown["environment"] == "production"  # a name nobody maps is the strictest
    given = read_plan(plan, PlanOptions(environment="sandbox")).changes[1].action
    assert given["environment"] == "sandbox"


def test_an_environment_unknown_until_apply_fails_closed(baseline):
    plan = json.loads(plan_text("disk-grow-computed"))
    change = plan["resource_changes"][0]["change"]
    change["after_unknown"] = {**change["after_unknown"], "tags": True}
    verdict = judged(baseline, plan)
    assert verdict.fail_closed and verdict.decision == baseline.fail_closed
    assert "tags.environment is unknown until apply" in verdict.errors[0]["message"]
    assert verdict.deciding[0].address == "azurerm_managed_disk.data"


def test_an_unknown_value_that_the_mapping_does_not_read_does_not_matter(baseline):
    verdict = judged(baseline, plan_text("disk-grow-computed"))  # disk_size_gb unknown
    assert not verdict.fail_closed and verdict.decision == "allow"


@pytest.mark.parametrize(
    "payload, words",
    [
        ('{"format_version": "2.0", "resource_changes": []}', "format_version is '2.0'"),
        ('{"format_version": 1, "resource_changes": []}', "format_version is 1"),
        ('{"format_version": "1.2", "resource_changes": [', "not JSON: Expecting value at line 1"),
        ('{"format_version": "1.2", "errored": true, "resource_changes": []}', "errored"),
        ('{"format_version": "1.0", "values": {}}', "not a plan"),
        ("[]", "not an object"),
        (b"\xff\xfe", "not UTF-8"),
        ('{"format_version": "1.2", "resource_changes": [], "x": NaN}', "NaN is not a JSON"),
    ],
)
def test_a_plan_that_cannot_be_read_fails_closed_with_one_line(baseline, payload, words):
    verdict = judged(baseline, payload)
    assert verdict.decision == baseline.fail_closed and verdict.fail_closed
    (error,) = verdict.errors
    assert words in error["message"] and "\n" not in error["message"]


def test_an_action_the_adapter_does_not_know_fails_that_resource_closed(review):
    plan = json.loads(plan_text("mixed-with-unsupported"))
    plan["resource_changes"][1]["change"]["actions"] = ["create", "obliterate"]
    verdict = judged(review, plan)
    assert verdict.fail_closed
    assert verdict.decision == "deny"  # the disk's deny is stricter than require_approval
    failed = {r.address: r for r in verdict.resources}["azurerm_resource_group.rg"]
    assert failed.decision == review.fail_closed and "obliterate" in (failed.problem or "")


def test_a_judge_that_fails_never_lets_the_plan_through(baseline):
    def broken(action):
        raise RuntimeError("ledger gone")

    verdict = judge_plan(plan_text("nsg-rule-open"), broken, fail_closed="deny")
    assert (verdict.decision, verdict.fail_closed) == ("deny", True)
    assert "ledger gone" in verdict.errors[0]["message"]


def test_infracost_monthly_deltas_become_recurring_cost():
    infracost = {
        "version": "0.2",
        "projects": [
            {
                "name": "prod",
                "diff": {
                    "resources": [
                        {"name": "aws_db_instance.prod", "monthlyCost": "480.5"},
                        {"name": "aws_dynamodb_table.sessions", "monthlyCost": "-25"},
                        {"name": "aws_route.default", "monthlyCost": None},
                    ]
                },
            }
        ],
    }
    costs = costs_from_infracost(json.dumps(infracost))
    assert costs == {"aws_db_instance.prod": 480.5, "aws_dynamodb_table.sessions": -25.0}
    actions = actions_by_address("aws-no-precise-rules", monthly_costs=costs)
    assert actions["aws_db_instance.prod"]["cost"]["recurring_monthly_usd"] == 480.5
    assert actions["aws_dynamodb_table.sessions"]["cost"]["recurring_monthly_usd"] == 0


def test_the_same_plan_proposes_the_same_actions():
    first = actions_by_address("aws-no-precise-rules")
    again = actions_by_address("aws-no-precise-rules")
    assert first == again
    assert first["aws_db_instance.prod"]["id"].endswith(":aws_db_instance.prod")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def _is_change_shaped(value: Any) -> bool:
    return isinstance(value, dict) and "type" in value and "change" in value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=json_values, where=st.integers(min_value=0, max_value=1))
def test_a_malformed_resource_change_never_lets_a_plan_through(garbage, where):
    if _is_change_shaped(garbage):
        return
    plan = json.loads(plan_text("disk-grow-computed"))  # one change the judge allows
    plan["resource_changes"].insert(where, garbage)
    verdict = judge_plan(
        plan, lambda a: _ALLOW, fail_closed="deny", options=PlanOptions(requested_at=NOW)
    )
    assert verdict.decision == "deny" and verdict.fail_closed


@settings(max_examples=150, deadline=None)
@given(payload=json_values | st.text(max_size=40) | st.binary(max_size=40))
def test_a_malformed_plan_is_never_allowed(payload):
    if isinstance(payload, dict) and "format_version" in payload:
        return
    verdict = judge_plan(payload, lambda a: _ALLOW, fail_closed="require_approval")
    assert verdict.decision == "require_approval" and verdict.fail_closed


class _Allow:
    decision = "allow"
    fired: list[Any] = []
    warnings: list[Any] = []
    approvers: list[str] = []
    escalate_to: list[str] = []
    errors: list[Any] = []
    fail_closed = False

    def to_dict(self) -> dict[str, Any]:
        return {"decision": "allow"}


_ALLOW = _Allow()


def test_eval_from_terraform_plan_exits_with_the_plan_decision(capsys, tmp_path):
    context = tmp_path / "context.json"
    context.write_text(json.dumps(HUMAN))
    usage = tmp_path / "usage.json"
    usage.write_text(json.dumps(USAGE))
    plan = str(PLANS / "mixed-with-unsupported.json")
    argv = ["eval", str(BASELINE), "--from", "terraform-plan", plan]
    code = main([*argv, "--context", str(context), "--usage", str(usage), "--format", "json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 4 and document["deciding"] == ["azurerm_managed_disk.data"]


def test_eval_from_a_malformed_plan_is_one_line_and_fails_closed(capsys, tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text('{"format_version": "1.2", "resource_changes": [')
    code = main(["eval", str(BASELINE), "--from", "terraform-plan", str(bad)])
    captured = capsys.readouterr()
    assert code == 6
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "the plan is not JSON" in lines[0]
    assert "Traceback" not in captured.err


def test_eval_from_an_unknown_format_is_misuse(capsys):
    code = main(["eval", str(BASELINE), "--from", "cloudformation", "x.json"])
    assert code == 2 and "choose one of" in capsys.readouterr().err


def test_plan_actions_match_the_published_action_schema():
    from aigre_policy.models import ProposedAction

    for path in PLANS.glob("*.json"):
        for change in read_plan(path.read_text(), PlanOptions(requested_at=NOW)).changes:
            assert change.action is not None
            ProposedAction.model_validate(copy.deepcopy(change.action))


NETWORK = PlanOptions(requested_at=NOW, action_fields=frozenset({"network"}))


def network_by_address(plan: Any, options: PlanOptions = NETWORK) -> dict[str, Any]:
    return {c.address: (c.action or {}).get("network") or c.problem for c in
            read_plan(plan, options).changes}  # fmt: skip


def test_security_group_and_firewall_rules_become_network_paths():
    found = network_by_address(plan_text("aws-no-precise-rules"))
    assert found["aws_security_group_rule.ssh_in"] == {
        "ingress": [{"cidr": "0.0.0.0/0", "protocol": "tcp", "from_port": 22, "to_port": 22}]
    }
    assert found["aws_security_group_rule.all_out"] == {
        "egress": [{"cidr": "0.0.0.0/0", "protocol": "all", "from_port": 0, "to_port": 65535}]
    }
    assert found["aws_db_instance.prod"] is None
    rdp = network_by_address(plan_text("nsg-rule-open"))["azurerm_network_security_rule.rdp"]
    assert rdp == {
        "ingress": [{"cidr": "0.0.0.0/0", "protocol": "tcp", "from_port": 3389, "to_port": 3389}]
    }


def test_a_google_firewall_opens_each_allowed_port_range():
    plan = json.loads(plan_text("nsg-rule-open"))
    change = plan["resource_changes"][0]
    change.update(type="google_compute_firewall", address="google_compute_firewall.web")
    change["change"]["after"] = {
        "direction": "INGRESS",
        "source_ranges": ["0.0.0.0/0"],
        "allow": [{"protocol": "tcp", "ports": ["443", "8000-8080"]}, {"protocol": "icmp"}],
    }
    found = network_by_address(plan)["google_compute_firewall.web"]
    assert found == {
        "ingress": [
            {"cidr": "0.0.0.0/0", "protocol": "tcp", "from_port": 443, "to_port": 443},
            {"cidr": "0.0.0.0/0", "protocol": "tcp", "from_port": 8000, "to_port": 8080},
            {"cidr": "0.0.0.0/0", "protocol": "icmp", "from_port": 0, "to_port": 0},
        ]
    }


def test_a_network_path_unknown_until_apply_fails_that_resource_closed(baseline):
    plan = json.loads(plan_text("aws-no-precise-rules"))
    ssh = next(
        r for r in plan["resource_changes"] if r["address"] == "aws_security_group_rule.ssh_in"
    )
    ssh["change"]["after_unknown"] = {"cidr_blocks": [True]}
    assert "cidr_blocks is unknown until apply" in network_by_address(plan)[ssh["address"]]
    # a pack that cannot read action.network is not shown it, and judges without it
    assert "network" not in read_plan(plan, PlanOptions(requested_at=NOW)).changes[2].action


def test_the_default_pack_is_shown_network_paths_only_when_its_schema_declares_them(baseline):
    from aigre_policy.adapters.common import declared_action_fields

    fields = declared_action_fields(baseline)
    if "network" not in fields:
        pytest.skip("the default pack's schema has no action.network yet")
    verdict = judged(baseline, plan_text("aws-no-precise-rules"), action_fields=fields)
    assert verdict.decision == "deny"
    assert [r.address for r in verdict.deciding] == ["aws_security_group_rule.ssh_in"]


def test_a_change_that_writes_is_judged_whatever_mode_it_claims(review):
    plan = json.loads(plan_text("mixed-with-unsupported"))
    plan["resource_changes"][0]["mode"] = "data"  # the disk delete, claimed a data source
    verdict = judged(review, plan)
    assert verdict.decision == "deny"
    assert [r.address for r in verdict.deciding] == ["azurerm_managed_disk.data"]
    read = copy.deepcopy(plan)
    read["resource_changes"][0]["change"]["actions"] = ["read"]
    assert [c.address for c in read_plan(read).changes] == ["azurerm_resource_group.rg"]
