"""Pack composition (``extends:`` and ``disable:`` in ``pack.yaml``): a child inherits its
parent's rules, schema, envelope values, tests and invariants, overrides values (type-checked
against the parent's), disables a parent rule only with a logged reason; cycles and missing
parents are errors at file:line:col; the digest covers the parent; one bundle is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_pack

from aigre_policy import load_pack
from aigre_policy.cli.main import main
from aigre_policy.compiler import compile_pack

PARENT = """
envelope cost { max_action_usd: 100  kinds: ["deploy"] }
rule costly { deny when action.cost.estimated_usd > cost.max_action_usd because "too costly" }
rule tickets { escalate when action.kind in cost.kinds }
rule wipe { tags: ["bright-line"] deny when action.kind == "data_deletion" }

invariant "deletions never run" {
  when action.kind == "data_deletion"
  expect deny
}

test "a cheap rollback runs" {
  action from "fixtures/rollback.yaml"
  context { now: "2026-03-14T16:00:00Z" }
  expect allow
}
"""

ACTION = {
    "id": "a-1",
    "kind": "rollback",
    "target": "payments-api",
    "environment": "production",
    "actor": {"kind": "llm", "id": "agent-7", "trust": 3},
    "change": {"type": "code"},
    "reversible": True,
    "blast_radius": {"users_share": 0.1},
    "cost": {"estimated_usd": 50},
    "requested_at": "2026-03-14T16:00:00Z",
}
NOW = {"now": "2026-03-14T16:00:00Z"}

PARENT_TESTS = """
tests:
- name: a 150 USD rollback is denied
  from: fixtures/rollback.yaml
  set: {action.cost.estimated_usd: 150}
  context: {now: "2026-03-14T16:00:00Z"}
  expect: {decision: deny, rules: [costly]}
- name: deploys escalate
  from: fixtures/rollback.yaml
  set: {action.kind: deploy}
  context: {now: "2026-03-14T16:00:00Z"}
  expect: {decision: escalate, rules: [tickets]}
