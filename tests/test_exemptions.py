"""Exemptions as data (``exemptions.yaml``): schema errors at file:line:col, unknown and
bright-line rules refused, expiry by the gate's clock only, glob targets, the verdict's
``exempted`` evidence, invariants proved with exemptions in force, and ``check``/``ci``
warning before an exemption expires."""

from __future__ import annotations

import fnmatch
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import write_pack
from hypothesis import given, settings
from hypothesis import strategies as st

from aigre_policy import interpreter, ir, load_pack
from aigre_policy.cli.main import main
from aigre_policy.compiler import compile_pack
from aigre_policy.exemptions import _match, expiry_warnings, read_exemptions, target_matches

POLICY = """
envelope cost { max_action_usd: 100 }
rule costly { deny when action.cost.estimated_usd > cost.max_action_usd because "too costly" }
rule wipe { tags: ["bright-line"] deny when action.kind == "data_deletion" }
"""

EXEMPTION = {
    "id": "payments-migration",
    "owner": "payments-team",
    "rule": "costly",
    "targets": ["payments-*", "ledger"],
    "reason": "one-off migration",
    "ticket": "FIN-42",
    "expires": "2026-03-31T00:00:00Z",
}

ACTION = {
    "id": "a-1",
    "kind": "deploy",
    "target": "payments-api",
    "environment": "production",
    "actor": {"kind": "llm", "id": "agent-7", "trust": 3},
    "change": {"type": "code"},
    "reversible": True,
    "blast_radius": {"users_share": 0.1},
    "cost": {"estimated_usd": 500},
    "requested_at": "2026-03-14T16:00:00Z",
}


def exemptions_text(*entries: dict) -> str:
    return json.dumps({"exemptions": list(entries)}, indent=2)


def pack_with(tmp_path: Path, text: str, policy: str = POLICY) -> Path:
    return write_pack(tmp_path / "pack", policy, files={"exemptions.yaml": text})


def codes_at(report) -> list[tuple[str, str]]:
    return [
        (d.code, f"{Path(d.span.file).name}:{d.span.line}:{d.span.column}" if d.span else "")
        for d in report.diagnostics
    ]


# ------------------------------------------------------------------ the file


def test_schema_errors_name_file_line_and_column(tmp_path):
    text = (
        "exemptions:\n"
        "  - id: payments-migration\n"
        "    owner: payments-team\n"
        "    rule: costly\n"
        "    targets: ['pay*ments*']\n"
        "    reason: one-off\n"
        "    expires: 2026-03-31\n"
    )
    report = compile_pack(pack_with(tmp_path, text))
    found = [(d.code, d.span.line, d.span.column, d.message) for d in report.diagnostics]
    assert ("E530", 2, 5) in [f[:3] for f in found]  # `ticket` missing: the entry
    assert ("E530", 5, 15) in [f[:3] for f in found]  # the glob with two inner stars
    assert ("E530", 7, 14) in [f[:3] for f in found]  # a date without time or offset
    assert not report.ok
    hints = {d.hint for d in report.diagnostics}
    assert "a target is an exact name or a glob: x*, *x, *x*, x*y or *" in hints


def test_an_impossible_date_and_a_repeated_id_are_errors(tmp_path):
    bad_day = {**EXEMPTION, "expires": "2026-02-30T00:00:00Z"}
    again = {**EXEMPTION, "ticket": "FIN-43"}
    report = compile_pack(pack_with(tmp_path, exemptions_text(bad_day, EXEMPTION, again)))
    messages = [d.message for d in report.diagnostics if d.code == "E530"]
    assert any("day is out of range" in m for m in messages)
    assert any("declared twice" in m for m in messages)


def test_an_exemption_of_an_unknown_rule_is_an_error_with_a_hint(tmp_path):
    report = compile_pack(pack_with(tmp_path, exemptions_text({**EXEMPTION, "rule": "costy"})))
    (problem,) = [d for d in report.diagnostics if d.code == "E531"]
    assert (problem.span.line, problem.span.column) == (6, 15)
    assert "`costy`" in problem.message and "costly" in (problem.hint or "")
    assert not report.ok


