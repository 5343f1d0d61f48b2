"""The linter: each code fires on a pack that has the problem and stays quiet on its near twin."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigre_policy.compiler import compile_pack
from aigre_policy.diagnostics import Diagnostic, Severity
from aigre_policy.lint import CODES, category_of, lint_pack, strict_diagnostics

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "policy_packs" / "aigre-baseline"

DENY_DEFAULT = {"default": "deny"}


def findings(pack: Path) -> list[Diagnostic]:
    report = compile_pack(pack)
    assert report.ok, [d.message for d in report.diagnostics]
    return lint_pack(report).findings


def codes(pack: Path, code: str) -> list[Diagnostic]:
    return [d for d in findings(pack) if d.code == code]


def rule(body: str, rule_id: str = "r", *, because: bool = True, severity: bool = True) -> str:
    """A rule with metadata and a message unless asked otherwise."""
    parts = [f"rule {rule_id} {{"]
    if severity:
        parts.append("  severity: high")
    parts.append(f"  {body}")
    if because:
        parts.append('  because "it fired"')
    parts.append("}")
    return "\n".join(parts) + "\n"


# (code, policy with the problem, its near twin without it, manifest)
CASES = [
    (
        "L101",
        rule("deny when action.actor.trust > 5"),
        rule("deny when action.actor.trust > 4"),
        None,
    ),
    (
        "L101",
        rule('deny when action.kind == "deploy" and action.kind in ["restart", "scale"]'),
        rule('deny when action.kind == "deploy" and action.kind in ["deploy", "scale"]'),
        None,
    ),
    (
        "L102",
        rule("deny when action.actor.trust >= 0"),
        rule("deny when action.actor.trust >= 1"),
        None,
    ),
    (
        "L102",
        rule('deny when action.environment != "production" or action.environment != "staging"'),
        rule('deny when action.environment != "production" and action.environment != "staging"'),
        None,
    ),
    (
        "L103",
        rule('escalate when action.kind == "deploy" and action.reversible', "a")
        + rule('deny when action.kind == "deploy"', "b"),
        rule('escalate when action.kind == "deploy" and action.reversible', "a")
        + rule('deny when action.kind == "deploy" and not action.reversible', "b"),
        None,
    ),
    (
        "L104",
        rule('deny when action.actor.trust == 7 or action.kind == "deploy"'),
        rule('deny when action.actor.trust == 4 or action.kind == "deploy"'),
        None,
    ),
    (
        "L104",
        "envelope blast { max_share: 1.5 }\n"
        + rule("deny when action.blast_radius.users_share > blast.max_share"),
        "envelope blast { max_share: 0.5 }\n"
        + rule("deny when action.blast_radius.users_share > blast.max_share"),
        None,
    ),
    (
        "L201",
        rule('deny when action.kind == "deploy"', because=False),
        rule('deny when action.kind == "deploy"'),
        None,
    ),
    (
        "L202",
        rule('deny when action.kind == "deploy"', severity=False),
        rule('deny when action.kind == "deploy"'),
        None,
    ),
    (
        "L203",
        "envelope cost { cap: 10 spare: 3 }\n"
        + rule("deny when action.cost.estimated_usd > cost.cap"),
        "envelope cost { cap: 10 spare: 3 }\n"
        + rule("deny when action.cost.estimated_usd > cost.cap").replace(
            '"it fired"', '"over {cost.cap}, {cost.spare} to spare"'
        ),
        None,
    ),
    (
        "L204",
        "usage spend = sum(action.cost.estimated_usd) over calendar_month\n"
        + rule('deny when action.kind == "deploy"'),
        "usage spend = sum(action.cost.estimated_usd) over calendar_month\n"
        + rule("deny when usage.spend > 100"),
        None,
    ),
    (
        "L501",
        rule('permit when action.kind == "restart"'),
        rule('permit when action.kind == "restart" and action.actor.kind == "human"'),
        DENY_DEFAULT,
    ),
    (
        "L502",
        rule('deny when action.actor.kind == "llm" and action.environment == "staging"'),
        rule(
            'deny when (context.actor.kind ?? "llm") == "llm" and action.environment == "staging"'
        ),
        None,
    ),
    (
        "L502",
        rule(
            'require_approval by ["security"] when action.kind == "iam_grant"\n'
            '    and not any(a in action.approvals ?? []: a.group == "security")'
        ),
        rule(
            'require_approval by ["security"] when action.kind == "iam_grant"\n'
            '    and not any(a in context.approvals ?? []: a.group == "security")'
        ),
        None,
    ),
    (
        "L502",
        rule('permit when action.kind == "restart" and action.actor.trust >= 3'),
        rule('permit when action.kind == "restart" and (context.actor.trust ?? 0) >= 3'),
        DENY_DEFAULT,
    ),
    (  # a claimed list in front of the attested one: writing `[]` empties the `any`
        "L502",
        rule(
            "deny when any(a in action.approvals ?? (context.approvals ?? []):\n"
            '    a.by == (context.actor.id ?? ""))'
        ),
        rule('deny when any(a in action.approvals ?? []: a.by == (context.actor.id ?? ""))'),
        None,
    ),
    (  # `any(...) == false` turns the `any` round as `not` does
        "L502",
        rule(
            'require_approval by ["security"] when action.kind == "iam_grant"\n'
            '    and any(a in action.approvals ?? []: a.group == "security") == false'
        ),
        rule(
            'require_approval by ["security"] when action.kind == "iam_grant"\n'
            '    and any(a in action.approvals ?? []: a.group == "security") == true'
        ),
        None,
    ),
    (  # a usage counted by a claim: claiming "human" drops the proposer out of the count
        "L502",
        'usage n = count() over last 1h where action.actor.kind != "human"\n'
        + rule('escalate to ["sre-oncall"] when usage.n >= 10'),
        'usage n = count() over last 1h where decision != "deny"\n'
        + rule('escalate to ["sre-oncall"] when usage.n >= 10'),
        None,
    ),
]


@pytest.mark.parametrize(
    ("code", "bad", "good", "manifest"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_code_fires_on_the_problem_and_not_on_its_twin(new_pack, code, bad, good, manifest):
    found = codes(new_pack(bad, manifest=manifest), code)
    assert found, f"{code} did not fire"
    assert all(d.span is not None and d.span.file.endswith("main.aigre") for d in found)
    assert codes(new_pack(good, manifest=manifest), code) == []


def test_never_and_always_name_the_rule_at_its_id(new_pack):
    pack = new_pack(rule("deny when action.actor.trust > 5", "impossible"))
    (found,) = codes(pack, "L101")
    assert "`impossible` never fires" in found.message
    assert (found.span.line, found.span.column) == (1, 6)
    assert found.severity is Severity.ERROR


def test_a_constant_fallback_widens_the_range(new_pack):
    pack = new_pack(rule("deny when (action.rollback.estimated_minutes ?? (-1)) == -1"))
    assert codes(pack, "L104") == []
    assert codes(pack, "L101") == []


def test_out_of_range_names_the_envelope_value(new_pack):
    pack = new_pack(
        "envelope blast { max_share: 1.5 }\n"
        + rule("deny when action.blast_radius.users_share > blast.max_share")
    )
    (found,) = codes(pack, "L104")
    assert "with `blast.max_share`, which holds 1.5" in found.message
    assert "a number from 0 to 1" in found.message
    assert found.span.line == 4  # the comparison, not the rule


def test_shadowed_rule_names_the_stronger_one(new_pack):
    pack = new_pack(
        rule('escalate when action.kind == "deploy" and action.actor.trust < 2', "weak")
        + rule('require_approval by ["sre"] when action.kind in ["deploy", "scale"]', "strong")
    )
    (found,) = codes(pack, "L103")
    assert "`weak` never changes the decision" in found.message
    assert "`strong` (require_approval)" in found.message


def test_shared_opaque_parts_count_as_the_same_condition(new_pack):
    approval = 'any(a in action.approvals ?? []: a.group == "sre")'
    pack = new_pack(
        rule(f'escalate when action.kind == "deploy" and not {approval}', "weak")
        + rule(f"deny when not {approval}", "strong")
    )
    assert [d.message.split(":")[0] for d in codes(pack, "L103")] == [
        "rule `weak` never changes the decision"
    ]


def test_equivalent_rules_of_one_verdict_report_only_the_later(new_pack):
    pack = new_pack(
        rule('deny when action.kind == "deploy"', "first")
        + rule('deny when action.kind in ["deploy"]', "second")
    )
    (found,) = codes(pack, "L103")
    assert "`second`" in found.message.split(":")[0]


def test_a_weaker_verdict_does_not_shadow(new_pack):
    pack = new_pack(
        rule('deny when action.kind == "deploy" and action.reversible', "a")
        + rule('escalate when action.kind == "deploy"', "b")
    )
    assert codes(pack, "L103") == []


def test_warn_rules_are_never_reported_as_shadowed(new_pack):
    pack = new_pack(
        rule('warn when action.kind == "deploy" and action.reversible', "a")
        + rule('deny when action.kind == "deploy"', "b")
    )
    assert codes(pack, "L103") == []


def test_permit_for_everything_in_production(new_pack):
    pack = new_pack(rule('permit when action.environment == "production"'), manifest=DENY_DEFAULT)
    (found,) = codes(pack, "L501")
    assert "admits every production action" in found.message
    assert found.severity is Severity.ERROR


def test_permit_limited_to_other_environments_is_fine(new_pack):
    pack = new_pack(rule('permit when action.environment == "staging"'), manifest=DENY_DEFAULT)
    assert codes(pack, "L501") == []


def test_untested_rule_and_its_tested_twin(new_pack):
    tested = (
        rule('deny when action.kind == "deploy"', "gated")
        + """
