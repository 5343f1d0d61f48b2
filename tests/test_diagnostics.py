"""Every diagnostic the compiler can emit: its code, where it points, what it says, its hint.

Each case is a small pack that makes the compiler emit one code. The case names the
line and the snippet the caret must sit under (the column is where that snippet
starts on that line), words the message must hold and words the hint must hold.
A second table holds near twins: the corrected pack must compile without that code.
"""

from __future__ import annotations

import math
import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from aigre_policy.cli.main import main
from aigre_policy.compiler import CompileReport, compile_pack
from aigre_policy.diagnostics import Diagnostic, Severity, render

POLICY_FILE = "policies/main.aigre"
GOLDEN = Path(__file__).parent / "golden" / "check_report.txt"
BIG_INT = "9" * 400
SCHEMA_NO_CONTEXT = {
    "type": "object",
    "properties": {
        "action": {"type": "object", "properties": {"k": {"type": "string"}}, "required": ["k"]}
    },
    "required": ["action"],
}
SCHEMA_ANYOF = {
    "type": "object",
    "required": ["action", "context"],
    "properties": {
        "action": {
            "type": "object",
            "required": ["weird"],
            "properties": {"weird": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        },
        "context": {"type": "object", "properties": {}},
    },
}


# ---------------------------------------------------------------------------- helpers


def compile_at(root: Path, overrides: dict[str, Any] | None = None) -> CompileReport:
    report = compile_pack(root, overrides)
    assert isinstance(report, CompileReport)
    return report


def column_of(text: str, line: int, at: str | int) -> int:
    """The 1-based column of ``at`` on ``line`` of ``text`` (an int is a column already)."""
    if isinstance(at, int):
        return at
    source_line = text.split("\n")[line - 1]
    assert at in source_line, f"{at!r} is not on line {line}: {source_line!r}"
    return source_line.index(at) + 1


def only(report: CompileReport, code: str) -> Diagnostic:
    found = [d for d in report.diagnostics if d.code == code]
    shown = [(d.code, d.message) for d in report.diagnostics]
    assert found, f"no {code} among {shown}"
    return found[0]


def case(
    code: str,
    source: str | dict[str, str] | None,
    line: int | None,
    at: str | int | None,
    words: tuple[str, ...],
    hint: tuple[str, ...] = (),
    *,
    id: str,
    manifest: dict[str, Any] | str | None = None,
    files: dict[str, Any] | None = None,
    file: str = POLICY_FILE,
    overrides: dict[str, Any] | None = None,
) -> Any:
    return pytest.param(
        code, source, line, at, words, hint, manifest, files, file, overrides, id=f"{code}-{id}"
    )


# ------------------------------------------------------------- language diagnostics

LANGUAGE_CASES = [
    # E001 syntax
    case(
        "E001",
        'rule r { deny when action.environment = "production" }',
        1,
        '= "production"',
        ("unexpected `=`",),
        ("`==`",),
        id="single-equals",
    ),
    case(
        "E001",
        'rule r { deny when action.environment == "production" && action.reversible }',
        1,
        "&&",
        ("unexpected character `&`",),
        ("`and`",),
        id="ampersands",
    ),
    case(
        "E001",
        "rule r { deny when action.reversible || true }",
        1,
        "||",
        ("unexpected character `|`",),
        ("`or`",),
        id="pipes",
    ),
    case(
        "E001",
        "rule r { deny when ! action.reversible }",
        1,
        "!",
        ("unexpected character `!`",),
        ("`not`",),
        id="bang",
    ),
    case(
        "E001",
        "rule r { deny when action.target == 'x' }",
        1,
        "'x'",
        ("unexpected character",),
        ("double quotes",),
        id="single-quotes",
    ),
    case(
        "E001",
        "rule r { deny action.reversible }",
        1,
        "action",
        ("unexpected `action`", "`when`"),
        ("deny when <condition>",),
        id="missing-when",
    ),
    case(
        "E001",
        "rule r {\n  deny when true\n",
        2,
        len("  deny when true") + 1,
        ("unexpected end of file",),
        ("closing `}`",),
        id="missing-brace",
    ),
    case(
        "E001",
        "rule R { deny when true }",
        1,
        "R {",
        ("unexpected `R`", "rule id"),
        id="uppercase-rule-id",
    ),
    # E002 literals
    case(
        "E002",
        "rule r { deny when action.cost.estimated_usd > 1e400 }",
        1,
        "1e400",
        ("`1e400`", "out of range"),
        ("finite",),
        id="huge-float",
    ),
    case(
        "E002",
        f"rule r {{ deny when action.cost.estimated_usd > {BIG_INT} }}",
        1,
        BIG_INT,
        ("integer", "out of range"),
        ("64 bits",),
        id="400-digit-integer",
    ),
    case(
        "E002",
        "envelope e { x: 1e400 }",
        1,
        "1e400",
        ("out of range",),
        ("finite",),
        id="huge-envelope-value",
    ),
    case(
        "E002",
        'rule r { deny when action.target == "a\\qb" }',
        1,
        "\\q",
        ("unknown escape `\\q`",),
        ("known escapes",),
        id="unknown-escape",
    ),
    case(
        "E002",
        "rule r { deny when 5m > 1000000000000000w }",
        1,
        "1000000000000000w",
        ("duration", "out of range"),
        id="huge-duration",
    ),
    # E003 message interpolation
    case(
        "E003",
        'rule r { deny when true\n because "x {action.kind" }',
        2,
        "{action",
        ("unclosed `{`",),
        ("`{{`",),
        id="unclosed-brace",
    ),
    case(
        "E003",
        'rule r { deny when true\n because "x } y" }',
        2,
        "} y",
        ("unmatched `}`",),
        ("`}}`",),
        id="unmatched-brace",
    ),
    case(
        "E003",
        'rule r { deny when true\n because "x {} y" }',
        2,
        "{}",
        ("empty `{}`",),
        ("`{{}}`",),
        id="empty-braces",
    ),
    case(
        "E003",
        'rule r { deny when true\n because "x {action.} y" }',
        2,
        "} y",
        ("in message interpolation", "unexpected end of file"),
        id="bad-interpolation",
    ),
    # E101 names
    case(
        "E101",
        'rule r { deny when actoin.kind == "rollback" }',
        1,
        "actoin",
        ("unknown name `actoin`",),
        ("did you mean `action`?",),
        id="typo",
    ),
    # E102 fields
    case(
        "E102",
        'rule r { deny when action.knd == "rollback" }',
        1,
        "action.knd",
        ("`action` has no field `knd`",),
        ("did you mean `kind`?",),
        id="typo",
    ),
    case(
        "E102",
        "rule r { deny when usage.spend > 3 }",
        1,
        "usage.spend",
        ("`usage` has no field `spend`",),
        ("declare it: `usage spend = ...`",),
        id="undeclared-usage",
    ),
    case(
        "E102",
        'rule r { deny when true }\ntest "t" { action { kindd: "rollback" }\n expect deny }',
        2,
        "kindd",
        ("`action` has no field `kindd`",),
        ("`kind`",),
        id="test-input",
    ),
    # E103 envelope values
    case(
        "E103",
        "envelope cost { max: 3 }\nrule r { deny when action.cost.estimated_usd > cost.mx }",
        2,
        "cost.mx",
        ("envelope `cost` has no value `mx`",),
        ("did you mean `max`?",),
        id="typo",
    ),
    case(
        "E103",
        "envelope cost { max: 3 }\nrule r { deny when action.cost.estimated_usd > cost.max.y }",
        2,
        "cost.max.y",
        ("read an envelope value as `cost.<name>`",),
        ("max",),
        id="too-deep",
    ),
    case(
        "E103",
        'envelope e { x: 1 }\nrule r { deny when true }\ntest "t" { with f.x = 1\n expect deny }',
        3,
        "with f.x",
        ("unknown envelope `f`",),
        id="test-override-envelope",
    ),
    case(
        "E103",
        'envelope e { x: 1 }\nrule r { deny when true }\ntest "t" { with e.y = 1\n expect deny }',
        3,
        "with e.y",
        ("envelope `e` has no value `y`",),
        id="test-override-value",
    ),
    # E104 functions
    case(
        "E104",
        "rule r { deny when lenn(action.target) > 3 }",
        1,
        "lenn",
        ("unknown function `lenn`",),
        ("did you mean `len`?",),
        id="typo",
    ),
    case(
        "E104",
        "rule r { deny when frobnicate(action.target) }",
        1,
        "frobnicate",
        ("unknown function `frobnicate`",),
        ("functions:", "starts_with"),
        id="unknown",
    ),
    # E105 / E106 duplicates
    case(
        "E105",
        "rule r { deny when true }\nrule r { deny when false }",
        2,
        "r {",
        ("rule `r` is declared twice",),
        ("first declared at", "main.aigre:1:6"),
        id="rule",
    ),
    case(
        "E106",
        "envelope a { x: 1 }\nenvelope a { y: 1 }",
        2,
        "envelope",
        ("envelope `a` is declared twice",),
        ("first declared at", "main.aigre:1:1"),
        id="envelope",
    ),
    case(
        "E106",
        "envelope a { x: 1 x: 2 }",
        1,
        "x: 2",
        ("`a.x` is set twice",),
        id="envelope-value",
    ),
    case(
        "E106",
        "usage n = count() over last 1h\nusage n = count() over last 2h",
        2,
        "usage",
        ("usage `n` is declared twice",),
        ("first declared at",),
        id="usage",
    ),
    case(
        "E106",
        'rule r { deny when true }\ntest "a" { expect deny }\ntest "a" { expect deny }',
        3,
        "test",
        ('test "a" is declared twice',),
        ("first declared at",),
        id="test",
    ),
    # E107 reserved and shadowed names
    case(
        "E107",
        "envelope action { x: 1 }",
        1,
        "envelope",
        ("`action` is reserved",),
        ("another name",),
        id="reserved-envelope",
    ),
    case(
        "E107",
        'rule r { deny when any(s in ["a"]: any(s in ["b"]: s == "x")) }',
        1,
        'any(s in ["b"]',
        ("`s` is already a name here",),
        ("another name",),
        id="shadowed-item",
    ),
    case(
        "E107",
        'envelope e { x: 1 }\nrule r { deny when any(e in ["a"]: e == "x") }',
        2,
        "any",
        ("`e` is already a name here",),
        id="item-named-like-envelope",
    ),
    # E108 unknown rule in a test
    case(
        "E108",
        'rule r { deny when true }\ntest "t" { expect deny by rr }',
        2,
        "rr",
        ("unknown rule `rr`",),
        ("did you mean `r`?",),
        id="expect-by",
    ),
    # E109 rule fields
    case(
        "E109",
        'rule r { titel: "x"\n deny when true }',
        1,
        "titel",
        ("unknown rule field `titel`",),
        ("did you mean `title`?",),
        id="unknown-field",
    ),
    case(
        "E109",
        "rule r { severity: hgh\n deny when true }",
        1,
        "severity",
        ("`severity` must be one of low, medium, high, critical",),
        ("did you mean `high`?",),
        id="severity",
    ),
    case(
        "E109",
        'rule r { title: ""\n deny when true }',
        1,
        "title",
        ("`title` must be a non-empty string",),
        ('title: "..."',),
        id="empty-title",
    ),
    case(
        "E109",
        'rule r { category: "Risk"\n deny when true }',
        1,
        "category",
        ("`category` must be one of", "lowercase word"),
        ("did you mean `risk`?",),
        id="category",
    ),
    case(
        "E109",
        'rule r { tags: "a"\n deny when true }',
        1,
        "tags",
        ("`tags` must be a list of strings",),
        ("tags: [",),
        id="tags",
    ),
    case(
        "E109",
        'rule r { title: "a"\n title: "b"\n deny when true }',
        2,
        "title",
        ("`title` is set twice",),
        id="twice",
    ),
    # E110 verdict clauses
    case(
        "E110",
        'rule r { title: "a" }',
        1,
        "r {",
        ("rule `r` has no verdict",),
        ("deny when", "require_approval by"),
        id="none",
    ),
    case(
        "E110",
        "rule r { deny when true\n warn when true }",
        2,
        "warn",
        ("rule `r` has more than one verdict",),
        ("split it into two rules",),
        id="two-verdicts",
    ),
    case(
        "E110",
        'rule r { deny when true\n because "a"\n because "b" }',
        3,
        "because",
        ("more than one `because`",),
        id="two-becauses",
    ),
    # E111 approver groups
    case(
        "E111",
        "rule r { require_approval by [] when true }",
        1,
        "require_approval",
        ("needs at least one approver group",),
        ('["sre-oncall"]',),
        id="no-group",
    ),
    case(
        "E111",
        'rule r { require_approval by ["SRE"] when true }',
        1,
        "require_approval",
        ("approver group `SRE` is not a lowercase word",),
        ("sre-oncall",),
        id="bad-group",
    ),
    # E112 usage windows
    case(
        "E112",
        "usage n = count() over calendar_mnth",
        1,
        "usage",
        ("unknown window `calendar_mnth`",),
        ("did you mean `calendar_month`?",),
        id="window",
    ),
    # E115 `current` in a usage, outside `PAST == CURRENT`
    case(
        "E115",
        "usage n = count() over last 1h where action.target != current.target",
        1,
        "current.target",
        ("`current` is read in a condition that is not `PAST == CURRENT`",),
        ("action.target == current.target",),
        id="current-not-equal",
    ),
    case(
        "E115",
        "usage n = count() over last 1h where action.target == current.target or true",
        1,
        "current.target",
        ("`current` is read in a condition",),
        id="current-under-or",
    ),
    case(
        "E115",
        "usage n = sum(current.cost.estimated_usd) over last 1h",
        1,
        "current.cost",
        ("`current` is read in the value a usage adds up",),
        id="current-in-argument",
    ),
    case(
        "E301",
        "usage n = count() over last 1h where action.target == current.actor.on_behalf_of",
        1,
        "current.actor",
        ("is optional and may be absent",),
        id="current-optional",
    ),
    # E208, E209 keyed envelope values; a bare or ill-keyed read
    case(
        "E208",
        "envelope cost { max_action_usd: { by_team: { ml: 5000 } } }",
        1,
        "{ by_team",
        ("`cost.max_action_usd` is keyed but has no `default`",),
        ("default: 250",),
        id="keyed-no-default",
    ),
    case(
        "E209",
        'envelope cost { max_action_usd: { default: 250, by_team: { ml: "5000" } } }',
        1,
        '"5000"',
        ("`cost.max_action_usd` for `ml` must have the default's type",),
        id="keyed-ill-typed",
    ),
    case(
        "E209",
        "envelope cost { max_action_usd: { default: 250, team: { ml: 5000 } } }",
        1,
        "team:",
        ("holds `default` and one table `by_<what>",),
        id="keyed-no-table",
    ),
    case(
        "E201",
        "envelope cost { cap: { default: 250, by_team: { ml: 5000 } } }\n"
        "rule r { deny when action.cost.estimated_usd > cost.cap }",
        2,
        "cost.cap",
        ("`cost.cap` is keyed by team: it is read with a key",),
        ("lookup(cost.cap, <team>)",),
        id="keyed-read-bare",
    ),
    case(
        "E202",
        "envelope cost { cap: { default: 250, by_env: { prod: 5000 } } }\n"
        "rule r { deny when action.cost.estimated_usd > lookup(cost.cap, action.environment) }",
        2,
        "cost.cap,",
        ("`cost.cap` is keyed by `prod`, which `action.environment` never holds",),
        id="keyed-outside-enum",
    ),
    case(
        "E204",
        "envelope cost { cap: 5 }\nrule r { deny when lookup(cost.cap, action.target) > 1 }",
        2,
        "cost.cap,",
        ("`lookup` reads a keyed envelope value",),
        id="lookup-not-keyed",
    ),
    # E113 test inputs
    case(
        "E113",
        'rule r { deny when true }\ntest "t" { action { kind: "scale" }\n'
        ' action { kind: "rollback" }\n expect deny }',
        3,
        "action",
        ("the test gives `action` twice",),
        id="input-twice",
    ),
    case(
        "E113",
        'rule r { deny when true }\ntest "t" { action from "nope.yaml"\n expect deny }',
        2,
        "action from",
        ("test input file `nope.yaml` not found",),
        ("relative to the pack directory",),
        id="missing-file",
    ),
    # E201 types
    case(
        "E201",
        "rule r { deny when action.target == 3 }",
        1,
        "action.target",
        ("cannot compare string with integer",),
        id="compare-kinds",
    ),
    case(
        "E201",
        'rule r { deny when action.target > "a" }',
        1,
        "action.target",
        ("`>` orders numbers, durations or timestamps, not string",),
        ("`==`, `!=` or `in`",),
        id="order-strings",
    ),
    case(
        "E201",
        'rule r { deny when action.target in "abc" }',
        1,
        '"abc"',
        ("the right side of `in` must be a list, found string",),
        ("contains(text, part)",),
        id="in-string",
    ),
    case(
        "E201",
        'rule r { deny when 3 in ["a"] }',
        1,
        "3 in",
        ("cannot look for",),
        id="member-kinds",
    ),
    case(
        "E201",
        'rule r { deny when -action.target == "a" }',
        1,
        "-action",
        ("cannot negate a string",),
        id="negate-string",
    ),
    case(
        "E201",
        'rule r { deny when action.target + 1 == "a" }',
        1,
        "action.target",
        ("cannot apply `+` to string and integer",),
        id="arith",
    ),
    case(
        "E201",
        'rule r { deny when ["a", 1] == [] }',
        1,
        "1]",
        ("list mixes string and integer",),
        ("one type",),
        id="mixed-list",
    ),
    case(
        "E201",
        "rule r { deny when context.now - action.requested_at > 5 }",
        1,
        "context.now",
        ("cannot compare duration with integer",),
        ("with a unit",),
        id="duration-vs-number",
    ),
    case(  # an object is a keyed value (`lookup`), which needs its default
        "E208",
        "envelope e { x: {a: 1} }",
        1,
        "{a: 1}",
        ("`e.x` is keyed but has no `default`",),
        id="envelope-object",
    ),
    case(
        "E201",
        'envelope e { x: 1 }\nrule r { deny when true }\ntest "t" { with e.x = "a"\n expect deny }',
        3,
        '"a"',
        ("`e.x` is a", "given string"),
        id="test-override-type",
    ),
    case(
        "E201",
        'rule r { deny when has action.data and (action.data.processed_in ?? 3) == "x" }',
        1,
        "3)",
        ("the default is a integer but `action.data.processed_in` is a string",),
        id="default-type",
    ),
    case(
        "E201",
        'rule r { deny when true }\ntest "t" { action { reversible: "yes" }\n expect deny }',
        2,
        '"yes"',
        ("`action.reversible` is a boolean",),
        id="test-input-type",
    ),
    # E202 enum values
    case(
        "E202",
        'rule r { deny when action.environment == "prodution" }',
        1,
        '"prodution"',
        ("'prodution' is never a value here",),
        ("production",),
        id="typo",
    ),
    case(
        "E202",
        'rule r { deny when action.environment in ["prod", "staging"] }',
        1,
        '"prod"',
        ("'prod' is never a value here",),
        ("one of", "'production'", "'sandbox'"),
        id="in-list",
    ),
    case(
        "E202",
        'rule r { deny when true }\ntest "t" { action { kind: "rollbak" }\n expect deny }',
        2,
        '"rollbak"',
        ("'rollbak' is never a value of `action.kind`",),
        ("rollback",),
        id="test-input",
    ),
    case(
        "E202",
        'usage n = sum(action.cost.estimated_usd) over calendar_month where decision == "alow"',
        1,
        '"alow"',
        ("'alow' is never a value here",),
        ("allow",),
        id="usage-filter",
    ),
    # E203 conditions must be boolean
    case(
        "E203",
        "rule r { deny when action.cost.estimated_usd }",
        1,
        "action",
        ("a rule's condition must be a boolean, found number",),
        ("compare it",),
        id="condition",
    ),
    case(
        "E203",
        "rule r { deny when not action.target }",
        1,
        "action",
        ("the operand of `not` must be a boolean",),
        id="not",
    ),
    case(
        "E203",
        "rule r { deny when action.reversible and action.target }",
        1,
        "action.target",
        ("the right side of `and` must be a boolean",),
        id="and",
    ),
    # E204 calls and aggregates
    case(
        "E204",
        "usage n = sum() over calendar_month",
        1,
        "usage",
        ("`sum` needs a value to add up",),
        ("sum(action.cost.estimated_usd)",),
        id="sum-without-value",
    ),
    case(
        "E204",
        "usage n = count(action.cost.estimated_usd) over calendar_month",
        1,
        "action",
        ("`count()` takes no argument",),
        id="count-with-value",
    ),
    case(
        "E204",
        "usage n = sum(action.target) over calendar_month",
        1,
        "action",
        ("`sum` adds up numbers, given a string",),
        id="sum-of-strings",
    ),
    case(
        "E204",
        "rule r { deny when len(1) > 2 }",
        1,
        "1)",
        ("`len` expects a",),
        id="argument-type",
    ),
    case(
        "E204",
        'rule r { deny when len("a", "b") > 2 }',
        1,
        "len",
        ("`len` takes 1 argument, given 2",),
        id="argument-count",
    ),
    # E205 field reads
    case(
        "E205",
        'rule r { deny when action.target.x == "a" }',
        1,
        "action",
        ("`action.target` is a string and has no field `x`",),
        id="field-of-string",
    ),
    case(
        "E205",
        'rule r { deny when "a".x == "a" }',
        1,
        '"a".x',
        ("fields can only be read from input, envelope or item names",),
        id="field-of-literal",
    ),
    # E206 has / ?? misuse
    case(
        "E206",
        "envelope e { x: 1 }\nrule r { deny when has e.x }",
        2,
        "has",
        ("`has` tests an input field",),
        id="has-envelope",
    ),
    case(
        "E206",
        'rule r { deny when ("a" ?? "b") == "a" }',
        1,
        '"a" ??',
        ("`??` needs a field path on its left",),
        ("action.field ?? fallback",),
        id="default-of-literal",
    ),
    # E207 schema constructs the language cannot read
    case(
        "E207",
        'rule r { deny when action.weird == "a" }',
        1,
        "action.weird",
        ("`action.weird` cannot be read", "anyOf"),
        id="anyof",
        manifest={"input_schema": "schema.json"},
        files={"schema.json": SCHEMA_ANYOF},
    ),
    # E210 zones, E211 calendar dates: known when the pack compiles, overrides included
    case(
        "E210",
        'rule r { deny when hour_in(context.now, "Europe/Berln") > 17 }',
        1,
        '"Europe/Berln"',
        ("unknown time zone `Europe/Berln`",),
        ("IANA",),
        id="literal",
    ),
    case(
        "E210",
        'envelope clock { zone: "UTC" }\n'
        'rule r { deny when weekday_in(context.now, clock.zone) == "sunday" }',
        2,
        "clock.zone",
        ("unknown time zone `Mars/Olympus`", "`clock.zone`"),
        id="override",
        overrides={"clock": {"zone": "Mars/Olympus"}},
    ),
    case(
        "E210",
        "rule r { deny when hour_in(context.now, action.target) > 17 }",
        1,
        "action.target",
        ("must be known when the pack compiles",),
        id="input",
    ),
    case(
        "E211",
        'envelope freeze { days: ["2025-12-25"] }\n'
        'rule r { deny when date_in(context.now, "UTC") in freeze.days }',
        2,
        "freeze.days",
        ("`2025-13-01` in `freeze.days` is not a calendar date",),
        ("YYYY-MM-DD",),
        id="override",
        overrides={"freeze": {"days": ["2025-12-25", "2025-13-01"]}},
    ),
    case(
        "E211",
        'rule r { deny when date(context.now) == "2025-1-1" }',
        1,
        '"2025-1-1"',
        ("`2025-1-1` is not a calendar date",),
        id="literal",
    ),
    # E301 optional fields
    case(
        "E301",
        "rule r { deny when context.error_budget_remaining < 0.1 }",
        1,
        "context",
        ("`context.error_budget_remaining` is optional and may be absent",),
        ("??", "has context.error_budget_remaining"),
        id="bare-read",
    ),
    case(
        "E301",
        'rule r { deny when action.data.classification == "restricted" }',
        1,
        "action.data",
        ("`action.data` is optional",),
        ("??", "has action.data.classification"),
        id="optional-parent",
    ),
    case(
        "E301",
        'rule r { warn when true\n because "{context.error_budget_remaining}" }',
        2,
        "context",
        ("`context.error_budget_remaining` is optional",),
        ("??", "has"),
        id="in-message",
    ),
    case(
        "E301",
        'rule r { deny when has action.data and action.data.processed_in == "eu" }',
        1,
        "action.data.processed_in",
        ("`action.data.processed_in` is optional",),
        ("has action.data.processed_in",),
        id="guard-covers-only-the-parent",
    ),
    case(
        "E301",
        'rule r { deny when any(s in action.blast_radius.services: s == "db") }',
        1,
        "action.blast_radius",
        ("`action.blast_radius.services` is optional",),
        id="quantified-list",
    ),
    # W302 / W303 / W114 warnings
    case(
        "W302",
        'rule r { deny when (action.kind ?? "scale") == "scale" }',
        1,
        "action.kind ??",
        ("the default is never used", "`action.kind` is required"),
        id="required-field",
    ),
    case(
        "W302",
        "envelope e { x: 1 }\nrule r { deny when (e.x ?? 2) == 1 }",
        2,
        "e.x ??",
        ("the default is never used", "`e.x` is always set"),
        id="envelope",
    ),
    case(
        "W302",
        'rule r { deny when has action.rollback and (action.rollback.plan ?? "") == "" }',
        1,
        "action.rollback.plan ??",
        ("already known present",),
        id="guarded",
    ),
    case(
        "W303",
        "rule r { deny when has action.kind }",
        1,
        "has",
        ("`has action.kind` is always true",),
        id="required-field",
    ),
    case(
        "W303",
        "rule r { deny when has action.rollback and has action.rollback }",
        1,
        "has action.rollback }",
        ("always true", "already known present"),
        id="guarded-twice",
    ),
    case(
        "W114",
        'rule r { deny when true }\ntest "t" { }',
        2,
        "test",
        ('test "t" expects nothing',),
        ("expect allow",),
        id="test-without-expect",
    ),
]


# ------------------------------------------------------------------ pack diagnostics

MANIFEST_LINES = 'name: "t"\nversion: "1.0.0"\ndefault: "allow"\nfail_closed: "deny"\n'
SIMPLE = "envelope e { x: 1 }\nrule r { deny when action.cost.estimated_usd > e.x }"

PACK_CASES = [
    case(
        "E500",
        SIMPLE,
        None,
        None,
        ("file not found", "missing.json"),
        id="schema-file-missing",
        manifest={"input_schema": "missing.json"},
    ),
    case(
        "E501",
        SIMPLE,
        4,
        1,
        ("not valid YAML",),
        id="manifest-yaml",
        manifest="name: t\nversion: 1.0.0\ndefault: [allow\n",
        file="pack.yaml",
    ),
    case(
        "E501",
        SIMPLE,
        2,
        "}",
        ("not valid JSON",),
        id="schema-json",
        manifest={"input_schema": "schema.json"},
        files={"schema.json": '{"type": "object",\n "x": }'},
        file="schema.json",
    ),
    case(
        "E502",
        SIMPLE,
        1,
        1,
        ("pack.yaml must be a mapping of settings",),
        id="not-a-mapping",
        manifest="- a\n- b\n",
        file="pack.yaml",
    ),
    case(
        "E502",
        SIMPLE,
        3,
        '"maybe"',
        ("default:", "'maybe' is not one of ['allow', 'deny']"),
        id="default-enum",
        manifest={"default": "maybe"},
        file="pack.yaml",
    ),
    case(
        "E502",
        SIMPLE,
        2,
        '"1.0"',
        ("version:", "does not match"),
        ("versions look like 1.2.0",),
        id="version",
        manifest={"version": "1.0"},
        file="pack.yaml",
    ),
    case(
        "E502",
        SIMPLE,
        1,
        1,
        ("Additional properties are not allowed", "'extra'"),
        ("settings: name, version",),
        id="unknown-setting",
        manifest={"extra": 1},
        file="pack.yaml",
    ),
    case(
        "E503",
        SIMPLE,
        5,
        '"builtin:nope"',
        ("unknown built-in schema `builtin:nope`",),
        ("builtin:proposed-action/v1",),
        id="unknown-builtin",
        manifest={"input_schema": "builtin:nope"},
        file="pack.yaml",
    ),
    case(
        "E503",
        SIMPLE,
        1,
        "12",
        ("the input schema is not a valid JSON Schema",),
        id="invalid-json-schema",
        manifest={"input_schema": "schema.json"},
        files={"schema.json": '{"type": 12}'},
        file="schema.json",
    ),
    case(
        "E503",
        SIMPLE,
        1,
        1,
        ("must describe an object with `action` and `context`",),
        id="no-action",
        manifest={"input_schema": "schema.json"},
        files={"schema.json": '{"type": "object"}'},
        file="schema.json",
    ),
    case(
        "E504",
        SIMPLE,
        None,
        None,
        ("pack.yaml: unknown envelope `f`",),
        ("known: e",),
        id="manifest-unknown-envelope",
        manifest={"envelopes": {"f": {"x": 1}}},
    ),
    case(
        "E504",
        SIMPLE,
        None,
        None,
        ("pack.yaml: envelope `e` has no value `y`",),
        ("x",),
        id="manifest-unknown-value",
        manifest={"envelopes": {"e": {"y": 1}}},
    ),
    case(
        "E504",
        SIMPLE,
        None,
        None,
        ("pack.yaml: `e.x` is a", "given 'a'"),
        id="manifest-wrong-type",
        manifest={"envelopes": {"e": {"x": "a"}}},
    ),
    case(
        "E504",
        SIMPLE,
        None,
        None,
        ("override: `e.x` is a", "given 'zz'"),
        id="override-wrong-type",
        overrides={"e": {"x": "zz"}},
    ),
    case(
        "E504",
        SIMPLE,
        None,
        None,
        ("override: unknown envelope `cots`",),
        id="override-unknown-envelope",
        overrides={"cots": {"x": 1}},
    ),
    case(
        "E504",
        SIMPLE,
        None,
        None,
        ("override: `e` needs name: value pairs",),
        id="override-not-a-mapping",
        overrides={"e": 5},
    ),
    case(
        "E505",
        None,
        None,
        None,
        ("the pack has no policies", "policies"),
        id="no-policies",
    ),
]


@pytest.mark.parametrize(
    ("code", "source", "line", "at", "words", "hint", "manifest", "files", "file", "overrides"),
    LANGUAGE_CASES + PACK_CASES,
)
def test_each_code_points_at_the_mistake(
    new_pack, code, source, line, at, words, hint, manifest, files, file, overrides
):
    root = new_pack(source, manifest=manifest, files=files)
    report = compile_at(root, overrides)
    found = only(report, code)
    expected_severity = Severity.WARNING if code.startswith("W") else Severity.ERROR
    assert found.severity is expected_severity
    if code.startswith("W"):
        assert report.ok, "a warning alone must not fail the pack"
    else:
        assert not report.ok
        assert report.compiled is None
    for word in words:
        assert word in found.message, (word, found.message)
    for word in hint:
        assert found.hint is not None and word in found.hint, (word, found.hint)
    if line is not None:
        assert found.span is not None
        assert Path(found.span.file) == root / file
        text = (root / file).read_text(encoding="utf-8")
        assert (found.span.line, found.span.column) == (line, column_of(text, line, at))


def test_every_emitted_code_has_a_case():
    """The tables above cover every code the library source can emit."""
    library = Path(__file__).resolve().parent.parent / "aigre_policy"
    pattern = re.compile(r"""(?:error|warning|err)\(\s*["']([EW]\d{3})["']""")
    emitted = set()
    for path in library.rglob("*.py"):
        emitted |= set(pattern.findall(path.read_text(encoding="utf-8")))
    covered = {p.values[0] for p in LANGUAGE_CASES + PACK_CASES}
    covered |= {"E500"}  # also covered by test_e500_* below
    covered |= {"E004"}  # test_hostile_packs.py::test_deep_nesting_is_a_diagnostic_not_a_crash
    covered |= {"E506"}  # test_log.py::test_unknown_sensitive_path_is_e506
    covered |= {"E701", "E702", "E703"}  # test_testing_runner.py::test_bad_test_file_gets_a_*
    # the MCP mapping (mcp.yaml, not read by the compiler): test_mcp_mapping.py (E520, E521,
    # E522), test_mcp_proxy.py::test_check_upstream_* (E522), fixtures/cases/diagnostics.yaml
    covered |= {"E520", "E521", "E522"}
    # the Rego target: test_rego_emit.py (W603, E604), test_rego_handwritten.py (E605-E608)
    covered |= {"W603", "E604", "E605", "E606", "E607", "E608"}
    # exemptions and composition: fixtures/cases/exemptions.yaml, tests/test_exemptions.py
    # (W533 and W534 are `check`'s, by the clock), tests/test_composition.py
    covered |= {"E530", "E531", "E532", "W533", "W534", "E535", "E536", "W537"}
    assert emitted, "no diagnostic codes found in the library source"
    assert emitted - covered == set(), f"codes without a test: {sorted(emitted - covered)}"


# --------------------------------------------------------------------- E500 variants


def test_e500_no_pack_directory(tmp_path):
    report = compile_at(tmp_path / "nope")
    (found,) = report.diagnostics
    assert found.code == "E500" and "no pack directory" in found.message
    assert str(tmp_path / "nope") in found.message
    assert not report.ok


def test_e500_directory_without_manifest(tmp_path):
    report = compile_at(tmp_path)
    (found,) = report.diagnostics
    assert found.code == "E500"
    assert "is not a pack: it has no pack.yaml" in found.message
    assert found.hint is not None and "pack.yaml and policies/" in found.hint


def test_e500_undecodable_policy_file(new_pack):
    root = new_pack({"a.aigre": "rule r { deny when true }"}, files={"policies/b.aigre": b"\xff"})
    report = compile_at(root)
    found = only(report, "E500")
    assert "cannot read" in found.message and "b.aigre" in found.message
    assert not report.ok


# ------------------------------------------------------------------------ near twins

TWINS = [
    ("E001", 'rule r { deny when action.environment == "production" and action.reversible }'),
    ("E002", 'rule r { deny when action.cost.estimated_usd > 1e300 and action.target != "\\n" }'),
    ("E002", "rule r { deny when action.cost.estimated_usd > 9223372036854775807 }"),
    ("E003", 'rule r { deny when true\n because "{{literal}} {action.kind} \\{x\\}" }'),
    ("E101", 'rule r { deny when action.kind == "rollback" }'),
    ("E102", 'rule r { deny when action.kind == "rollback" }'),
    ("E103", "envelope cost { max: 3 }\nrule r { deny when action.cost.estimated_usd > cost.max }"),
    ("E104", "rule r { deny when len(action.target) > 3 }"),
    ("E105", "rule r { deny when true }\nrule s { deny when false }"),
    ("E107", 'rule r { deny when any(s in ["a"]: any(t in ["b"]: s == t)) }'),
    (
        "E109",
        'rule r { title: "x"\n category: finops\n severity: high\n tags: ["a"]\n deny when true }',
    ),
    ("E111", 'rule r { require_approval by ["sre-oncall", "finops"] when true }'),
    ("E112", "usage n = count() over calendar_month\nusage m = count() over last 1h"),
    ("E201", "rule r { deny when context.now - action.requested_at > 5m }"),
    ("E202", 'rule r { deny when action.environment == "production" }'),
    ("E203", "rule r { deny when action.reversible }"),
    ("E204", "usage n = sum(action.cost.estimated_usd) over calendar_month"),
    ("E206", 'rule r { deny when (action.data.processed_in ?? "eu") == "us" }'),
    ("E301", 'rule r { deny when has action.rollback and action.rollback.plan != "" }'),
    ("E301", "rule r { deny when (context.error_budget_remaining ?? 1) < 0.1 }"),
    (
        "E301",
        "rule r { deny when has context.error_budget_remaining"
        " and context.error_budget_remaining < 0.1 }",
    ),
    (
        "E301",
        "rule r { deny when not has context.error_budget_remaining"
        " or context.error_budget_remaining < 0.1 }",
    ),
    (
        "E301",
        "rule r { warn when has context.error_budget_remaining\n"
        ' because "{context.error_budget_remaining}" }',
    ),
    ("E301", "rule r { deny when has action.rollback and not action.rollback.tested }"),
    ("E301", "rule r { deny when action.change.lines > 200 }"),
    ("W302", "rule r { deny when (context.error_budget_remaining ?? 1) < 0.5 }"),
    ("W303", "rule r { deny when has action.rollback }"),
    ("W114", 'rule r { deny when true }\ntest "t" { expect deny }'),
]


@pytest.mark.parametrize(
    ("code", "source"), TWINS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(TWINS)]
)
def test_near_twin_compiles_clean(new_pack, code, source):
    report = compile_at(new_pack(source))
    assert report.ok, [render(d, report.sources) for d in report.diagnostics]
    assert code not in {d.code for d in report.diagnostics}
    assert report.diagnostics == []