def test_a_bright_line_cannot_be_exempted(tmp_path):
    report = compile_pack(pack_with(tmp_path, exemptions_text({**EXEMPTION, "rule": "wipe"})))
    assert [d.code for d in report.diagnostics] == ["E532"]
    assert not report.ok


def test_a_schema_without_a_required_target_refuses_exemptions(tmp_path):
    schema = {
        "type": "object",
        "required": ["action", "context"],
        "properties": {
            "action": {
                "type": "object",
                "properties": {"target": {"type": "string"}, "cost": {"type": "number"}},
                "required": ["cost"],
            },
            "context": {
                "type": "object",
                "properties": {"now": {"type": "string", "format": "date-time"}},
                "required": ["now"],
            },
        },
    }
    root = write_pack(
        tmp_path / "pack",
        "rule costly { deny when action.cost > 100 }",
        manifest={"input_schema": "schema.json"},
        files={"schema.json": schema, "exemptions.yaml": exemptions_text(EXEMPTION)},
    )
    report = compile_pack(root)
    assert "E531" in [d.code for d in report.diagnostics]
    assert any("must require them" in d.message for d in report.diagnostics)


def test_the_pack_digest_covers_the_exemptions(tmp_path):
    root = pack_with(tmp_path, exemptions_text(EXEMPTION))
    before = load_pack(root).digest
    (root / "exemptions.yaml").write_text(
        exemptions_text({**EXEMPTION, "expires": "2026-04-30T00:00:00Z"}), encoding="utf-8"
    )
    assert load_pack(root).digest != before


# ------------------------------------------------------------------ deciding


@pytest.mark.parametrize("engine", ["native", "interpreter", "rego"])
def test_an_exemption_counts_by_the_gates_clock_only(tmp_path, engine):
    pack = load_pack(pack_with(tmp_path, exemptions_text(EXEMPTION)), engine=engine)
    inside = pack.evaluate(ACTION, {"now": "2026-03-30T23:59:59Z"})
    assert inside.decision == "allow"
    at_expiry = pack.evaluate(ACTION, {"now": "2026-03-31T00:00:00Z"})
    assert at_expiry.rule_ids == ["costly"]
    # a proposer who dates its proposal before the expiry revives nothing
    claimed = {**ACTION, "requested_at": "2026-01-01T00:00:00Z"}
    assert pack.evaluate(claimed, {"now": "2026-04-02T00:00:00Z"}).rule_ids == ["costly"]
    # a field the proposal has no business setting breaks the schema: fails closed
    smuggled = pack.evaluate(
        {**ACTION, "expires": "2030-01-01T00:00:00Z"}, {"now": "2026-04-02T00:00:00Z"}
    )
    assert smuggled.fail_closed and smuggled.decision == "deny"


def test_the_verdict_names_the_exemption_that_kept_a_rule_from_firing(tmp_path):
    pack = load_pack(pack_with(tmp_path, exemptions_text(EXEMPTION)))
    verdict = pack.evaluate(ACTION, {"now": "2026-03-30T00:00:00Z"})
    assert verdict.to_dict()["exempted"] == [
        {
            "exemption": "payments-migration",
            "rule": "costly",
            "owner": "payments-team",
            "ticket": "FIN-42",
            "expires": "2026-03-31T00:00:00Z",
            "reason": "one-off migration",
        }
    ]
    # the rule would not have fired anyway: the exemption is not why, so it is not listed
    cheap = pack.evaluate({**ACTION, "cost": {"estimated_usd": 5}}, {"now": "2026-03-30T00:00:00Z"})
    assert "exempted" not in cheap.to_dict() and cheap.exempted == []
    expired = pack.evaluate(ACTION, {"now": "2026-04-30T00:00:00Z"})
    assert "exempted" not in expired.to_dict()