test "a deploy is denied" {
  action {
    id: "a1", kind: "deploy", target: "api", environment: "production",
    actor: { kind: "human", id: "li", trust: 3 }, change: { type: "code" },
    reversible: true, blast_radius: { users_share: 0.1 }, cost: { estimated_usd: 0 },
    requested_at: "2025-03-11T14:02:10Z"
  }
  context { now: "2025-03-11T14:02:40Z" }
  expect deny by gated
}
"""
    )
    untested = rule('deny when action.kind == "deploy"', "gated")
    (found,) = codes(new_pack(untested), "L301")
    assert "`gated`" in found.message
    assert codes(new_pack(tested), "L301") == []


# ------------------------------------------------------------------ configuration


def test_pack_yaml_turns_a_code_off_or_up(new_pack):
    policy = rule('deny when action.kind == "deploy"', because=False)
    assert codes(new_pack(policy, manifest={"lint": {"L201": "off"}}), "L201") == []
    (raised,) = codes(new_pack(policy, manifest={"lint": {"L201": "error"}}), "L201")
    assert raised.severity is Severity.ERROR
    (default,) = codes(new_pack(policy), "L201")
    assert default.severity is Severity.WARNING


def test_unknown_code_in_pack_yaml_is_a_finding_at_the_key(new_pack):
    pack = new_pack(rule('deny when action.kind == "deploy"'), manifest={"lint": {"L999": "off"}})
    (found,) = codes(pack, "L210")
    assert "`L999` is not a lint code" in found.message
    assert found.span.file.endswith("pack.yaml")
    twin = new_pack(rule('deny when action.kind == "deploy"'), manifest={"lint": {"L201": "off"}})
    assert codes(twin, "L210") == []


def test_a_bare_yaml_off_turns_a_code_off(new_pack):
    manifest = "name: t\nversion: 1.0.0\ndefault: allow\nfail_closed: deny\nlint:\n  L201: off\n"
    pack = new_pack(rule('deny when action.kind == "deploy"', because=False), manifest=manifest)
    assert codes(pack, "L201") == []


def test_a_rule_that_always_holds_is_not_also_reported_as_shadowing(new_pack):
    pack = new_pack(
        rule('escalate when action.kind == "deploy"', "a")
        + rule("deny when action.actor.trust >= 0", "b")
    )
    assert codes(pack, "L102") and codes(pack, "L103") == []


@pytest.mark.parametrize("lint", [{"W302": "off"}, {"L101": "never"}, ["L101"]])
def test_malformed_lint_section_breaks_the_pack_schema(new_pack, lint):
    report = compile_pack(
        new_pack(rule('deny when action.kind == "deploy"'), manifest={"lint": lint})
    )
    assert not report.ok
    assert {d.code for d in report.diagnostics} == {"E502"}


# ------------------------------------------------------------------ suppressions

NO_MESSAGE = 'rule r {{ {comment}\n  severity: high\n  deny when action.kind == "deploy"\n}}\n'


def test_suppression_with_a_reason_hides_the_finding(new_pack):
    comment = "# aigre: ignore[L201] -- the title says it all"
    found = findings(new_pack(NO_MESSAGE.format(comment=comment)))
    assert not [d for d in found if d.code in ("L201", "L211", "L212")]


def test_standalone_suppression_covers_the_next_code_line(new_pack):
    policy = (
        "# aigre: ignore[L201] -- the title says it all\n\n# another comment\n"
        + NO_MESSAGE.format(comment="")
    )
    found = findings(new_pack(policy))
    assert not [d for d in found if d.code in ("L201", "L211", "L212")]


def test_suppression_without_a_reason_is_a_finding(new_pack):
    found = findings(new_pack(NO_MESSAGE.format(comment="# aigre: ignore[L201]")))
    (missing,) = [d for d in found if d.code == "L211"]
    assert "gives no reason" in missing.message
    assert (missing.span.line, missing.span.column) == (1, 10)
    assert not [d for d in found if d.code == "L201"]  # it still suppresses


def test_suppression_without_codes_is_a_finding(new_pack):
    found = findings(new_pack(NO_MESSAGE.format(comment="# aigre: ignore -- why")))
    assert [d.code for d in found if d.code in ("L201", "L211")] == ["L201", "L211"]


def test_suppression_of_a_code_that_does_not_fire_there(new_pack):
    comment = "# aigre: ignore[L201, L202] -- no message needed"
    found = findings(new_pack(NO_MESSAGE.format(comment=comment)))
    (stale,) = [d for d in found if d.code == "L212"]
    assert "suppression of L202 suppresses nothing" in stale.message
    assert stale.severity is Severity.WARNING


def test_suppression_naming_an_unknown_code(new_pack):
    comment = "# aigre: ignore[L201, L777] -- reason"
    found = findings(new_pack(NO_MESSAGE.format(comment=comment)))
    assert [d.message for d in found if d.code == "L210"] == ["`L777` is not a lint code"]
    assert not [d for d in found if d.code == "L201"]


def test_a_suppression_on_another_line_does_not_reach(new_pack):
    policy = NO_MESSAGE.format(comment="").replace(
        "severity: high", "severity: high # aigre: ignore[L201] -- reason"
    )
    found = findings(new_pack(policy))
    assert {"L201", "L212"} <= {d.code for d in found}


# ------------------------------------------------------------------ strict and the CLI


def test_strict_promotes_warnings_but_keeps_the_packs_own_warnings(new_pack):
    policy = rule('deny when action.kind == "deploy"', because=False)
    promoted = strict_diagnostics(compile_pack(new_pack(policy)))
    assert {d.code: d.severity for d in promoted}["L201"] is Severity.ERROR
    kept = strict_diagnostics(
        compile_pack(new_pack(policy, manifest={"lint": {"L201": "warning"}}))
    )
    assert {d.code: d.severity for d in kept}["L201"] is Severity.WARNING


def test_strict_promotes_compiler_warnings(new_pack):
    policy = rule("deny when (action.cost.estimated_usd ?? 0) > 250")
    (w302,) = [d for d in strict_diagnostics(compile_pack(new_pack(policy))) if d.code == "W302"]
    assert w302.severity is Severity.ERROR


def test_strict_on_a_pack_that_does_not_compile_reports_the_compile_errors(new_pack):
    report = compile_pack(new_pack('rule r { deny when action.environment == "prodution" }\n'))
    assert [d.code for d in strict_diagnostics(report)] == ["E202"]


def test_every_code_has_a_category_and_a_default_level():
    assert all(
        c.category in ("bugs", "style", "testing", "performance", "safety") for c in CODES.values()
    )
    assert category_of("E202") == "bugs"
    assert category_of("W114") == "testing"
    assert category_of("L501") == "safety"


def test_check_strict_exit_codes_and_json(new_pack, capsys, plain_console):
    from aigre_policy.cli.main import main

    bad = new_pack(rule("deny when action.actor.trust > 5"), name="bad")
    assert main(["check", str(bad)]) == 0  # without --strict the linter does not run
    capsys.readouterr()
    assert main(["check", "--strict", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "error[L101]" in out and "failed" in out
    assert main(["check", "--strict", "--format", "json", str(bad)]) == 1
    import json

    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["ok"] is False
    l101 = next(d for d in entry["diagnostics"] if d["code"] == "L101")
    assert l101["category"] == "bugs"
    assert l101["severity"] == "error"
    assert l101["location"]["line"] == 1


def test_check_strict_passes_when_findings_are_the_packs_warnings(new_pack, capsys, plain_console):
    from aigre_policy.cli.main import main

    pack = new_pack(
        rule('deny when action.kind == "deploy"'),
        manifest={"lint": {"L301": "warning"}},
        name="fine",
    )
    assert main(["check", "--strict", str(pack)]) == 0
    assert "warning[L301]" in capsys.readouterr().out


def test_default_pack_is_lint_clean_under_strict(capsys, plain_console):
    from aigre_policy.cli.main import main

    code = main(["check", "--strict", str(BASELINE)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "error[" not in out and "warning[" not in out


def test_an_envelope_value_read_by_hand_written_rego_counts_as_read(new_pack):
    policies = "envelope cost { cap: 10 spare: 3 }\n" + rule(
        "deny when action.cost.estimated_usd > cost.cap"
    )
    reads = (
        "package aigre.t.custom.extra\n\n"
        "limits := data.aigre.t.envelopes.cost\n\n"
        'warn contains {"id": "spare", "message": "low"} if {\n'
        "  input.action.cost.estimated_usd > limits.spare\n}\n"
    )
    ignores = "package aigre.t.custom.extra\n\nwarn := set()\n"
    for body, expected in ((reads, []), (ignores, ["cost.spare"])):
        root = new_pack(policies, files={"policies/extra.rego": body})
        assert [d.message.split("`")[1] for d in codes(root, "L203")] == expected


# ------------------------------------------------------------------ claims (L502)


def test_claim_finding_points_at_the_read_and_names_the_attested_field(new_pack):
    pack = new_pack(rule("deny when action.actor.trust < 3", "low-trust"))
    (found,) = codes(pack, "L502")
    assert "rule `low-trust` reads `action.actor.trust`, a claim of the proposal" in found.message
    assert "switches the `deny` off" in found.message
    assert (found.span.line, found.span.column) == (3, 13)
    assert found.hint is not None and "`context.actor.trust`" in found.hint
    assert found.severity is Severity.ERROR
    assert category_of("L502") == "safety"


def test_claim_without_an_attested_twin_gets_a_hint_to_read_context(new_pack):
    pack = new_pack(rule("escalate when context.now - action.requested_at > 15m"))
    (found,) = codes(pack, "L502")
    assert "`action.requested_at` has no attested counterpart" in found.hint


def test_a_claimed_approval_that_can_only_tighten_is_not_reported(new_pack):
    # More claimed approvals by the proposer can only make the deny fire.
    pack = new_pack(rule("deny when any(a in action.approvals ?? []: a.by == action.actor.id)"))
    assert codes(pack, "L502") == []


def test_a_permit_narrowed_by_a_claimed_list_is_not_reported(new_pack):
    body = 'permit when action.kind == "restart" and not any(a in action.approvals ?? []: true)'
    assert codes(new_pack(rule(body), manifest=DENY_DEFAULT), "L502") == []


def test_claims_in_a_message_or_a_warning_are_not_reported(new_pack):
    policy = rule('deny when action.kind == "deploy"', "a").replace(
        '"it fired"', '"{action.actor.id} deploys"'
    ) + rule('warn when action.actor.kind == "llm"', "b")
    assert codes(new_pack(policy), "L502") == []


def test_the_default_pack_reads_no_claim_that_can_loosen_it():
    found = [d for d in findings(BASELINE) if d.code == "L502"]
    assert found == []  # stale-proposal's read of requested_at is suppressed with its reason