def test_has_guard_then_read_compiles_clean(new_pack):
    report = compile_at(
        new_pack('rule r { deny when has action.rollback and action.rollback.plan != "" }')
    )
    assert report.ok
    assert report.diagnostics == []


# ---------------------------------------------------------------- one run, all problems


def test_all_problems_of_a_pack_in_one_run_sorted(new_pack):
    root = new_pack(
        {
            "b.aigre": "rule s { deny when lenn(action.target) > 3 }\n",
            "a.aigre": (
                'rule r { deny when action.environment == "prodution" }\n'
                "\n"
                "rule q { deny when context.error_budget_remaining < 0.1 }\n"
            ),
        }
    )
    report = compile_at(root)
    located = [
        (d.code, Path(d.span.file).name, d.span.line, d.span.column) for d in report.diagnostics
    ]
    assert located == [
        ("E202", "a.aigre", 1, 42),
        ("E301", "a.aigre", 3, 20),
        ("E104", "b.aigre", 1, 20),
    ]


def test_syntax_error_in_one_file_does_not_hide_type_errors_in_another(new_pack):
    root = new_pack(
        {
            "a.aigre": 'rule r { deny when action.environment == "prodution" }\n',
            "b.aigre": "rule s { deny when }\n",
        }
    )
    report = compile_at(root)
    codes = [(d.code, Path(d.span.file).name) for d in report.diagnostics]
    assert codes == [("E202", "a.aigre"), ("E001", "b.aigre")]