def test_the_verdict_document_with_exempted_follows_its_published_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema_file = Path(__file__).resolve().parent.parent / "docs/schemas/verdict.schema.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    pack = load_pack(pack_with(tmp_path, exemptions_text(EXEMPTION)))
    document = pack.evaluate(ACTION, {"now": "2026-03-30T00:00:00Z"}).to_dict()
    jsonschema.Draft202012Validator(schema).validate(document)


def test_invariants_are_proved_with_exemptions_in_force(tmp_path):
    """An exemption that would lift what an invariant promises is found by `prove`: the
    exemption is part of the pack the solver reads, so the hole is a counterexample."""
    pytest.importorskip("z3")
    from aigre_policy.solver.prove import prove_pack

    policy = (
        POLICY
        + """
invariant "nothing over 100 USD runs" {
  when action.cost.estimated_usd > 100
  expect deny
}
"""
    )
    plain = load_pack(write_pack(tmp_path / "plain", policy))
    assert [r.status for r in prove_pack(plain.checked, plain, timeout_s=60).results] == ["proved"]
    pack = load_pack(pack_with(tmp_path, exemptions_text(EXEMPTION), policy))
    (result,) = prove_pack(pack.checked, pack, timeout_s=60).results
    assert result.status == "refuted"
    example = result.counterexample
    assert target_matches("payments-*", example["action"]["target"]) or (
        example["action"]["target"] == "ledger"
    )
    assert (
        pack.evaluate(example["action"], example["context"], example["usage"]).decision == "allow"
    )


# ------------------------------------------------------------------ targets


@pytest.mark.parametrize(
    ("pattern", "target", "matches"),
    [
        ("payments-*", "payments-", True),  # the star matches an empty run
        ("payments-*", "payments", False),
        ("payments-*", "Payments-api", False),  # case-sensitive
        ("*-canary", "-canary", True),
        ("*-canary", "x-canary-2", False),
        ("*batch*", "batch", True),
        ("ab*ba", "aba", False),  # prefix and suffix may not share characters
        ("ab*ba", "abba", True),
        ("a*/b", "a/x/b", True),  # `/` is a character like any other
        ("*", "", True),
        ("ledger", "ledger-eu", False),
        ("pay?", "pay?", True),  # only `*` is special (the schema refuses `?` and `[`)
    ],
)
def test_glob_targets(pattern, target, matches):
    assert target_matches(pattern, target) is matches


PATTERN_CHARS = st.sampled_from("ab-")
PATTERNS = st.one_of(
    st.text(PATTERN_CHARS, min_size=1, max_size=4),
    st.builds(
        lambda a, b: f"{a}*{b}",
        st.text(PATTERN_CHARS, max_size=3),
        st.text(PATTERN_CHARS, max_size=3),
    ),
    st.builds(lambda a: f"*{a}*", st.text(PATTERN_CHARS, min_size=1, max_size=3)),
)


@settings(max_examples=300, deadline=None)
@given(PATTERNS, st.text(PATTERN_CHARS, max_size=6))
def test_compiled_targets_match_as_fnmatch_does(pattern, target):
    """The guard compiled into the rules, the Python matcher and fnmatch agree."""
    counter = [0]

    def compare(op, left, right, kind, text):
        counter[0] += 1
        return ir.Compare(op, left, right, kind, counter[0], text)

    node = _match(pattern, ir.Path("action", ("target",)), compare, None)
    compiled = interpreter.evaluate(node, {"action": {"target": target}}, {})
    assert bool(compiled) == target_matches(pattern, target) == fnmatch.fnmatchcase(target, pattern)


@pytest.fixture(scope="module")
def glob_pack(tmp_path_factory):
    entries = [
        {**EXEMPTION, "id": f"e-{i}", "targets": [pattern], "expires": "2030-01-01T00:00:00Z"}
        for i, pattern in enumerate(["a*", "*b", "*ab*", "ba*ab", "b"])
    ]
    root = pack_with(tmp_path_factory.mktemp("globs"), exemptions_text(*entries))
    return {engine: load_pack(root, engine=engine) for engine in ("native", "interpreter")}


