# ruff: noqa: E501 - policy source lines are as long as their messages
"""Differential tests: the generated evaluator against the reference interpreter.

Every input is judged twice, by ``Pack.evaluate`` (the Python that codegen
emitted) and by ``aigre_policy.interpreter`` (the IR walked directly). They must
fire the same rules with the same messages and reach the same decision; when
the interpreter raises, the verdict must be fail-closed.
"""

from __future__ import annotations

import json
import textwrap
import typing
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigre_policy import interpreter, ir, load_pack, sandbox
from aigre_policy.codegen import emit_python
from aigre_policy.compiler import CompiledPack, compile_pack
from aigre_policy.diagnostics import Severity
from aigre_policy.models.action import (
    ActionKind,
    ActorKind,
    ChangeType,
    DataClassification,
    Environment,
    IncidentSeverity,
    Signal,
)
from aigre_policy.native import NativeEvaluator
from aigre_policy.pack import Pack
from aigre_policy.typecheck import FUNCTIONS
from aigre_policy.verdict import LATTICE
from aigre_policy.yamlio import read_document

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "policy_packs" / "aigre-baseline"
FIXTURES = sorted((ROOT / "fixtures" / "actions").glob("*.yaml"))
SETTINGS = settings(max_examples=300, deadline=None)

# A pack that uses every IR construct: each operator and function, any/all over
# nested fields, `??` and `has`, timestamps, durations, envelope lists, / and %.
POLICY = r"""
envelope limits {
  regulated_envs: ["production", "staging"]
  llm_kinds: ["rollback", "scale", "feature_flag", "throttle", "restart"]
  exempt_kinds: ["rollback", "restart"]
  max_action_usd: 25
  monthly_budget_usd: 100
  max_lines: 400
  max_files: 20
  max_age: 15m
  approval_max_age: 4h
  weights: [1, 2.5, 0]
  min_trust: 3
  prefixes: ["payments", "checkout"]
  quiet_days: ["saturday", "sunday"]
  cutoff_hour: 16
  label: "ops"
  zone: "Australia/Sydney"
  holidays: ["2025-03-31", "2025-04-04"]
}

usage spend_this_month_usd = sum(action.cost.estimated_usd) over calendar_month where decision != "deny"
usage n = count() over last 1h
usage delta = max(action.cost.estimated_usd) over last 1d

rule freeze {
  deny when
    action.kind not in limits.exempt_kinds
    and not (has action.justification and action.justification.signal == "incident")
    and any(f in context.change_freezes ?? []:
            f.starts_at <= context.now and context.now < f.ends_at
            and (len(f.environments ?? []) == 0 or action.environment in (f.environments ?? []))
            and (len(f.services ?? []) == 0
                 or action.target in (f.services ?? [])
                 or any(s in action.blast_radius.services ?? []: s in (f.services ?? []))))
  because "{action.kind} on {action.target} in {action.environment} inside a freeze at {context.now}; only {limits.exempt_kinds} run"
}

rule freezes-over {
  warn when len(context.change_freezes ?? []) > 0
    and all(f in context.change_freezes ?? []: f.ends_at <= context.now or f.starts_at > context.now)
  because "{len(context.change_freezes ?? [])} freezes, none running on {date(context.now)}"
}

rule budget {
  category: cost
  deny when usage.spend_this_month_usd + action.cost.estimated_usd > limits.monthly_budget_usd
  because "spend would reach {usage.spend_this_month_usd + action.cost.estimated_usd} of {limits.monthly_budget_usd} USD, {limits.monthly_budget_usd - usage.spend_this_month_usd} left"
}

rule costly {
  title: "Costly actions need finops"
  category: cost
  require_approval by ["finops"] when
    action.cost.estimated_usd >= limits.max_action_usd
    or action.cost.recurring_monthly_usd * 12 > limits.monthly_budget_usd
}

rule llm-remit {
  deny when action.actor.kind == "llm" and action.environment in limits.regulated_envs
    and action.kind not in limits.llm_kinds
  because "LLM agents may only {limits.llm_kinds}, not {action.kind}"
}

rule low-trust {
  deny when action.actor.kind != "human" and action.actor.trust < limits.min_trust
    and action.environment == "production"
  because "trust {action.actor.trust} of {action.actor}"
}

rule big-change {
  escalate to ["llm-judge", "sre-oncall"] when
    action.change.lines > limits.max_lines or (action.change.files ?? 0) >= limits.max_files
  because "{action.change.lines} lines in {action.change.files ?? 0} files"
}

rule stale {
  escalate when context.now - action.requested_at > limits.max_age
  because "{(context.now - action.requested_at) / 1m} minutes old, limit {limits.max_age / 60} ({limits.max_age})"
}

rule future-request {
  warn when action.requested_at > context.now + 5m or 30m + action.requested_at < context.now - 1h
  because "requested at {action.requested_at}, now {context.now}, {context.now - 1h}"
}

rule same-instant {
  warn when action.requested_at == context.now
    or action.requested_at != action.requested_at
    or any(a in action.approvals ?? []: a.at == action.requested_at or a.at >= context.now)
  because "requested at {action.requested_at} == {context.now}"
}

rule fresh-approvals {
  permit when len(action.approvals ?? []) >= 2
    and all(a in action.approvals ?? []:
            a.by != action.actor.id and context.now - a.at <= limits.approval_max_age
            and a.at >= context.now - 1d)
  because "{len(action.approvals ?? [])} approvals"
}

rule self-approval {
  deny when any(a in action.approvals ?? []:
                a.by == action.actor.id
                or (has action.actor.on_behalf_of and a.by == action.actor.on_behalf_of))
  because "{action.actor.id} (for {action.actor.on_behalf_of ?? \"nobody\"}) approved their own {action.kind}"
}

rule window {
  require_approval by ["sre-oncall"] when
    action.environment == "production"
    and (weekday(context.now) in limits.quiet_days
         or weekday(context.now) == "friday" and hour(context.now) >= limits.cutoff_hour)
  because "{weekday(context.now)} {hour(context.now)}:{minute(context.now)} on {date(context.now)}"
}

rule zoned {
  escalate when
    weekday_in(context.now, limits.zone) == "monday" and hour_in(context.now, limits.zone) < 9
    or date_in(context.now, "Europe/Berlin") in limits.holidays
  because "{weekday_in(context.now, limits.zone)} {hour_in(context.now, limits.zone)}:{minute_in(context.now, limits.zone)} on {date_in(context.now, limits.zone)}"
}

rule names {
  warn when starts_with(lower(action.target), "pay")
    or ends_with(action.target, "-api") and contains(upper(action.actor.id), "BOT")
    or any(p in limits.prefixes: starts_with(action.target, p) and len(p) <= len(action.target))
    or action.target in [action.actor.id, action.actor.on_behalf_of ?? "", limits.label]
  because "{upper(action.target)} / {lower(action.actor.id + \"@\" + limits.label)} / {len(action.target)}"
}

rule ratios {
  escalate when usage.spend_this_month_usd / usage.n > 10 and usage.n % 3 != 1
  because "{usage.spend_this_month_usd / usage.n} per action, {usage.n % 3}"
}

rule remainders {
  warn when action.change.lines % 7 == 3
    or usage.delta % 4 < 0
    or -usage.delta % 2.5 > 1
    or action.cost.estimated_usd % 1 >= 0.5
  because "{action.change.lines % 7} {usage.delta % 4} {-usage.delta % 2.5} {action.cost.estimated_usd % 1} {usage.delta / 4}"
}

rule error-budget {
  warn when has context.error_budget_remaining and context.error_budget_remaining < 0.1
    and has action.rollback and not action.rollback.tested
  because "{context.error_budget_remaining * 100}% budget left, rollback {action.rollback.plan}"
}

rule durations {
  escalate when 1h + 30m - 15m == 75m and 2 * 30m == 30m * 2 and 1h / 2 == 30m
    and (context.now - 1h) - action.requested_at + 30m >= -(2 * limits.max_age)
    and -(context.now - action.requested_at) <= limits.max_age - 10m
    and (action.rollback.estimated_minutes ?? 0) * 1m < limits.max_age * 2
  because "{(context.now - action.requested_at) / 1h}h, {limits.max_age * 2 - 1m}, {context.now - action.requested_at}"
}

rule incidents {
  escalate to ["incident-commander"] when
    any(i in context.incidents_open ?? []:
        i.severity in ["sev1", "sev2"]
        and (action.target in (i.services ?? []) or len(i.services ?? []) == 0))
  because "{len(context.incidents_open ?? [])} incidents open; {action.justification.ref ?? action.id}"
}

rule weighted {
  warn when sum(limits.weights) * action.blast_radius.users_share
            + sum([action.cost.estimated_usd, action.cost.recurring_monthly_usd]) > 30
    or sum([]) != 0
  because "weighted {sum(limits.weights) * action.blast_radius.users_share}, {action.cost}"
}

rule personal-data {
  deny when has action.data and action.data.personal_data
    and "eu" in (action.data.subject_regions ?? [])
    and (action.data.processed_in ?? "eu") != "eu"
    and action.data.classification in ["confidential", "restricted"]
  because "{action.data.records} records of {action.data.classification} data processed in {action.data.processed_in ?? \"?\"} ({action.data.stored_in ?? []})"
}

rule bulk-data {
  require_approval by ["dpo"] when (action.data.records ?? 0) > 1000000
    or (action.data.public_access ?? false)
    or (action.blast_radius.services ?? []) == ["checkout"]
    or (action.blast_radius.regions ?? []) != [] and len(action.blast_radius.regions ?? []) < 2
}

rule instants {
  warn when action.requested_at in [context.now, context.now - 1h]
    or any(a in action.approvals ?? []: a.at not in [action.requested_at, context.now])
    or (action.rollback.tested ?? true) != (has action.rollback.tested)
    or (action.data.records ?? 5) == 5
  because "{action.requested_at} {action.rollback.tested ?? true} {action.data.records ?? 5}"
}

rule negations {
  warn when not action.reversible and -action.cost.estimated_usd < -1
    or not action.change.architectural and action.change.type == "infra"
    or not not action.reversible and action.blast_radius.users_share >= 0.5
  because "{action.reversible} {-action.cost.estimated_usd} {action.blast_radius.users_share}"
}

envelope keyed { cap: { default: 25, by_environment: { staging: 100, production: 2.5 } } }

rule keyed-cap {
  warn when action.cost.estimated_usd > lookup(keyed.cap, action.environment)
  because "over {lookup(keyed.cap, action.environment)}"
}
"""