def test_names_a_broken_file_may_declare_are_not_reported_as_unknown(new_pack):
    """With a file that does not parse, `cost` may be declared there: no E101 noise."""
    root = new_pack(
        {
            "a.aigre": "rule r { deny when action.cost.estimated_usd > cost.x }\n",
            "b.aigre": "envelope cost { x: 1 \n",
        }
    )
    report = compile_at(root)
    assert [d.code for d in report.diagnostics] == ["E001"]


def test_a_rule_with_a_type_error_is_not_an_unknown_rule_to_its_tests(new_pack):
    """The rule exists: its tests get no E108 on top of the rule's own error."""
    root = new_pack(
        'rule r { deny when context.actor.kind == "llm" }\n'
        'test "t" { action { kind: "deploy" } expect deny by r }\n'
    )
    report = compile_at(root)
    assert [d.code for d in report.diagnostics] == ["E301"]


def test_each_fault_is_reported_once(new_pack):
    root = new_pack('rule r { deny when actoin.kind == "x" and actoin.kind == "y" }')
    report = compile_at(root)
    assert [(d.code, d.span.column) for d in report.diagnostics] == [("E101", 20), ("E101", 43)]


# ------------------------------------------------------------------------- rendering


def test_render_shows_location_line_caret_and_hint(new_pack):
    root = new_pack('rule r { deny when action.environment == "prodution" }\n')
    report = compile_at(root)
    (found,) = report.diagnostics
    text = render(found, report.sources)
    file = root / POLICY_FILE
    assert text.split("\n") == [
        f"{file}:1:42: error[E202]: 'prodution' is never a value here: the schema allows "
        'string (one of "production", "staging", "development", "sandbox")',
        "  |",
        '1 | rule r { deny when action.environment == "prodution" }',
        "  | " + " " * 41 + "^" * len('"prodution"'),
        "  = hint: did you mean 'production'?",
    ]


