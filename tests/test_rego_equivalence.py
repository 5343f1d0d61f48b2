# ruff: noqa: E501 - policy source lines are as long as their messages
"""The rego engine (packs compiled to Rego, run with regopy) against the native evaluator.

Both judge the same inputs and must agree on the decision, the fired rules and
warnings with their messages and bindings, the groups and the default. Only
``comparisons`` are native evidence: the Rego records leave them empty.
Engines are built once per pack and shared (about 2 ms per Rego decision).
"""

from __future__ import annotations

import copy
import os
import time
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import comparable_verdict as comparable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigre_policy.pack import Pack, load_pack
from aigre_policy.rego.attach import rego_program
from aigre_policy.rego.engine import RegopyEngine
from aigre_policy.testing.strategies import collect_hints, documents

ROOT = Path(__file__).resolve().parent.parent
PACKS = sorted(p.parent for p in (ROOT / "policy_packs").glob("*/pack.yaml"))
BASELINE = ROOT / "policy_packs" / "aigre-baseline"
FIXTURES = sorted((ROOT / "fixtures" / "actions").glob("*.yaml"))
# generated inputs per pack, each judged by native, rego-cpp and regorus: CI's count fits
# about 2 minutes for the three packs on a shared 2-CPU box (docs/rego.md, agreement);
# AIGRE_REGO_EXAMPLES=10000 (or more) runs the full count locally
EXAMPLES = int(os.environ.get("AIGRE_REGO_EXAMPLES", "2500"))
DECISIONS = ("allow", "escalate", "require_approval", "deny")


@cache
def engines(path: Path) -> tuple[Pack, Pack]:
    return load_pack(path), load_pack(path, engine="rego")


@cache
def on_regorus(path: Path) -> Pack:
    return load_pack(path, engine="regorus")


def agree(path: Path, document: dict[str, Any], other: Pack | None = None) -> str:
    """Native and ``other`` (rego-cpp by default) judge ``document`` alike; the decision."""
    native, rego = engines(path)
    other = rego if other is None else other
    a = native.evaluate(document["action"], document["context"], document["usage"])
    b = other.evaluate(document["action"], document["context"], document["usage"])
    assert comparable(a) == comparable(b)
    assert b.pack == a.pack
    assert b.input_digest == a.input_digest
    assert b.decision_id != a.decision_id
    assert b.elapsed_us > 0
    return a.decision