"""


@pytest.fixture
def parent(tmp_path: Path) -> Path:
    return write_pack(
        tmp_path / "base",
        PARENT,
        manifest={"name": "base"},
        files={"fixtures/rollback.yaml": {"action": ACTION}, "tests/base.yaml": PARENT_TESTS},
    )


def child(tmp_path: Path, manifest: dict, policy: str | None = None, **files) -> Path:
    return write_pack(
        tmp_path / "team",
        policy,
        manifest={"name": "team", "extends": "../base", **manifest},
        files=files or None,
    )


def test_a_child_inherits_rules_and_overrides_envelope_values(tmp_path, parent):
    root = child(
        tmp_path,
        {"owner": "payments", "envelopes": {"cost": {"max_action_usd": 1000}}},
        'rule team-jobs { escalate when action.kind == "run_job" }',
    )
    pack = load_pack(root)
    assert [r.id for r in pack.rules] == ["costly", "tickets", "wipe", "team-jobs"]
    assert pack.checked.manifest.owner == "payments"
    assert pack.evaluate({**ACTION, "cost": {"estimated_usd": 500}}, NOW).decision == "allow"
    assert pack.evaluate({**ACTION, "cost": {"estimated_usd": 1500}}, NOW).rule_ids == ["costly"]
    assert pack.evaluate({**ACTION, "kind": "run_job"}, NOW).rule_ids == ["team-jobs"]
    # evidence names the parent's file from the child's directory
    fired = pack.evaluate({**ACTION, "cost": {"estimated_usd": 1500}}, NOW).fired[0]
    assert fired["location"]["file"] == "../base/policies/main.aigre"
    # the parent itself is unchanged
    assert load_pack(parent).evaluate({**ACTION, "cost": {"estimated_usd": 500}}, NOW).decision == (
        "deny"
    )


def test_an_override_of_the_wrong_type_is_an_error_at_its_place(tmp_path, parent):
    text = "name: team\nversion: 1.0.0\nextends: ../base\ndefault: allow\nfail_closed: deny\n"
    text += "envelopes:\n  cost: {max_action_usd: lots}\n"
    root = write_pack(tmp_path / "team", None, manifest=text)
    report = compile_pack(root)
    (problem,) = report.diagnostics
    assert problem.code == "E504" and "given 'lots'" in problem.message
    assert (Path(problem.span.file).name, problem.span.line, problem.span.column) == (
        "pack.yaml",
        7,
        26,
    )


def test_a_missing_parent_is_an_error_at_extends(tmp_path):
    text = "name: team\nversion: 1.0.0\nextends: ../nowhere\ndefault: allow\nfail_closed: deny\n"
    report = compile_pack(write_pack(tmp_path / "team", None, manifest=text))
    (problem,) = report.diagnostics
    assert problem.code == "E535" and "names no pack" in problem.message
    assert (problem.span.line, problem.span.column) == (3, 10)


def test_a_cycle_is_an_error_at_the_extends_that_closes_it(tmp_path):
    write_pack(
        tmp_path / "a", "rule r { deny when false }", manifest={"name": "a", "extends": "../b"}
    )
    b = write_pack(tmp_path / "b", None, manifest={"name": "b", "extends": "../a"})
    report = compile_pack(b)
    (problem,) = report.diagnostics
    assert problem.code == "E535" and "cycle: b -> a -> b" in problem.message
    assert Path(problem.span.file).parent.name == "a"
    itself = write_pack(tmp_path / "c", None, manifest={"name": "c", "extends": "."})
    assert [d.code for d in compile_pack(itself).diagnostics] == ["E535"]


def test_disable_is_logged_and_the_rule_never_fires(tmp_path, parent):
    root = child(tmp_path, {"disable": [{"rule": "tickets", "reason": "no tickets here"}]})
    report = compile_pack(root)
    (logged,) = report.diagnostics
    assert logged.code == "W537" and "no tickets here" in logged.message
    assert report.ok
    pack = load_pack(root)
    assert pack.evaluate({**ACTION, "kind": "deploy"}, NOW).decision == "allow"


@pytest.mark.parametrize(
    ("rule", "code"), [("tickts", "E536"), ("team-jobs", "E536"), ("wipe", "E532")]
)
def test_disable_refuses_unknown_own_and_bright_line_rules(tmp_path, parent, rule, code):
    root = child(
        tmp_path,
        {"disable": [{"rule": rule, "reason": "because"}]},
        'rule team-jobs { escalate when action.kind == "run_job" }',
    )
    report = compile_pack(root)
    assert [d.code for d in report.diagnostics] == [code]
    assert not report.ok


def test_disable_needs_a_reason(tmp_path, parent):
    report = compile_pack(child(tmp_path, {"disable": [{"rule": "tickets"}]}))
    assert [d.code for d in report.diagnostics] == ["E502"]


def test_the_digest_covers_the_parents_sources(tmp_path, parent):
    root = child(tmp_path, {})
    before = load_pack(root).digest
    main_file = parent / "policies" / "main.aigre"
    main_file.write_text(main_file.read_text().replace("100", "200"), encoding="utf-8")
    assert load_pack(root).digest != before


def test_the_child_runs_its_parents_tests_and_restates_what_its_overrides_change(
    tmp_path, parent, capsys
):
    root = child(tmp_path, {"envelopes": {"cost": {"max_action_usd": 1000}}})
    assert main(["test", str(root), "--format", "json", "--no-invariants"]) == 1
    report = json.loads(capsys.readouterr().out)
    status = {t["name"]: t["status"] for t in report["packs"][0]["tests"]}
    assert status == {
        "base: a cheap rollback runs": "passed",
        "base: a 150 USD rollback is denied": "failed",  # the override changes it
        "base: deploys escalate": "passed",
    }
    restated = """
tests:
- name: a 150 USD rollback is denied
  description: restated here, under the same name, for this pack's 1000 USD limit
  from: ../base/fixtures/rollback.yaml
  set: {action.cost.estimated_usd: 150}
  context: {now: "2026-03-14T16:00:00Z"}
  expect: {decision: allow}