def test_render_keeps_tabs_so_the_caret_lines_up(new_pack):
    root = new_pack('rule r {\n\tdeny when action.environment == "prodution" }\n')
    report = compile_at(root)
    (found,) = report.diagnostics
    assert (found.span.line, found.span.column) == (2, 34)
    lines = render(found, report.sources).split("\n")
    assert lines[3] == "  | \t" + " " * 32 + "^" * 11


def test_render_quotes_the_right_line_after_a_unicode_line_separator(new_pack):
    root = new_pack(
        'rule r { deny when action.target == "a\u2028b" }\n'
        'rule s { deny when action.environment == "prodution" }\n'
    )
    report = compile_at(root)
    (found,) = report.diagnostics
    assert (found.code, found.span.line, found.span.column) == ("E202", 2, 42)
    lines = render(found, report.sources).split("\n")
    assert lines[2] == '2 | rule s { deny when action.environment == "prodution" }'


@pytest.mark.parametrize("quoted", ['\\"rollback\\"', '\\"a\\\\b\\"'], ids=["quotes", "backslash"])
def test_interpolation_column_after_escaped_quotes(new_pack, quoted):
    source = f'rule r {{ deny when true\n because "{{action.kind == {quoted} and action.foo}}" }}'
    root = new_pack(source)
    found = only(compile_at(root), "E102")
    assert (found.span.line, found.span.column) == (2, column_of(source, 2, "action.foo"))
    assert found.span.end_column == column_of(source, 2, "action.foo") + len("action.foo")