ARITH_KINDS = {
    "num+num",
    "num-num",
    "num*num",
    "num/num",
    "num%num",
    "str+str",
    "time-time",
    "time+dur",
    "dur+time",
    "time-dur",
    "dur+dur",
    "dur-dur",
    "num*dur",
    "dur*num",
    "dur/num",
    "dur/dur",
}


def make_pack(root: Path, policy: str, *, default: str = "allow") -> Pack:
    (root / "policies").mkdir(parents=True, exist_ok=True)
    manifest = f"name: interp\nversion: 1.0.0\ndefault: {default}\nfail_closed: deny\n"
    (root / "pack.yaml").write_text(manifest)
    (root / "policies" / "main.aigre").write_text(textwrap.dedent(policy))
    return load_pack(root)


@pytest.fixture(scope="module")
def every_construct(tmp_path_factory: pytest.TempPathFactory) -> Pack:
    return make_pack(tmp_path_factory.mktemp("every-construct"), POLICY, default="deny")


@pytest.fixture(scope="module")
def baseline() -> Pack:
    if not (BASELINE / "pack.yaml").is_file():
        pytest.skip("policy_packs/aigre-baseline does not exist yet")
    report = compile_pack(BASELINE)
    if not report.ok:
        errors = [d for d in report.diagnostics if d.severity is Severity.ERROR]
        first = errors[0] if errors else "no compiled pack"
        pytest.skip(f"policy_packs/aigre-baseline does not compile yet: {first}")
    return load_pack(BASELINE)


# ------------------------------------------------------------------ the check


def decide(pack: Pack, indices: list[int]) -> str:
    """The decision the fired rules imply: the lattice, then the pack's default."""
    verdicts = {pack.rules[i].verdict for i in indices}
    worst = max((v for v in verdicts if v in LATTICE), key=LATTICE.__getitem__, default="allow")
    if worst == "allow" and pack.default == "deny" and "permit" not in verdicts:
        return "deny"
    return worst