@settings(max_examples=150, deadline=None)
@given(st.text(st.sampled_from("ab"), min_size=1, max_size=7))
def test_every_engine_lifts_the_rule_for_exactly_the_matching_targets(glob_pack, target):
    expected = any(fnmatch.fnmatchcase(target, p) for p in ["a*", "*b", "*ab*", "ba*ab", "b"])
    for pack in glob_pack.values():
        verdict = pack.evaluate({**ACTION, "target": target}, {"now": "2026-03-30T00:00:00Z"})
        assert (verdict.decision == "allow") is expected, (pack.engine, target)


# ------------------------------------------------------------------ expiry warnings


def test_expiry_warnings_come_before_and_after_the_expiry(tmp_path):
    entries, problems, _ = read_exemptions(
        pack_with(tmp_path, exemptions_text(EXEMPTION)), "exemptions.yaml"
    )
    assert not problems
    far = datetime(2026, 1, 1, tzinfo=UTC)
    assert expiry_warnings(entries, far) == []
    soon = expiry_warnings(entries, datetime(2026, 3, 21, tzinfo=UTC))
    assert [d.code for d in soon] == ["W533"] and "in 10 days" in soon[0].message
    assert [d.code for d in expiry_warnings(entries, far, warn_days=120)] == ["W533"]
    gone = expiry_warnings(entries, datetime(2026, 3, 31, tzinfo=UTC))
    assert [d.code for d in gone] == ["W534"] and "no longer counts" in gone[0].message