def test_manifest_override_error_points_into_pack_yaml(new_pack):
    root = new_pack(SIMPLE, manifest={"envelopes": {"f": {"x": 1}}})
    found = only(compile_at(root), "E504")
    assert found.span is not None
    assert Path(found.span.file) == root / "pack.yaml"
    assert found.span.line == 5


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_override_is_e504_not_a_crash(new_pack, value):
    report = compile_at(new_pack(SIMPLE), {"e": {"x": value}})
    assert not report.ok
    assert only(report, "E504")


def test_non_finite_manifest_override_is_e504_not_a_crash(new_pack):
    manifest = MANIFEST_LINES + "envelopes: {e: {x: .inf}}\n"
    report = compile_at(new_pack(SIMPLE, manifest=manifest))
    assert not report.ok
    assert only(report, "E504")


# ------------------------------------------------------------------ golden check report

BROKEN_PACK = {
    "access.aigre": """\
        envelope limits {
          max_usd: 25
          window: 30m
        }

        rule prod-typo {
          title: "Production changes by agents"
          severity: hgh
          deny when action.environment == "prodution" and action.actor.kind == "llm"
          because "{action.kind} in {action.environment}"
        }

        rule budget-bare {
          escalate when context.error_budget_remaining < 0.1
        }
        """,
    "cost.aigre": """\
        rule spend {
          deny when action.cost.estimated_usd > limits.max_usd and action.target == 3
        }

        rule default-noise {
          warn when (action.kind ?? "scale") == "scale"
        }

        test "no expectation" {
          action { kind: "rollbak" }
        }
        """,
}