def assert_agree(pack: Pack, action: Any, context: Any, usage: Any) -> None:
    """The generated evaluator and the interpreter fire the same rules with the same messages."""
    args = (pack.envelopes, action, context, usage)
    if not pack.validator.is_valid({"action": action, "context": context, "usage": usage}):
        # past the schema's bounds (usage values beyond ±1e12): refused before any rule runs
        verdict = pack.evaluate(action, context, usage)
        assert verdict.fail_closed and verdict.decision == pack.fail_closed
        assert {e["kind"] for e in verdict.errors} == {"input"}, verdict.errors
        return
    try:
        indices = interpreter.fired(pack.program, *args)
        expected = [(pack.rules[i].id, interpreter.message(pack.rules[i], *args)) for i in indices]
    except Exception as exc:
        verdict = pack.evaluate(action, context, usage)
        assert verdict.fail_closed, f"the interpreter raised {exc!r}; generated code gave {verdict}"
        assert verdict.decision == pack.fail_closed
        assert [e["kind"] for e in verdict.errors] == ["engine"]
        return
    verdict = pack.evaluate(action, context, usage)
    assert not verdict.fail_closed, verdict.errors
    order = {rule.id: rule.index for rule in pack.rules}
    records = sorted([*verdict.fired, *verdict.warnings], key=lambda r: order[r["id"]])
    assert [(r["id"], r["message"]) for r in records] == expected
    assert verdict.decision == decide(pack, indices)


# ------------------------------------------------------------------ inputs


def constants(program: ir.Program) -> tuple[list[float], list[str]]:
    """The numbers and strings a pack compares against: literals and envelope values."""
    numbers: set[float] = set()
    strings: set[str] = set()

    def add(value: Any) -> None:
        if isinstance(value, list | tuple):
            for item in value:
                add(item)
        elif isinstance(value, str):
            strings.add(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            numbers.add(value)

    for rule in program.rules:
        roots = [rule.condition, *(p for p in rule.message if not isinstance(p, str))]
        for root in roots:
            for node in ir.walk(root):
                if isinstance(node, ir.Const):
                    add(node.value)
    for values in program.envelopes.values():
        add(list(values.values()))
    return sorted(numbers), sorted(strings)


SERVICES = ["checkout", "payments-api", "ledger"]
PEOPLE = ["agent-7", "deploy-bot", "marta"]
REGIONS = ["eu", "us", "eu-west-1", "us-east-1"]
ZONES = [
    UTC,
    timezone(timedelta(hours=2)),
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=5, minutes=30)),
]
ANCHOR = datetime(2025, 3, 28, 16, 0, tzinfo=UTC)  # a Friday, on the hour


class Stamp(NamedTuple):
    """A timestamp ``offset`` seconds from ``now``, to be written in ``zone``."""

    offset: int
    zone: timezone
    micro: int
    zulu: str  # "", "Z" or "z": RFC 3339 accepts either case

    def render(self, now: datetime) -> str:
        moment = now + timedelta(seconds=self.offset, microseconds=self.micro)
        text = moment.astimezone(self.zone).isoformat()
        return text.replace("+00:00", self.zulu) if self.zulu else text