def test_check_and_ci_report_an_expired_exemption_without_failing(tmp_path, capsys):
    root = pack_with(tmp_path, exemptions_text({**EXEMPTION, "expires": "2020-01-01T00:00:00Z"}))
    assert main(["check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "warning[W534]" in out and "exemptions.yaml:3:5" in out
    assert main(["check", str(root), "--exemption-warning-days", "0"]) == 0
    assert "W534" in capsys.readouterr().out


def test_the_compile_cache_sees_a_changed_exemptions_file(tmp_path):
    """A cached pack must not keep an exemption its file no longer holds."""
    from aigre_policy.cache import CompileCache

    cache = CompileCache(tmp_path / "cache", tmp_path / "config" / "cache-key")
    root = pack_with(tmp_path, exemptions_text(EXEMPTION))
    first = load_pack(root, cache=cache)
    assert first.evaluate(ACTION, {"now": "2026-03-30T00:00:00Z"}).decision == "allow"
    (root / "exemptions.yaml").write_text(exemptions_text(), encoding="utf-8")
    again = load_pack(root, cache=cache)
    assert again.evaluate(ACTION, {"now": "2026-03-30T00:00:00Z"}).rule_ids == ["costly"]
    assert cache.misses == 2


def test_a_gates_verdict_carries_the_exempted_list(tmp_path):
    from aigre_policy.gate import Gate

    pack = load_pack(pack_with(tmp_path, exemptions_text(EXEMPTION)))
    gate = Gate(pack, clock=lambda: datetime(2026, 3, 30, tzinfo=UTC))
    verdict = gate.check(ACTION)
    assert verdict.decision == "allow"
    assert [e["exemption"] for e in verdict.to_dict()["exempted"]] == ["payments-migration"]
    later = Gate(pack, clock=lambda: datetime(2026, 4, 1, tzinfo=UTC)).check(ACTION)
    assert later.rule_ids == ["costly"] and "exempted" not in later.to_dict()


# ------------------------------------------------------------------ a built bundle


SECOND = {**EXEMPTION, "id": "ledger-cutover", "targets": ["payments-*"], "ticket": "FIN-43"}


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    """A pack with two exemptions of one rule, natively and as a built bundle on both Rego
    engines (the bundle holds its own Rego: no pack source, no interpreter)."""
    from aigre_policy.rego.bundle import build_pack_bundle  # the bundle builder, for this test

    root = pack_with(tmp_path_factory.mktemp("bundled"), exemptions_text(EXEMPTION, SECOND))
    built = build_pack_bundle(root)
    assert built.archive is not None
    archive = root.parent / "pack.tar.gz"
    archive.write_bytes(built.archive)
    engines = {engine: load_pack(archive, engine=engine) for engine in ("rego", "regorus")}
    return load_pack(root), engines


CASES = [
    # (target, cost, now, the exemptions listed)
    ("payments-api", 500, "2026-03-30T00:00:00Z", ["payments-migration", "ledger-cutover"]),
    ("ledger", 500, "2026-03-30T00:00:00Z", ["payments-migration"]),
    ("checkout", 500, "2026-03-30T00:00:00Z", []),  # covered by neither: the rule fires
    ("payments-api", 5, "2026-03-30T00:00:00Z", []),  # the rule would not have fired anyway
    ("payments-api", 500, "2026-03-31T00:00:00Z", []),  # expired by the gate's clock
]


@pytest.mark.parametrize(("target", "cost", "now", "listed"), CASES)
def test_a_bundles_verdict_names_the_exemptions_native_names(bundled, target, cost, now, listed):
    native, engines = bundled
    action = {**ACTION, "target": target, "cost": {"estimated_usd": cost}}
    expected = native.evaluate(action, {"now": now})
    assert [e["exemption"] for e in expected.exempted] == listed
    for engine, pack in engines.items():
        verdict = pack.evaluate(action, {"now": now})
        assert verdict.decision == expected.decision, engine
        assert verdict.exempted == expected.exempted, engine
        document = verdict.to_dict()
        assert document.get("exempted") == expected.to_dict().get("exempted"), engine
        assert ("exempted" in document) is bool(listed), engine


GLOB_EXEMPTIONS = [
    {**EXEMPTION, "id": f"g-{i}", "targets": targets, "expires": expires, "ticket": f"T-{i}"}
    for i, (targets, expires) in enumerate(
        [
            (["a*"], "2026-03-31T00:00:00Z"),
            (["*b", "ab"], "2026-03-20T12:00:00Z"),
            (["*ab*"], "2026-04-30T00:00:00Z"),
            (["ba*ab"], "2026-03-31T00:00:00+02:00"),
            (["*"], "2026-03-15T00:00:00Z"),
        ]
    )
]


@pytest.fixture(scope="module")
def glob_bundle(tmp_path_factory):
    from aigre_policy.rego.bundle import build_pack_bundle  # the bundle builder, for this test

    root = pack_with(tmp_path_factory.mktemp("glob-bundle"), exemptions_text(*GLOB_EXEMPTIONS))
    archive = root.parent / "pack.tar.gz"
    archive.write_bytes(build_pack_bundle(root).archive)
    return load_pack(root), [load_pack(archive, engine=e) for e in ("rego", "regorus")]


@settings(max_examples=60, deadline=None)
@given(
    target=st.text(st.sampled_from("ab"), min_size=1, max_size=6),
    cost=st.sampled_from([5, 150]),
    now=st.sampled_from(
        [
            "2026-03-14T23:59:59Z",
            "2026-03-15T00:00:00Z",
            "2026-03-20T12:00:00Z",
            "2026-03-30T21:59:59Z",
            "2026-03-30T22:00:00Z",
            "2026-04-29T23:59:59.5Z",
        ]
    ),
)
def test_a_bundle_lists_exactly_what_native_lists_for_any_target_and_clock(
    glob_bundle, target, cost, now
):
    native, bundles = glob_bundle
    action = {**ACTION, "target": target, "cost": {"estimated_usd": cost}}
    expected = native.evaluate(action, {"now": now})
    for bundle in bundles:
        verdict = bundle.evaluate(action, {"now": now})
        assert (verdict.decision, verdict.exempted) == (expected.decision, expected.exempted)