def case(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    return {
        "action": data["action"],
        "context": data.get("context") or {},
        "usage": data.get("usage") or {},
    }


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_every_fixture_gets_the_same_verdict_on_both_engines(fixture):
    agree(BASELINE, case(fixture))


def test_the_rego_engine_reaches_every_decision_on_the_fixtures():
    _, rego = engines(BASELINE)
    decisions = {rego.evaluate(**{k: v for k, v in case(f).items()}).decision for f in FIXTURES}
    assert decisions == {"allow", "escalate", "require_approval", "deny"}


def short_numbers(value: Any) -> Any:
    """Floats as quarters under 10**9, integers under 10**12: sums stay exact and print in
    at most 15 digits. rego-cpp's arithmetic is not IEEE double arithmetic, and it prints
    numbers to 16 digits where Python may need 17 (docs/rego.md, known limits)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return round(max(-1e9, min(1e9, value)) * 4) / 4
    if isinstance(value, int):
        return max(-(10**12), min(10**12, value))
    if isinstance(value, dict):
        return {k: short_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [short_numbers(v) for v in value]
    return value


def strategy(path: Path):
    native, _ = engines(path)
    hints = collect_hints(native.program, native.envelopes)
    return documents(native.input_schema, hints)


# the agreement counts of the last run, by pack and engine (printed at the end of the run)
AGREED: Counter[tuple[str, str]] = Counter()


def generated_agreement(path: Path, examples: int) -> Counter[str]:
    """``examples`` generated inputs, the same on every run (CI judges a fixed sample),
    biased to the constants the pack compares with, each judged by native, rego-cpp and
    regorus. regorus gets the input as generated; rego-cpp numbers it holds exactly
    (``short_numbers``: it keeps 16 significant digits and rounds its arithmetic there),
    and so does regorus for a pack with hand-written Rego, which native evaluates with
    rego-cpp."""
    decisions: Counter[str] = Counter()
    regorus_pack = on_regorus(path)
    # the native engine evaluates hand-written modules with rego-cpp: its numbers there
    handwritten = any((path / "policies").glob("*.rego"))
    started = time.perf_counter()

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy(path))
    def check(document):
        exact = short_numbers(document) if handwritten else document
        decisions[agree(path, exact, regorus_pack)] += 1
        AGREED[(path.name, "regorus")] += 1
        agree(path, short_numbers(document))
        AGREED[(path.name, "rego")] += 1

    check()
    seconds = time.perf_counter() - started
    print(
        f"\n{path.name}: {sum(decisions.values())} generated inputs agree on both engines "
        f"in {seconds:.1f}s: {dict(decisions)}"
    )
    return decisions


def test_the_default_pack_agrees_over_generated_inputs():
    """Every decision must be among the verdicts, often enough to say the sample covers it."""
    decisions = generated_agreement(BASELINE, EXAMPLES)
    assert sum(decisions.values()) >= EXAMPLES
    assert {d: decisions[d] >= 10 for d in DECISIONS} == dict.fromkeys(DECISIONS, True), decisions


@pytest.mark.parametrize("path", [p for p in PACKS if p != BASELINE], ids=lambda p: p.name)
def test_every_other_pack_agrees_over_generated_inputs(path):
    assert sum(generated_agreement(path, EXAMPLES).values()) >= EXAMPLES


# ---------------------------------------------------------------- a pack using every construct

CONSTRUCTS = r"""
envelope limits {
  regulated: ["production", "staging"]
  exempt: ["rollback", "restart"]
  max_usd: 25
  max_age: 15m
  long: 90000
  half: 0.5s
  share: 0.25
  label: "ops"
  zone: "Australia/Sydney"
  holidays: ["2025-03-31", "2025-04-04"]
}

rule quantifiers-and-guards {
  category: risk
  severity: high
  deny when
    action.environment in limits.regulated
    and action.kind not in limits.exempt
    and (any(a in action.approvals ?? []: a.by == action.actor.id)
         or not all(s in action.blast_radius.services ?? []: starts_with(s, "pay")))
    and not (has action.justification and action.justification.signal == "incident")
  because "{action.kind} on {action.target} in {action.environment}: approvals {len(action.approvals ?? [])}, services {action.blast_radius.services ?? []}"
}

rule time-and-durations {
  category: reliability
  escalate to ["sre-oncall", "leads"] when
    context.now - action.requested_at > limits.max_age
    or hour(context.now) >= 22
    or weekday(context.now) in ["saturday", "sunday"]
  because "asked at {action.requested_at}, now {context.now} ({date(context.now)} {weekday(context.now)} {hour(context.now)}:{minute(context.now)}); limits {limits.max_age}, {limits.long}, {limits.half}, waited {context.now - action.requested_at}"
}

rule zones-and-holidays {
  category: reliability
  escalate to ["sre-oncall"] when
    weekday_in(context.now, limits.zone) == "friday" and hour_in(context.now, limits.zone) >= 16
    or date_in(context.now, "Europe/Berlin") in limits.holidays
  because "{weekday_in(context.now, limits.zone)} {hour_in(context.now, limits.zone)}:{minute_in(context.now, limits.zone)} on {date_in(context.now, limits.zone)}"
}

rule arithmetic-and-numbers {
  category: cost
  require_approval by ["finops", "leads"] when
    action.cost.estimated_usd * 2 + (action.cost.recurring_monthly_usd ?? 0) > limits.max_usd
    or action.blast_radius.users_share / 2 > limits.share
    or -action.cost.estimated_usd < -1000
  because "cost {action.cost.estimated_usd} x2 + {action.cost.recurring_monthly_usd ?? 0} over {limits.max_usd}; share {action.blast_radius.users_share} half {action.blast_radius.users_share / 2} ({limits.label}, {upper(limits.label)}, {true}, {limits.regulated})"
}

rule notes {
  category: risk
  warn when ends_with(action.target, "-db") or contains(action.target, "prod")
  because "{action.target} looks like a database"
}
"""


def test_a_pack_using_every_construct_agrees(new_pack):
    path = new_pack(CONSTRUCTS, name="constructs")
    assert rego_program(load_pack(path)).ok
    assert sum(generated_agreement(path, EXAMPLES).values()) >= EXAMPLES


def test_invalid_input_fails_closed_the_same_way(make_action, valid_context):
    native, rego = engines(BASELINE)
    bad = make_action(kind="teleport", cost={"estimated_usd": -1})
    a, b = native.evaluate(bad, valid_context), rego.evaluate(bad, valid_context)
    assert a.fail_closed and b.fail_closed
    assert comparable(a) == comparable(b)


# ---------------------------------------------------------------- validation inside Rego


@cache
def rego_validating() -> RegopyEngine:
    _, rego = engines(BASELINE)
    return RegopyEngine(rego.rego, validate_in_rego=True)


def mutations() -> st.SearchStrategy[tuple[dict[str, Any], list[Any], Any]]:
    """A fixture with one value replaced: most break the schema, some do not."""
    paths = [
        ["action", "kind"],
        ["action", "environment"],
        ["action", "actor", "trust"],
        ["action", "actor"],
        ["action", "cost", "estimated_usd"],
        ["action", "requested_at"],
        ["action", "approvals"],
        ["action", "blast_radius", "services"],
        ["action", "unknown_field"],
        ["context", "now"],
        ["usage", "spend_this_month_usd"],
        ["usage"],
    ]
    values = st.sampled_from(
        [None, -1, 1.5, 7, "x", "production", True, [], [1], {}, {"by": 1},
         "2025-02-30T10:00:00Z", "2025-03-12T10:00:00.123+02:00", "2025-03-12 10:00:00Z",
         "2024-02-29T23:59:59z"]
    )  # fmt: skip
    return st.tuples(st.sampled_from(FIXTURES), st.sampled_from(paths), values)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_rego_validation_agrees_with_the_native_validator(mutation):
    fixture, path, value = mutation
    document = copy.deepcopy(case(fixture))
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    native, _ = engines(BASELINE)
    verdict = native.evaluate(document["action"], document["context"], document["usage"])
    for root in ("context", "usage"):  # as Pack.evaluate reads an absent root
        document[root] = {} if document[root] is None else document[root]
    decision = rego_validating().decide(document)
    assert decision["fail_closed"] == verdict.fail_closed
    assert decision["decision"] == verdict.decision
    if verdict.fail_closed:
        assert {(e["path"], e["keyword"]) for e in decision["errors"]} == {
            (e["path"], e["keyword"]) for e in verdict.errors
        }
    else:
        assert [r["id"] for r in decision["fired"]] == verdict.rule_ids


def test_an_engine_fault_fails_closed_with_evidence(monkeypatch):
    _, rego = engines(BASELINE)
    engine = rego.evaluator.runner

    def broken(document):
        raise RuntimeError("interpreter lost")

    monkeypatch.setattr(engine, "decide", broken)
    verdict = rego.evaluate(**case(FIXTURES[0]))
    assert verdict.fail_closed
    assert verdict.decision == rego.fail_closed != "allow"
    assert verdict.errors == [
        {"kind": "engine", "path": "", "message": "RuntimeError: interpreter lost"}
    ]


# a subnormal double, and the least normal one (printed to 16 digits it reads back below)
@pytest.mark.parametrize("tiny", [5e-324, 2.2250738585072014e-308])
def test_numbers_rego_cpp_cannot_read_fail_closed_and_say_where(make_action, valid_context, tiny):
    usage = {
        "agent_actions_last_hour": 0,
        "spend_this_month_usd": 0,
        "restarts_of_target_last_hour": 0,
    }
    native, rego = engines(BASELINE)
    action = make_action(cost={"estimated_usd": tiny})
    assert not native.evaluate(action, valid_context, usage).fail_closed
    verdict = rego.evaluate(action, valid_context, usage)
    assert verdict.fail_closed and verdict.decision == "require_approval"
    assert f"{tiny!r} at action.cost.estimated_usd" in verdict.errors[0]["message"]
    readable = make_action(cost={"estimated_usd": 1e-307})  # the least it reads
    assert agree(BASELINE, {"action": readable, "context": valid_context, "usage": usage})