def test_golden_check_report(new_pack, monkeypatch, capsys, plain_console):
    """`aigre-policy check` on a pack with several mistakes, byte for byte."""
    root = new_pack({k: textwrap.dedent(v) for k, v in BROKEN_PACK.items()}, name="broken")
    monkeypatch.chdir(root.parent)
    code = main(["check", "broken"])
    out = capsys.readouterr().out
    assert code == 1
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(out, encoding="utf-8")
    assert GOLDEN.exists(), "run with UPDATE_GOLDEN=1 to create the golden file"
    assert out == GOLDEN.read_text(encoding="utf-8")
    # the golden holds what the report must show, so a regenerated golden stays honest
    for needle in (
        "error[E109]",
        "error[E202]",
        "error[E301]",
        "error[E201]",
        "warning[W302]",
        "warning[W114]",
        "failed broken:",
    ):
        assert needle in out
    first_locations = re.findall(r"^(broken/policies/\S+?):(\d+):(\d+):", out, re.M)
    assert first_locations == sorted(first_locations, key=lambda t: (t[0], int(t[1]), int(t[2]))), (
        "diagnostics are sorted by file, line, column"
    )


# ------------------------------------------------------------------ foundation fixes

CUSTOM_SCHEMA = {
    "type": "object",
    "required": ["action", "context"],
    "properties": {
        "action": {"type": "object", "properties": {"n": {"type": "number"}}},
        "context": {"type": "object"},
    },
}