"""
    (root / "tests").mkdir()
    (root / "tests" / "team.yaml").write_text(restated, encoding="utf-8")
    assert main(["test", str(root), "--format", "json", "--no-invariants"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [t["name"] for t in report["packs"][0]["tests"]]
    assert "a 150 USD rollback is denied" in names
    assert "base: a 150 USD rollback is denied" not in names


def test_invariants_are_inherited(tmp_path, parent, capsys):
    root = child(tmp_path, {})
    assert [i.name for i in load_pack(root).program.invariants] == ["deletions never run"]


def test_a_parents_custom_schema_is_inherited(tmp_path):
    schema = {
        "type": "object",
        "required": ["action", "context"],
        "properties": {
            "action": {
                "type": "object",
                "properties": {"size": {"type": "integer"}},
                "required": ["size"],
            },
            "context": {"type": "object"},
        },
    }
    write_pack(
        tmp_path / "base",
        "rule big { deny when action.size > 3 }",
        manifest={"name": "base", "input_schema": "schema.json"},
        files={"schema.json": schema},
    )
    pack = load_pack(child(tmp_path, {}))
    assert pack.evaluate({"size": 5}, {}).rule_ids == ["big"]


def test_one_bundle_is_built_for_the_child(tmp_path, parent):
    pytest.importorskip("regopy")
    from aigre_policy.rego.bundle import build_pack_bundle

    root = child(tmp_path, {"envelopes": {"cost": {"max_action_usd": 1000}}})
    build = build_pack_bundle(root)
    assert build.archive is not None, build.diagnostics
    path = tmp_path / "team.tar.gz"
    path.write_bytes(build.archive)
    bundled = load_pack(path)
    assert bundled.evaluate({**ACTION, "cost": {"estimated_usd": 500}}, NOW).decision == "allow"
    assert bundled.evaluate({**ACTION, "cost": {"estimated_usd": 1500}}, NOW).decision == "deny"


def test_the_compile_cache_never_serves_a_child_whose_parent_changed(tmp_path, parent):
    from aigre_policy.cache import CompileCache

    cache = CompileCache(tmp_path / "cache", tmp_path / "config" / "cache-key")
    root = child(tmp_path, {})
    assert load_pack(root, cache=cache).evaluate(
        {**ACTION, "cost": {"estimated_usd": 150}}, NOW
    ).rule_ids == ["costly"]
    main_file = parent / "policies" / "main.aigre"
    main_file.write_text(main_file.read_text().replace("100", "200"), encoding="utf-8")
    assert (
        load_pack(root, cache=cache)
        .evaluate({**ACTION, "cost": {"estimated_usd": 150}}, NOW)
        .decision
        == "allow"
    )


def test_hot_reload_watches_the_parent_packs_too(tmp_path, parent):
    from types import SimpleNamespace

    from aigre_policy.server.reload import watched

    root = child(tmp_path, {})
    runtime = SimpleNamespace(pack_path=root, served=SimpleNamespace(pack=load_pack(root)))
    before = watched(runtime)
    assert any(str(parent / "policies" / "main.aigre") == f for f, _, _ in before)
    (parent / "policies" / "main.aigre").write_text(PARENT + "\n# edited\n", encoding="utf-8")
    assert watched(runtime) != before


BASELINE_PACK = Path(__file__).parent.parent / "policy_packs" / "aigre-baseline"
# the default pack's rules that back its invariants and take no exemption or disable
BASELINE_BRIGHT_LINES = (
    "self-approval",
    "llm-reads-secret",
    "world-open-admin-port",
    "restricted-data-made-public",
)


@pytest.mark.parametrize("rule", BASELINE_BRIGHT_LINES)
@pytest.mark.parametrize("how", ["exempt", "disable"])
def test_a_team_pack_cannot_lift_a_bright_line_of_the_default_pack(tmp_path, rule, how):
    child = tmp_path / "team"
    child.mkdir()
    manifest: dict = {"name": "team", "version": "1.0.0", "extends": str(BASELINE_PACK)}
    manifest |= {"default": "allow", "fail_closed": "require_approval"}
    if how == "disable":
        manifest["disable"] = [{"rule": rule, "reason": "in the way"}]
    else:
        exemptions = [
            {
                "id": "lift",
                "owner": "team",
                "rule": rule,
                "targets": ["*"],
                "reason": "in the way",
                "ticket": "T-1",
                "expires": "2099-01-01T00:00:00Z",
            }
        ]
        (child / "exemptions.yaml").write_text(json.dumps({"exemptions": exemptions}))
    (child / "pack.yaml").write_text(json.dumps(manifest))
    report = compile_pack(child)
    assert not report.ok
    assert "E532" in [d.code for d in report.diagnostics]


# ------------------------------------------------------------------ inherited exemptions

LEDGER_EXEMPTION = {
    "id": "ledger-migration",
    "owner": "payments-team",
    "rule": "costly",
    "targets": ["payments-*"],
    "reason": "one-off migration",
    "ticket": "FIN-42",
    "expires": "2026-03-31T00:00:00Z",
}
EXEMPT_TESTS = """
tests:
- name: the ledger migration runs under its exemption
  from: fixtures/rollback.yaml
  set: {action.cost.estimated_usd: 150}
  context: {now: "2026-03-14T16:00:00Z"}
  expect: {decision: allow}
