"""A run-time fault inside a rule names the rule, where it is declared and what failed.

The evaluator has no handler per rule; when evaluation fails, the pack runs the rules
again with the reference interpreter, one at a time in pack order, and the fail-closed
verdict's error record names the first rule that fails, its `file:line:col` (relative to
the pack root, as fired records are) and the span of the expression that failed. The
interpreter's own ``fired`` and ``message`` raise ``RuleFault`` with the same facts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import CONTEXT, _action

from aigre_policy import interpreter, load_pack
from aigre_policy.compiler import CompiledPack
from aigre_policy.pack import EvaluationError, Pack

POLICY = """\
usage n = count() over last 1h
usage big = count() over last 1d

rule fine {
  warn when action.cost.estimated_usd > 1000
}

rule ratio {
  deny when 10 / usage.n > 1
}

rule per-line {
  escalate when action.change.lines > 10
  because "{action.change.lines / usage.n} lines per call"
}

rule long-name {
  deny when any(s in action.blast_radius.services ?? []: len(s) / usage.n > 100)
}

rule huge {
  warn when usage.big * 1e300 > 0
}
"""

# rule id -> (where it is declared, where the failing expression is), in policies/main.aigre
WHERE = {
    "ratio": ((8, 6), (9, 13, 9, 25)),
    "per-line": ((12, 6), (14, 13, 14, 42)),
    "long-name": ((17, 6), (18, 58, 18, 74)),
    "huge": ((21, 6), (22, 13, 22, 30)),
}
FILE = "policies/main.aigre"


def make(root: Path, policy: str) -> Pack:
    (root / "policies").mkdir(parents=True, exist_ok=True)
    (root / "pack.yaml").write_text("name: f\nversion: 1.0.0\ndefault: allow\nfail_closed: deny\n")
    (root / FILE).write_text(policy)
    return load_pack(root)


def only(policy: str, rule: str) -> str:
    """The usage lines and ``rule`` alone, the other rules blanked, so line numbers stay."""
    lines = policy.splitlines()
    kept, inside = [], False
    for line in lines:
        if line.startswith("rule "):
            inside = line.startswith(f"rule {rule} ")
        kept.append(line if inside or line.startswith("usage") else "")
    return "\n".join(kept) + "\n"


def expected(rule: str) -> dict[str, Any]:
    (line, column), (sl, sc, el, ec) = WHERE[rule]
    span = {"file": FILE, "line": sl, "column": sc, "end_line": el, "end_column": ec}
    return {"rule": rule, "location": {"file": FILE, "line": line, "column": column}, "span": span}


# an input on which each rule's expression fails: a zero count, a count times 1e300
# (usage values are bounded at 1e12, the product is not)
FAULTY = {
    "ratio": {"n": 0, "big": 1},
    "per-line": {"n": 0, "big": 1},
    "long-name": {"n": 0, "big": 1},
    "huge": {"n": 1, "big": 1e12},
}
KINDS = {
    "ratio": (ZeroDivisionError, "division by zero"),
    "per-line": (ZeroDivisionError, "division by zero"),
    "long-name": (ZeroDivisionError, "division by zero"),
    "huge": (ArithmeticError, "not a finite number"),
}
ACTION = _action(change={"type": "code", "lines": 40})


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param("ratio", id="in-a-condition"),
        pytest.param("per-line", id="in-a-message"),
        pytest.param("long-name", id="in-any"),
        pytest.param("huge", id="overflow"),
    ],
)
def test_the_fault_names_its_rule_on_both_engines(tmp_path: Path, rule: str) -> None:
    pack = make(tmp_path, only(POLICY, rule))
    usage = FAULTY[rule]
    verdict = pack.evaluate(ACTION, CONTEXT, usage)
    assert verdict.fail_closed and verdict.decision == "deny"
    (record,) = verdict.errors
    kind, text = KINDS[rule]
    assert {k: record[k] for k in ("rule", "location", "span")} == expected(rule)
    assert record["kind"] == "engine" and record["path"] == ""
    line, column = WHERE[rule][0]
    assert record["message"].startswith(f"rule {rule} ({FILE}:{line}:{column}) failed: ")
    assert kind.__name__ in record["message"] and text in record["message"]
    # the reference interpreter: the same rule, the same expression, the same cause
    args = (pack.envelopes, ACTION, CONTEXT, usage)
    with pytest.raises(interpreter.RuleFault) as caught:
        for index in interpreter.fired(pack.program, *args):
            interpreter.message(pack.rules[index], *args)
    fault = caught.value
    assert isinstance(fault.cause, kind) and text in str(fault.cause)
    assert fault.__cause__ is fault.cause
    assert fault.rule.id == rule and fault.node is not None
    relative = {**fault.node.span.to_dict(), "file": FILE}
    assert relative == expected(rule)["span"]
    assert str(fault.node.span).endswith(f"{FILE}:{relative['line']}:{relative['column']}")
    located = interpreter.first_fault(pack.program, *args)
    assert located is not None and (located.rule, located.node) == (fault.rule, fault.node)


def test_a_fault_in_a_message_fails_closed_before_any_record_is_read(tmp_path: Path) -> None:
    pack = make(tmp_path, only(POLICY, "per-line"))
    verdict = pack.evaluate(ACTION, CONTEXT, FAULTY["per-line"])
    # decided at once: the errors are there before `fired` or `warnings` is rendered
    assert verdict._fired is None  # not rendered
    assert verdict.fail_closed and verdict.errors[0]["rule"] == "per-line"
    assert verdict.fired == [] and verdict.warnings == []
    fine = pack.evaluate(ACTION, CONTEXT, {"n": 4, "big": 1})
    assert fine.decision == "escalate" and fine.fired[0]["message"] == "10 lines per call"


def test_the_first_failing_rule_in_pack_order_is_named(tmp_path: Path) -> None:
    pack = make(tmp_path, POLICY)
    verdict = pack.evaluate(ACTION, CONTEXT, {"n": 0, "big": 1e12})
    assert [e["rule"] for e in verdict.errors] == ["ratio"]
    # the same input without the first fault names the next rule that fails
    later = make(tmp_path / "later", POLICY.replace("10 / usage.n", "10 / (usage.n + 1)"))
    assert later.evaluate(ACTION, CONTEXT, {"n": 0, "big": 1}).errors[0]["rule"] == "per-line"


def test_every_rule_fault_record_is_a_published_problem(tmp_path: Path) -> None:
    from aigre_policy.models.verdict import VerdictDocument

    pack = make(tmp_path, POLICY)
    document = pack.evaluate(ACTION, CONTEXT, {"n": 0, "big": 1}).to_dict()
    VerdictDocument.model_validate(document)


def test_strict_mode_names_the_rule(tmp_path: Path) -> None:
    pack = make(tmp_path, only(POLICY, "ratio"))
    with pytest.raises(EvaluationError, match=r"rule ratio \(policies/main.aigre:8:6\) failed"):
        pack.evaluate(ACTION, CONTEXT, {"n": 0, "big": 1}, strict=True)


def test_a_fault_no_rule_reproduces_keeps_the_engine_message(tmp_path: Path) -> None:
    """An engine that fails where the rules do not (its own limit) fails closed as it said."""
    pack = make(tmp_path, only(POLICY, "ratio"))

    class GivesUp:
        engine = "gives-up"
        warnings = ()

        def decide(self, document: Any, started: int) -> Any:
            raise RuntimeError("the engine gave up")

    pack = Pack(CompiledPack(pack.checked, GivesUp()), [])
    verdict = pack.evaluate(ACTION, CONTEXT, {"n": 1, "big": 1})
    assert verdict.fail_closed
    assert verdict.errors == [
        {"kind": "engine", "path": "", "message": "RuntimeError: the engine gave up"}
    ]
    # on an input that makes a rule fail, the rule is named whatever the engine said
    verdict = pack.evaluate(ACTION, CONTEXT, {"n": 0, "big": 1})
    assert verdict.errors[0]["rule"] == "ratio"


def test_a_rule_in_a_file_outside_the_pack_keeps_its_path() -> None:
    from aigre_policy.verdict import rule_fault

    record = rule_fault(
        "r", {"file": "/elsewhere/x.aigre", "line": 1, "column": 1}, None, KeyError("k")
    )
    assert record == {
        "kind": "engine",
        "path": "",
        "message": "rule r (/elsewhere/x.aigre:1:1) failed: KeyError: 'k'",
        "rule": "r",
        "location": {"file": "/elsewhere/x.aigre", "line": 1, "column": 1},
    }


# ------------------------------------------------------------------ the Rego engine


@pytest.mark.parametrize("engine", ["rego", "regorus"])
@pytest.mark.parametrize("rule", ["ratio", "per-line", "long-name"])
def test_a_zero_divisor_names_its_rule_on_the_rego_engines(
    tmp_path: Path, rule: str, engine: str
) -> None:
    """A division by zero fails closed on the Rego engines as on native (it was refused
    for Rego, E602, retired): the Rego program itself finds the first rule that fails,
    in pack order, and reports native's error record, rule, location and span."""
    from aigre_policy.plain import as_plain
    from aigre_policy.rego.attach import rego_program
    from aigre_policy.rego.engine import ENGINES

    pytest.importorskip("regorus" if engine == "regorus" else "regopy")
    make(tmp_path, only(POLICY, rule))
    native = load_pack(tmp_path).evaluate(ACTION, CONTEXT, FAULTY[rule])
    pack = load_pack(tmp_path, engine=engine)
    verdict = pack.evaluate(ACTION, CONTEXT, FAULTY[rule])
    assert verdict.fail_closed and verdict.decision == "deny"
    assert verdict.errors == native.errors and verdict.errors[0]["rule"] == rule
    # the decision document the Rego program gives, as OPA would return it
    document = as_plain({"action": ACTION, "context": CONTEXT, "usage": FAULTY[rule]})
    decided = ENGINES[engine](rego_program(pack), validate_in_rego=True).decide(document)
    assert decided["fail_closed"] and decided["errors"] == native.errors
    # and where nothing fails, the same verdict as native
    fine = {"n": 4, "big": 1}
    a, b = load_pack(tmp_path).evaluate(ACTION, CONTEXT, fine), pack.evaluate(ACTION, CONTEXT, fine)
    assert (a.decision, a.rule_ids, a.fail_closed) == (b.decision, b.rule_ids, b.fail_closed)


def test_rego_fails_closed_on_an_overflow(tmp_path: Path) -> None:
    """rego-cpp computes past the double range (a listed gap of the corpus), but a usage
    value past its bound never reaches it: the input is refused, so the Rego engine fails
    closed too (docs/rego.md)."""
    pytest.importorskip("regopy")
    make(tmp_path, only(POLICY, "huge"))
    verdict = load_pack(tmp_path, engine="rego").evaluate(ACTION, CONTEXT, {"n": 1, "big": 1.5e154})
    assert verdict.fail_closed