def test_custom_schema_without_context_is_e503(new_pack):
    root = new_pack(
        'rule r { deny when action.k == "x" }',
        manifest={"input_schema": "schema.json"},
        files={"schema.json": SCHEMA_NO_CONTEXT},
    )
    found = only(compile_at(root), "E503")
    assert "`action` and `context`" in found.message


@pytest.mark.parametrize("keyword", [{"multipleOf": 2}, {"prefixItems": [{"type": "number"}]}])
def test_unsupported_schema_keyword_is_e503_not_a_crash(new_pack, keyword):
    number = {"type": "number", **keyword}
    action = {"type": "object", "required": ["n"], "properties": {"n": number}}
    schema = {**CUSTOM_SCHEMA, "properties": {**CUSTOM_SCHEMA["properties"], "action": action}}
    root = new_pack(
        "rule r { deny when action.n > 1 }",
        manifest={"input_schema": "schema.json"},
        files={"schema.json": schema},
    )
    report = compile_at(root)
    assert not report.ok
    found = only(report, "E503")
    assert next(iter(keyword)) in found.message and "not supported" in found.message
    assert "fastjsonschema" not in found.message


ENUM_POLICY = """
envelope a { kinds: ["rollback"], env: "production" }
rule r { deny when action.kind not in a.kinds and action.environment == a.env }
"""