"""


def exempting_parent(tmp_path: Path, *entries: dict) -> Path:
    return write_pack(
        tmp_path / "base",
        PARENT,
        manifest={"name": "base"},
        files={
            "fixtures/rollback.yaml": {"action": ACTION},
            "tests/base.yaml": EXEMPT_TESTS,
            "exemptions.yaml": json.dumps({"exemptions": list(entries)}),
        },
    )


def test_a_child_inherits_its_parents_exemptions_and_their_tests_pass(tmp_path, capsys):
    exempting_parent(tmp_path, LEDGER_EXEMPTION)
    pack = load_pack(child(tmp_path, {}))
    verdict = pack.evaluate({**ACTION, "cost": {"estimated_usd": 150}}, NOW)
    assert verdict.decision == "allow"
    assert [e["exemption"] for e in verdict.exempted] == ["ledger-migration"]
    # the parent's test that relies on it passes in the child (it failed when not inherited)
    assert main(["test", str(pack.root), "--format", "json", "--no-invariants"]) == 0
    report = json.loads(capsys.readouterr().out)
    status = {t["name"]: t["status"] for t in report["packs"][0]["tests"]}
    assert status["base: the ledger migration runs under its exemption"] == "passed"


def test_a_childs_exemption_of_the_same_id_replaces_the_parents(tmp_path):
    backfill = {**LEDGER_EXEMPTION, "id": "ledger-backfill", "targets": ["ledger"]}
    exempting_parent(tmp_path, LEDGER_EXEMPTION, backfill)
    shorter = {**LEDGER_EXEMPTION, "expires": "2026-03-15T00:00:00Z", "ticket": "FIN-44"}
    extra = {**LEDGER_EXEMPTION, "id": "checkout-trial", "targets": ["checkout"]}
    root = child(tmp_path, {}, None, **{"exemptions.yaml": {"exemptions": [shorter, extra]}})
    pack = load_pack(root)
    # the parent's other exemption stays; the replaced one takes the child's place and terms
    assert [e.id for e in pack.checked.exemptions] == [
        "ledger-backfill",
        "ledger-migration",
        "checkout-trial",
    ]
    costly = {**ACTION, "cost": {"estimated_usd": 150}}
    assert pack.evaluate({**costly, "target": "ledger"}, NOW).decision == "allow"
    kept = pack.evaluate(costly, NOW)
    assert kept.decision == "allow" and kept.exempted[0]["ticket"] == "FIN-44"
    # past the child's shorter expiry the rule fires, though the parent's would still count
    assert pack.evaluate(costly, {"now": "2026-03-20T00:00:00Z"}).rule_ids == ["costly"]
    assert pack.evaluate({**costly, "target": "checkout"}, NOW).decision == "allow"


def test_a_parents_exemption_of_an_unknown_rule_is_an_error_in_its_own_file(tmp_path):
    exempting_parent(tmp_path, {**LEDGER_EXEMPTION, "rule": "costy"})
    report = compile_pack(child(tmp_path, {}))
    found = [(d.code, Path(d.span.file).parent.name, d.span.line) for d in report.diagnostics]
    assert ("E531", "base", 1) in found


def test_the_digest_covers_the_parents_exemptions(tmp_path):
    parent = exempting_parent(tmp_path, LEDGER_EXEMPTION)
    root = child(tmp_path, {})
    before = load_pack(root).digest
    shorter = {**LEDGER_EXEMPTION, "expires": "2026-03-20T00:00:00Z"}
    (parent / "exemptions.yaml").write_text(json.dumps({"exemptions": [shorter]}))
    assert load_pack(root).digest != before