def resolve(value: Any, now: datetime) -> Any:
    """``value`` with every ``Stamp`` written out relative to ``now``."""
    if isinstance(value, Stamp):
        return value.render(now)
    if isinstance(value, dict):
        return {k: resolve(v, now) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(resolve(v, now) for v in value)
    return value


_BUILT: dict[int, st.SearchStrategy[tuple[dict, dict, dict]]] = {}


def documents(program: ir.Program) -> st.SearchStrategy[tuple[dict, dict, dict]]:
    """Valid (action, context, usage) triples, biased toward the pack's constants."""
    if id(program) not in _BUILT:
        _BUILT[id(program)] = _documents(program)
    return _BUILT[id(program)]


def _documents(program: ir.Program) -> st.SearchStrategy[tuple[dict, dict, dict]]:
    numbers, strings = constants(program)

    def near(lo: float, hi: float, integer: bool = False) -> st.SearchStrategy[Any]:
        steps = (0, 1, -1) if integer else (0, 1, -1, 0.01, -0.01)
        close = [c + d for c in numbers for d in steps if lo <= c + d <= hi]
        if integer:
            close = [int(c) for c in close if c == int(c)]
            wide: st.SearchStrategy[Any] = st.integers(int(lo), int(hi))
        else:  # no subnormals: a quotient past the float range is a separate case, below
            wide = st.floats(lo, hi).filter(lambda x: x == 0 or abs(x) >= 1e-9)
        return st.one_of(st.sampled_from(close), wide) if close else wide

    def enum(values: type[StrEnum]) -> st.SearchStrategy[str]:
        every = [v.value for v in values]
        used = [v for v in every if v in strings]
        return st.sampled_from(used) | st.sampled_from(every) if used else st.sampled_from(every)

    def stamps(offsets: st.SearchStrategy[int]) -> st.SearchStrategy[Stamp]:
        micros = st.sampled_from([0, 0, 0, 1, 500000])
        zulu = st.sampled_from(["", "Z", "z"])
        return st.builds(Stamp, offsets, st.sampled_from(ZONES), micros, zulu)

    words = st.sampled_from(sorted(strings)) | st.text("abcAB-@*ß", max_size=5)
    word = words.filter(bool)
    service = st.sampled_from(SERVICES) | word
    services = st.lists(service, max_size=3)
    person = st.sampled_from(PEOPLE) | word
    region = st.sampled_from(REGIONS) | words
    regions = st.lists(region, max_size=3)
    money = near(0, 1e4)
    count = near(0, 10**6, integer=True)
    durations = {s * c + d for c in numbers if abs(c) >= 60 for s in (1, -1) for d in (0, 1, -1)}
    later = st.sampled_from(sorted(durations | {0, 1, -1})) | st.integers(-30 * 86400, 30 * 86400)
    earlier = later.map(lambda s: -s)
    actor = st.fixed_dictionaries(
        {"kind": enum(ActorKind), "id": person, "trust": st.integers(0, 5)},
        optional={"model": words, "on_behalf_of": person},
    )
    change = st.fixed_dictionaries(
        {"type": enum(ChangeType)},
        optional={"lines": count, "files": count, "architectural": st.booleans(), "summary": words},
    )
    blast_radius = st.fixed_dictionaries(
        {"users_share": st.sampled_from([0, 0.5, 1]) | st.floats(0, 1)},
        optional={"services": services, "regions": regions},
    )
    rollback = st.fixed_dictionaries(
        {"plan": word},
        optional={
            "tested": st.booleans(),
            "automatic": st.booleans(),
            "estimated_minutes": near(0, 1e3),
        },
    )
    data = st.fixed_dictionaries(
        {"classification": enum(DataClassification)},
        optional={
            "personal_data": st.booleans(),
            "subject_regions": regions,
            "stored_in": regions,
            "processed_in": region,
            "records": count,
            "public_access": st.booleans(),
        },
    )
    action = st.fixed_dictionaries(
        {
            "id": word,
            "kind": enum(ActionKind),
            "target": service,
            "environment": enum(Environment),
            "actor": actor,
            "change": change,
            "reversible": st.booleans(),
            "blast_radius": blast_radius,
            "cost": st.fixed_dictionaries(
                {"estimated_usd": money}, optional={"recurring_monthly_usd": money}
            ),
            "requested_at": stamps(earlier),
        },
        optional={
            "rollback": rollback,
            "data": data,
            "approvals": st.lists(
                st.fixed_dictionaries({"by": person, "group": word, "at": stamps(earlier)}),
                max_size=3,
            ),
            "justification": st.fixed_dictionaries(
                {"signal": enum(Signal)}, optional={"ref": words, "summary": words}
            ),
        },
    )
    freeze = st.fixed_dictionaries(
        {"name": words, "starts_at": stamps(earlier), "ends_at": stamps(later)},
        optional={"services": services, "environments": st.lists(enum(Environment), max_size=2)},
    )
    incident = st.fixed_dictionaries(
        {"id": words, "severity": enum(IncidentSeverity)}, optional={"services": services}
    )
    context = st.fixed_dictionaries(
        {"now": stamps(st.just(0))},
        optional={
            "change_freezes": st.lists(freeze, max_size=3),
            "error_budget_remaining": st.sampled_from([0, 0.1, 1]) | st.floats(0, 1),
            "incidents_open": st.lists(incident, max_size=2),
        },
    )
    # past 2**53, overflowing quotients and products: exact integers, fail-closed overflow
    extreme = st.sampled_from([2**53 + 1, -(2**61) - 3, 1e-303, -1e-300, 1e308, -1.5e308])
    number = near(-1e6, 1e6) | near(0, 10**6, integer=True) | extreme
    usage = st.fixed_dictionaries({u.name: number for u in program.usages})
    now = st.integers(-8 * 86400, 8 * 86400).map(lambda s: ANCHOR + timedelta(seconds=s))
    return st.builds(lambda *parts: resolve(parts[:3], parts[3]), action, context, usage, now)


# ------------------------------------------------------------------ tests


def test_the_pack_uses_every_construct(every_construct: Pack) -> None:
    nodes = [
        node
        for rule in every_construct.rules
        for root in (rule.condition, *(p for p in rule.message if not isinstance(p, str)))
        for node in ir.walk(root)
    ]

    def of(kind: type) -> list[Any]:
        return [node for node in nodes if isinstance(node, kind)]

    assert {type(node) for node in nodes} == set(typing.get_args(ir.Node))
    assert {(c.op, c.kind) for c in of(ir.Compare)} >= {
        (op, "value") for op in ["==", "!=", "<", "<=", ">", ">="]
    }
    assert {c.op for c in of(ir.Compare) if c.kind == "time"} == {"==", "!=", "<", "<=", ">", ">="}
    assert {m.negated for m in of(ir.Member)} == {True, False}
    assert {a.kind for a in of(ir.Arith)} == ARITH_KINDS
    assert {b.op for b in of(ir.BoolOp)} == {"and", "or"}
    assert {q.kind for q in of(ir.Quantifier)} == {"any", "all"}
    assert {c.function for c in of(ir.Call)} == set(interpreter.FUNCTIONS)
    assert set(interpreter.FUNCTIONS) == {*FUNCTIONS, "duration_text", "lookup"}
    paths = of(ir.Path)
    assert any(p.local for p in paths) and any(p.optional for p in paths)
    assert any(p.guarded for p in paths) and any(p.defaults for p in paths)
    assert {r.verdict for r in every_construct.rules} == {
        "deny",
        "require_approval",
        "escalate",
        "warn",
        "permit",
    }
    assert any(
        isinstance(q.body, ir.BoolOp) and any(isinstance(n, ir.Quantifier) for n in ir.walk(q.body))
        for q in of(ir.Quantifier)
    )


@SETTINGS
@given(data=st.data())
def test_generated_code_agrees_with_the_interpreter(
    every_construct: Pack, data: st.DataObject
) -> None:
    action, context, usage = data.draw(documents(every_construct.program))
    assert_agree(every_construct, action, context, usage)
    assert_same_records(every_construct, eager_twin(every_construct), action, context, usage)


@SETTINGS
@given(data=st.data())
def test_baseline_agrees_with_the_interpreter_on_generated_inputs(
    baseline: Pack, data: st.DataObject
) -> None:
    action, context, usage = data.draw(documents(baseline.program))
    assert_agree(baseline, action, context, usage)
    assert_same_records(baseline, eager_twin(baseline), action, context, usage)


_TWINS: dict[int, Pack] = {}


def eager_twin(pack: Pack) -> Pack:
    """``pack`` with every rule that holds explained at once: nothing deferred."""
    if id(pack) not in _TWINS:
        python = emit_python(pack.program, "eager", defer=False)
        assert not python.deferred and "append((" not in python.source
        bindings = {
            short: pack.envelopes[dotted.split(".", 1)[0]][dotted.split(".", 1)[1]]
            for dotted, short in python.envelope_names.items()
        }
        namespace = sandbox.load(python.source, "<eager>", bindings)
        twin = NativeEvaluator(pack.checked, python, namespace)
        _TWINS[id(pack)] = Pack(CompiledPack(pack.checked, twin), [])
    return _TWINS[id(pack)]


def assert_same_records(pack: Pack, eager: Pack, action: Any, context: Any, usage: Any) -> None:
    """Deferred records render exactly what explaining at once records, evidence and all."""
    deferred, now = pack.evaluate(action, context, usage), eager.evaluate(action, context, usage)
    assert deferred.decision == now.decision and deferred.errors == now.errors
    assert deferred.fired == now.fired and deferred.warnings == now.warnings


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_baseline_agrees_with_the_interpreter_on_fixtures(baseline: Pack, path: Path) -> None:
    doc, problems = read_document(path)
    assert doc is not None, problems
    case = doc.data
    assert_agree(baseline, case["action"], case.get("context") or {}, case.get("usage") or {})


ACTION = {
    "id": "act-1",
    "kind": "deploy",
    "target": "payments-api",
    "environment": "production",
    "actor": {"kind": "llm", "id": "agent-7", "trust": 2},
    "change": {"type": "code", "lines": 401},
    "reversible": False,
    "blast_radius": {"users_share": 0.5, "services": ["checkout"]},
    "cost": {"estimated_usd": 25.5},
    "requested_at": "2025-03-28T17:44:00+02:00",
}
FREEZE = {"name": "q", "starts_at": "2025-03-28T18:00:00+02:00", "ends_at": "2025-03-29T00:00:00Z"}
CONTEXT = {"now": "2025-03-28T16:00:00Z", "change_freezes": [FREEZE]}
USAGE = {"spend_this_month_usd": 90, "n": 3, "delta": -7}
DATA = {
    "classification": "restricted",
    "personal_data": True,
    "subject_regions": ["eu"],
    "processed_in": "us-east-1",
}
APPROVALS = [
    {"by": "marta", "group": "sre-oncall", "at": "2025-03-28T15:00:00Z"},
    {"by": "agent-7", "group": "sre-oncall", "at": "2025-03-28T17:30:00+02:00"},
]
INCIDENT = {"id": "INC-1", "severity": "sev1", "services": ["payments-api"]}


@pytest.mark.parametrize(
    ("action", "context", "fires"),
    [
        (
            ACTION,
            CONTEXT,
            {"freeze", "budget", "costly", "llm-remit", "low-trust", "big-change", "stale"}
            | {"window", "names", "ratios", "remainders"},
        ),
        (
            {**ACTION, "data": DATA, "approvals": APPROVALS, "rollback": {"plan": "undo"}},
            {"now": "2025-03-28T16:00:00Z", "error_budget_remaining": 0.05,
             "incidents_open": [INCIDENT]},
            {"personal-data", "self-approval", "error-budget", "incidents"},
        ),
    ],
)  # fmt: skip
def test_hand_written_cases_fire_what_they_should(
    every_construct: Pack, action: dict, context: dict, fires: set[str]
) -> None:
    indices = interpreter.fired(
        every_construct.program, every_construct.envelopes, action, context, USAGE
    )
    assert fires <= {every_construct.rules[i].id for i in indices}
    assert_agree(every_construct, action, context, USAGE)


def test_the_baseline_defers_its_plain_rules(baseline: Pack) -> None:
    python = baseline.evaluator.python
    recording = {
        r.index
        for r in baseline.rules
        if any(
            isinstance(n, ir.Quantifier) or (isinstance(n, ir.BoolOp) and n.op == "or")
            for n in ir.walk(r.condition)
        )
    }
    assert recording and python.deferred and not recording & python.deferred
    assert f"fired.append(({min(python.deferred)}, " in python.source


def test_a_message_that_can_fail_is_explained_when_the_rule_holds(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path,
        """
        rule per_file {
          deny when action.change.lines > 10
          because "{action.change.lines / action.change.files} lines per file"
        }
        """,
    )
    assert not pack.evaluator.python.deferred  # explained in `evaluate`, not on first read
    action = {**ACTION, "change": {"type": "config", "lines": 50, "files": 0}}
    verdict = pack.evaluate(action, NOW)
    assert verdict.fail_closed and "ZeroDivisionError" in verdict.errors[0]["message"]
    action["change"]["files"] = 5
    assert pack.evaluate(action, NOW).fired[0]["message"] == "10 lines per file"


def test_division_by_zero_fails_closed_on_both_sides(every_construct: Pack) -> None:
    usage = {**USAGE, "n": 0}
    with pytest.raises(interpreter.RuleFault) as caught:
        interpreter.fired(
            every_construct.program, every_construct.envelopes, ACTION, CONTEXT, usage
        )
    assert isinstance(caught.value.cause, ZeroDivisionError)
    assert_agree(every_construct, ACTION, CONTEXT, usage)
    assert every_construct.evaluate(ACTION, CONTEXT, usage).fail_closed


@pytest.mark.parametrize(
    ("op", "kind", "a", "b", "result"),
    [
        ("/", "num/num", 7, 2, 3.5),
        ("/", "num/num", 6, 3, 2),
        ("/", "dur/dur", 5400, 3600, 1.5),
        ("%", "num%num", -7, 3, -1),
        ("%", "num%num", 7, -3, 1),
        ("%", "num%num", -7.5, 2, -1.5),
        ("-", "time-time", "2025-01-01T01:00:00+01:00", "2025-01-01T00:00:00Z", 0.0),
        ("+", "time+dur", "1970-01-01T00:00:00Z", 60, 60.0),
        ("+", "str+str", "a", "b", "ab"),
    ],
)
def test_interpreter_arithmetic(op: str, kind: str, a: Any, b: Any, result: Any) -> None:
    value = interpreter.arithmetic(op, kind, a, b)
    assert value == result and type(value) is type(result)


# ------------------------------------------------------------------ fixed disagreements
# Each is a minimal input on which the generated code and the interpreter once differed.

NOW = {"now": "2025-03-28T16:00:00Z"}


def test_schema_defaults_after_an_optional_step(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path,
        """
        usage n = count() over last 1h
        rule tested-or-true { warn when action.rollback.tested ?? true }
        rule has-tested { warn when has action.rollback.tested }
        rule records-or-five { warn when (action.data.records ?? 5) == 5 }
        """,
    )
    action = {**ACTION, "rollback": {"plan": "undo"}, "data": {"classification": "public"}}
    assert_agree(pack, action, NOW, {"n": 1})
    # present parent, absent child: the schema default (false, 0), not the fallback
    assert [w["id"] for w in pack.evaluate(action, NOW, {"n": 1}).warnings] == ["has-tested"]
    # absent parent: the fallback
    bare = pack.evaluate(ACTION, NOW, {"n": 1}).warnings
    assert [w["id"] for w in bare] == ["tested-or-true", "records-or-five"]


@pytest.mark.parametrize(
    ("a", "b"),
    [(1e6, 1e-303), (1e308, 0.5), (-1e308, 1e-10)],
)
def test_division_overflow_fails_closed_on_both_sides(tmp_path: Path, a: float, b: float) -> None:
    pack = make_pack(
        tmp_path,
        """
        usage a = count() over last 1h
        usage b = count() over last 1d
        rule ratio { warn when usage.a / usage.b > 1 }
        """,
    )
    usage = {"a": a, "b": b}
    with pytest.raises(interpreter.RuleFault, match="not a finite number") as caught:
        interpreter.fired(pack.program, pack.envelopes, ACTION, NOW, usage)
    assert isinstance(caught.value.cause, ArithmeticError)
    assert_agree(pack, ACTION, NOW, usage)
    assert pack.evaluate(ACTION, NOW, usage).decision == "deny"


@pytest.mark.parametrize("op", ["*", "+", "-"])
def test_overflow_of_every_operator_fails_closed(tmp_path: Path, op: str) -> None:
    # usage values are bounded (±1e12) by the schema: the overflow comes from the arithmetic
    condition = {
        "*": "usage.a * 1e300 > 0",
        "+": "usage.a * 1e296 + usage.a * 1e296 > 0",
        "-": "0 - usage.a * 1e296 - usage.a * 1e296 > 0",
    }[op]
    pack = make_pack(
        tmp_path,
        f"""
        usage a = count() over last 1h
        rule big {{ deny when {condition} }}
        """,
    )
    usage = {"a": 1e12}
    assert_agree(pack, ACTION, NOW, usage)
    verdict = pack.evaluate(ACTION, NOW, usage)
    assert verdict.fail_closed and "not a finite number" in verdict.errors[0]["message"]


def test_remainder_of_large_integers_is_exact(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path,
        """
        usage n = count() over last 1h
        rule odd {
          warn when (usage.n * 16384 + 1) % 2 == 1
            because "{(usage.n * 16384 + 1) % 2} {(usage.n * 16384 + 1) % -7}"
        }
        """,
    )
    usage = {"n": 2**39}  # n * 16384 + 1 is 2**53 + 1: past what a double holds exactly
    assert_agree(pack, ACTION, NOW, usage)
    assert pack.evaluate(ACTION, NOW, usage).warnings[0]["message"] == "1 5"


def test_remainder_by_zero_is_the_same_error_on_both_sides(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path,
        """
        usage n = count() over last 1h
        rule odd { warn when 7 % usage.n == 1 }
        """,
    )
    with pytest.raises(interpreter.RuleFault, match="remainder by zero") as caught:
        interpreter.fired(pack.program, pack.envelopes, ACTION, NOW, {"n": 0})
    assert isinstance(caught.value.cause, ZeroDivisionError)
    verdict = pack.evaluate(ACTION, NOW, {"n": 0})
    assert verdict.errors[0]["message"] == (
        "rule odd (policies/main.aigre:3:6) failed: ZeroDivisionError: remainder by zero, "
        "in policies/main.aigre:3:22"
    )


@pytest.mark.parametrize("now", ["2025-03-28T16:00:00z", "2025-03-28t16:00:00Z"])
def test_lower_case_rfc3339_letters_are_timestamps(every_construct: Pack, now: str) -> None:
    context = {**CONTEXT, "now": now}
    assert not every_construct.evaluate(ACTION, context, USAGE).fail_closed
    assert_agree(every_construct, ACTION, context, USAGE)


def test_membership_of_timestamps_compares_instants(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path,
        """
        rule same { warn when action.requested_at in [context.now] }
        rule other { warn when action.requested_at not in [context.now] }
        """,
    )
    action = {**ACTION, "requested_at": "2025-03-28T18:00:00+02:00"}  # the same instant
    verdict = pack.evaluate(action, NOW)
    assert [w["id"] for w in verdict.warnings] == ["same"]
    assert verdict.warnings[0]["comparisons"][0]["result"] is True
    assert_agree(pack, action, NOW, {})


def test_bindings_show_schema_defaults(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path,
        """
        rule small { warn when action.change.lines < 10 and not (action.rollback.tested ?? true) }
        """,
    )
    change = {"type": "config"}  # `lines` absent: reads as its default, 0; `tested` as false
    verdict = pack.evaluate({**ACTION, "change": change, "rollback": {"plan": "p"}}, NOW)
    assert verdict.warnings[0]["bindings"] == {
        "action.change.lines": 0,
        "action.rollback.tested": False,
    }


# ------------------------------------------------------------------ indexed dispatch

# Conjuncts for generated packs: key tests on a few shared fields (so indexes form, with few
# values and with many), tests an index cannot use, and one that raises on `files == 0`.
KEY_TESTS = st.one_of(
    st.sampled_from(["deploy", "scale", "rollback", "dns_change"]).map(
        lambda k: f'action.kind == "{k}"'
    ),
    st.sampled_from(["production", "staging", "development"]).map(
        lambda e: f'action.environment == "{e}"'
    ),
    st.just('action.environment in ["production", "staging"]'),
    st.integers(0, 7).map(lambda i: f'action.target == "svc-{i}"'),
    st.integers(0, 7).map(lambda i: f'action.target == "svc-{i}"'),
    st.integers(0, 7).map(lambda i: f'"svc-{i}" == action.target'),
    st.sampled_from(["llm", "human"]).map(lambda k: f'action.actor.kind == "{k}"'),
)
OTHER_TESTS = st.sampled_from(
    [
        "action.cost.estimated_usd > 50",
        "not action.reversible",
        "action.change.lines > 300",
        'action.kind != "scale"',
        "has action.rollback",
        'action.actor.kind == "llm" or action.environment == "staging"',
        "action.cost.estimated_usd / action.change.files > 1",  # files 0: division by zero
    ]
)
RULES = st.lists(
    st.tuples(
        st.sampled_from(["deny", 'require_approval by ["sre"]', 'escalate to ["x"]', "warn"]),
        st.lists(st.one_of(KEY_TESTS, KEY_TESTS, OTHER_TESTS), min_size=1, max_size=4),
    ),
    min_size=1,
    max_size=30,
)
# Packs of many per-service rules: the index on action.target gets a table of when_N.
PER_SERVICE_RULES = st.lists(
    st.tuples(
        st.sampled_from(["deny", "warn"]),
        st.tuples(
            st.integers(0, 7).map(lambda i: f'action.target == "svc-{i}"'),
            *[st.one_of(KEY_TESTS, OTHER_TESTS)] * 2,
        ).map(list),
    ),
    min_size=8,
    max_size=30,
)
GENERATED_ACTIONS = st.fixed_dictionaries(
    {
        "id": st.just("act-1"),
        "kind": st.sampled_from(["deploy", "scale", "rollback", "dns_change", "restart"]),
        "target": st.sampled_from([f"svc-{i}" for i in range(9)]),
        "environment": st.sampled_from(["production", "staging", "development"]),
        "actor": st.fixed_dictionaries(
            {"kind": st.sampled_from(["llm", "human"]), "id": st.just("a"), "trust": st.just(3)}
        ),
        "change": st.fixed_dictionaries(
            {"type": st.just("code")},
            optional={"lines": st.integers(0, 600), "files": st.integers(0, 3)},
        ),
        "reversible": st.booleans(),
        "blast_radius": st.just({"users_share": 0.1}),
        "cost": st.fixed_dictionaries({"estimated_usd": st.sampled_from([0, 10, 60, 500])}),
        "requested_at": st.just("2025-03-28T16:00:00Z"),
    },
    optional={"rollback": st.just({"plan": "undo"})},
)


def policy_of(rules: list[tuple[str, list[str]]]) -> str:
    return "\n".join(
        f"rule r{i} {{ {verdict} when {' and '.join(f'({t})' for t in tests)} "
        f'because "r{i} on {{action.target}}" }}'
        for i, (verdict, tests) in enumerate(rules)
    )


def linear_evaluate(pack: Pack) -> Any:
    """The pack's rules as one plain ``if`` chain: the reference for the indexed code."""
    python = emit_python(pack.program, "linear", indexed=False)
    assert "I0" not in python.source and "elif" not in python.source
    bindings = {
        short: pack.envelopes[dotted.split(".", 1)[0]][dotted.split(".", 1)[1]]
        for dotted, short in python.envelope_names.items()
    }
    return sandbox.load(python.source, "<linear>", bindings)["evaluate"]


def outcome(evaluate: Any, action: dict) -> Any:
    try:
        return evaluate(action, NOW, {})
    except Exception as exc:
        return type(exc).__name__


@settings(max_examples=40, deadline=None)
@given(
    rules=RULES | PER_SERVICE_RULES, actions=st.lists(GENERATED_ACTIONS, min_size=1, max_size=15)
)
def test_indexed_dispatch_fires_what_the_linear_chain_fires(
    tmp_path_factory: pytest.TempPathFactory, rules: list, actions: list[dict]
) -> None:
    pack = make_pack(tmp_path_factory.mktemp("indexed"), policy_of(rules))
    linear = linear_evaluate(pack)
    for action in actions:
        # the same evidence tuples in the same (pack) order, or the same error
        assert outcome(pack.evaluator.namespace["evaluate"], action) == outcome(linear, action)
        assert_agree(pack, action, NOW, {})


def test_many_values_dispatch_through_a_table(tmp_path: Path) -> None:
    rules = "\n".join(
        f'rule t{i} {{ deny when action.target == "svc-{i}" and action.cost.estimated_usd > {i} }}'
        for i in range(6)
    )
    pack = make_pack(tmp_path, rules + '\nrule any { warn when action.kind == "scale" }')
    source = pack.python_source
    assert "on = I0.get(x0)" in source and "'svc-5': when_5," in source
    verdict = pack.evaluate({**ACTION, "target": "svc-4", "kind": "scale"}, NOW)
    assert [r["id"] for r in verdict.fired] == ["t4"]
    assert [r["id"] for r in verdict.warnings] == ["any"]
    assert verdict.fired[0]["comparisons"][0] == {
        "expression": 'action.target == "svc-4"',
        "left": "svc-4",
        "op": "==",
        "right": "svc-4",
        "result": True,
    }
    assert pack.evaluate({**ACTION, "target": "elsewhere"}, NOW).decision == "allow"


def test_few_values_dispatch_inline_and_nest(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path,
        """
        rule a { deny when action.environment == "production" and action.actor.kind == "llm" }
        rule b { warn when action.environment in ["production", "staging"] and action.actor.kind == "llm" }
        rule c { warn when action.environment == "staging" }
        rule d { warn when action.environment == "production" and action.actor.kind == "llm" and action.cost.estimated_usd > 1 }
        rule e { warn when action.environment == "production" and action.actor.kind == "human" }
        """,
    )
    source = pack.python_source
    assert "if x0 == 'production':" in source and "elif x0 == 'staging':" in source
    assert "        if x1 == 'llm':" in source  # the second level, inside `production`
    assert "I0" not in source
    verdict = pack.evaluate(ACTION, NOW)  # production, llm
    assert [r["id"] for r in (*verdict.fired, *verdict.warnings)] == ["a", "b", "d"]
    staging = pack.evaluate({**ACTION, "environment": "staging"}, NOW)
    assert [r["id"] for r in staging.warnings] == ["b", "c"]


def test_evidence_stays_in_pack_order_across_indexes(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path,
        """
        rule w1 { warn when action.kind == "deploy" }
        rule w2 { warn when action.cost.estimated_usd > 1 }
        rule w3 { warn when action.environment == "production" }
        rule w4 { warn when action.kind == "deploy" and action.change.lines > 1 }
        rule w5 { warn when action.environment == "production" and not action.reversible }
        rule w6 { warn when action.kind == "deploy" and action.environment == "production" }
        rule w7 { warn when action.environment == "production" and action.actor.kind == "llm" }
        """,
    )
    assert "fired.sort()" in pack.python_source
    verdict = pack.evaluate(ACTION, NOW)
    assert [r["id"] for r in verdict.warnings] == ["w1", "w2", "w3", "w4", "w5", "w6", "w7"]


def test_no_index_on_a_test_after_a_conjunct_that_can_raise(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path,
        "\n".join(
            f"rule r{i} {{ deny when action.cost.estimated_usd / action.change.files > 1 "
            f'and action.kind == "{kind}" }}'
            for i, kind in enumerate(["scale", "restart", "rollback", "failover"])
        ),
    )
    assert "rules, by value" not in pack.python_source  # no index: every rule in the chain
    assert "if ((_div(x0, x1) > 1) and (x2 == 'scale')):" in pack.python_source
    verdict = pack.evaluate({**ACTION, "change": {"type": "code", "files": 0}}, NOW)
    assert verdict.fail_closed  # the chain meets the division by zero, whatever the kind
    assert verdict.errors[0]["rule"] == "r0"  # the first rule in pack order
    assert verdict.errors[0]["message"].endswith(
        "ZeroDivisionError: division by zero, in policies/main.aigre:1:21"
    )


def test_the_sandbox_admits_index_names_and_nothing_more() -> None:
    sandbox.verify("def when_3(fired, x0):\n    fired.append(x0)\n\n\nI0 = {'a': when_3}\n")
    sandbox.verify("def evaluate(action, context, usage):\n    on = I0.get(action)\n")
    for bad in ("def when_x(add):\n    pass\n", "Index = {}\n", "def evaluate(a):\n    a.sort()\n"):
        with pytest.raises(sandbox.UnsafeCode):
            sandbox.verify(bad)


# ------------------------------------------------------------------ reads from a parent's local
# The generated code reads a field under an optional object from the local holding that object
# (``x7 = x6.get('role') if _isdict(x6) else None``) and skips a quantifier's loop when its list
# is absent or empty; both must read exactly as the interpreter's step-by-step walk.

NESTED = """
rule admin-without-glass {
  warn when has action.access.role and action.access.role == "admin"
    and not (action.access.break_glass ?? false)
}
rule glass-or-none { warn when action.access.break_glass ?? true }
rule has-glass { warn when has action.access.break_glass }
rule many-records { warn when (action.data.records ?? 7) > 5 }
rule any-eu { warn when any(r in action.data.subject_regions ?? []: r == "eu") }
rule all-eu { warn when all(r in action.data.subject_regions ?? []: r == "eu") }
rule all-unprivileged { warn when all(g in context.actor.groups ?? []: g != "root") }
rule any-service { warn when any(s in action.blast_radius.services ?? []: s == action.target) }
rule any-approval-of-actor {
  warn when any(a in context.approvals ?? []: a.by == (context.actor.on_behalf_of ?? "marta"))
  because "{len(context.approvals ?? [])} approvals, by {context.approvals ?? []}"
}
"""


def _absent_empty_or(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(None), st.just([]), st.lists(values, min_size=1, max_size=3))


@st.composite
def nested_documents(draw: st.DrawFn) -> tuple[dict, dict, dict]:
    action: dict[str, Any] = {**ACTION, "blast_radius": {"users_share": 0.1}}
    services = draw(_absent_empty_or(st.sampled_from(["payments-api", "checkout"])))
    if services is not None:
        action["blast_radius"]["services"] = services
    if draw(st.booleans()):  # the parent present, each child present or absent
        access: dict[str, Any] = {"principal": "svc-deploy"}
        access["role"] = draw(st.sampled_from(["admin", "viewer"]))
        glass = draw(st.one_of(st.none(), st.booleans()))
        if glass is not None:
            access["break_glass"] = glass
        action["access"] = access
    if draw(st.booleans()):
        data: dict[str, Any] = {"classification": "internal"}
        records = draw(st.one_of(st.none(), st.integers(0, 9)))
        if records is not None:
            data["records"] = records
        regions = draw(_absent_empty_or(st.sampled_from(["eu", "us"])))
        if regions is not None:
            data["subject_regions"] = regions
        action["data"] = data
    context: dict[str, Any] = {"now": "2025-03-28T16:00:00Z"}
    if draw(st.booleans()):
        actor: dict[str, Any] = {"kind": "human", "id": "marta", "trust": 3}
        groups = draw(_absent_empty_or(st.sampled_from(["sre", "root"])))
        if groups is not None:
            actor["groups"] = groups
        context["actor"] = actor
    approvals = draw(
        _absent_empty_or(
            st.builds(
                lambda by: {"by": by, "group": "sre", "at": "2025-03-28T15:00:00Z"},
                st.sampled_from(["marta", "nobody", "lee"]),
            )
        )
    )
    if approvals is not None:
        context["approvals"] = approvals
    return action, context, {"n": 1}


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> Pack:
    return make_pack(tmp_path_factory.mktemp("nested"), "usage n = count() over last 1h\n" + NESTED)


@SETTINGS
@given(document=nested_documents())
def test_reads_under_optional_objects_agree_with_the_interpreter(
    nested: Pack, document: tuple[dict, dict, dict]
) -> None:
    action, context, usage = document
    assert nested.validator.is_valid({"action": action, "context": context, "usage": usage})
    assert_agree(nested, *document)
    eager = eager_twin(nested)
    assert_same_records(nested, eager, *document)


def test_reads_under_optional_objects_take_the_parents_local(nested: Pack) -> None:
    source = nested.evaluator.python.source
    # each optional object is read once, from the input; its fields from that local
    assert "_get(" not in source and "_getd(" not in source
    assert source.count("action.get('access')") == 1
    # a quantifier over a list that may be absent builds no generator when it is absent or empty
    assert "for v" in source and " in ([] if " not in source.split("def explain_")[0]


def test_defaults_under_an_absent_or_present_parent(nested: Pack) -> None:
    def warned(action: dict) -> list[str]:
        return [w["id"] for w in nested.evaluate(action, NOW, {"n": 1}).warnings]

    # absent parent: every `??` fallback; present parent, absent child: the schema default
    assert "glass-or-none" in warned(ACTION) and "many-records" in warned(ACTION)
    access = {"principal": "svc-deploy", "role": "admin"}
    present = {**ACTION, "access": access, "data": {"classification": "internal"}}
    assert warned(present)[:2] == ["admin-without-glass", "has-glass"]
    assert "glass-or-none" not in warned(present) and "many-records" not in warned(present)
    # the quantifiers: all over nothing holds, any over nothing does not
    assert {"all-eu", "all-unprivileged"} <= set(warned(ACTION))
    assert "any-eu" not in warned(ACTION)


def test_a_field_under_a_parent_the_schema_leaves_untyped_reads_as_absent(tmp_path: Path) -> None:
    # `properties` without `type` types the parent as an object for the checker, but JSON
    # Schema lets any other value through: a string there has no fields, on every engine
    schema = {
        "type": "object",
        "required": ["action", "context"],
        "properties": {
            "action": {
                "type": "object",
                "properties": {
                    "extra": {"properties": {"size": {"type": "integer", "default": 4}}}
                },
            },
            "context": {"type": "object"},
        },
    }
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "main.aigre").write_text(
        "rule big { warn when (action.extra.size ?? 0) > 1 }\n"
        "rule sized { warn when has action.extra.size }\n"
    )
    (tmp_path / "pack.yaml").write_text(
        "name: untyped\nversion: 1.0.0\ndefault: allow\nfail_closed: deny\n"
        "input_schema: schema.json\n"
    )
    pack, rego = load_pack(tmp_path), load_pack(tmp_path, engine="rego")
    for extra, warned in [
        ("text", []),
        ([1], []),
        ({}, ["big", "sized"]),
        ({"size": 0}, ["sized"]),
    ]:
        action = {"extra": extra}
        assert_agree(pack, action, {}, {})  # the interpreter once gave the default under "text"
        for engine in (pack, rego):
            verdict = engine.evaluate(action, {}, {})
            assert not verdict.fail_closed and [w["id"] for w in verdict.warnings] == warned