def test_pack_yaml_override_outside_the_enum_is_e504(new_pack):
    root = new_pack(ENUM_POLICY, manifest={"envelopes": {"a": {"kinds": ["rollback", "rolback"]}}})
    found = only(compile_at(root), "E504")
    assert "never 'rolback'" in found.message and "rollback" in (found.hint or "")
    assert Path(found.span.file) == root / "pack.yaml"


def test_load_override_outside_the_enum_is_e504(new_pack):
    report = compile_at(new_pack(ENUM_POLICY), {"a": {"env": "prod"}})
    assert "never 'prod'" in only(report, "E504").message
    assert compile_at(new_pack(ENUM_POLICY), {"a": {"env": "staging"}}).ok


def test_w303_names_the_schema_default(new_pack):
    found = only(compile_at(new_pack("rule r { deny when has action.change.lines }")), "W303")
    assert "schema default" in found.message


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('rule r { deny when action.kind "x" }', "expected an operator such as `==`"),
        ("rule r { deny when }", "expected an expression"),
        ("envelope e { a: }", "expected a value: a number, duration, string"),
    ],
)
def test_syntax_errors_say_what_kind_of_thing_is_expected(new_pack, source, expected):
    found = only(compile_at(new_pack(source)), "E001")
    assert expected in found.message
    assert "`minus`" not in found.message and ", ..." not in found.message


def test_negative_durations_and_commas_in_envelopes(new_pack):
    source = """
    envelope e { back: -15m, ahead: 2h, }
    rule r { escalate when action.requested_at < context.now + e.back + e.ahead }
    """
    report = compile_at(new_pack(source))
    assert report.ok, [d.message for d in report.diagnostics]
    assert report.compiled.envelopes["e"] == {"back": -900, "ahead": 7200}


def test_eval_prints_compile_errors_on_stderr(new_pack, capsys):
    from aigre_policy.cli.main import main

    root = new_pack("rule r { deny when }")
    assert main(["eval", str(root), "--emit", "python"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "E001" in err and "does not compile" in err
