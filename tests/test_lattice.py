"""One definition of the verdict vocabulary and the lattice, read by every engine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import aigre_policy
from aigre_policy.lattice import (
    DECISIONS,
    LATTICE,
    NO_RULE,
    RULE_RANKS,
    RULE_VERDICTS,
    decision_of,
    rank_of,
)
from aigre_policy.models.verdict import RuleVerdict

PACKAGE = Path(aigre_policy.__file__).parent
# a rank written out by hand: `"deny": 3`, `"require_approval": 2`, ...
SPELLED_RANK = re.compile(r"\"(?:allow|permit|escalate|require_approval|deny)\": [0-3]\b")


def test_no_module_but_the_lattice_spells_out_a_rank():
    spelled = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "lattice.py" and SPELLED_RANK.search(path.read_text(encoding="utf-8"))
    ]
    assert spelled == []


def test_the_models_name_the_same_rule_verdicts():
    assert set(get_args(RuleVerdict)) == set(RULE_VERDICTS)


def test_the_strongest_verdict_decides_and_no_rule_leaves_the_default():
    assert decision_of(rank_of([]), "deny") == "deny"
    assert decision_of(rank_of(["warn"]), "escalate") == "escalate"
    assert decision_of(rank_of(["permit"]), "deny") == "allow"
    assert decision_of(rank_of(["permit", "escalate", "deny"]), "allow") == "deny"
    assert rank_of(["require_approval", "escalate"]) == LATTICE["require_approval"]
    assert NO_RULE not in RULE_RANKS.values()
    assert [LATTICE[d] for d in DECISIONS] == sorted(LATTICE.values())


def test_every_backend_reads_the_one_function_table():
    from aigre_policy import functions, interpreter, typecheck
    from aigre_policy.rego import expr
    from aigre_policy.sandbox import load

    names = {f.name for f in functions.TABLE}
    assert set(interpreter.FUNCTIONS) == set(expr.FUNCTIONS) == names
    callable_in_text = {f.name for f in functions.TABLE if f.params is not None}
    assert set(typecheck.FUNCTIONS) == callable_in_text
    namespace = load("def evaluate():\n    return 0\n", "<table>", {})
    for function in functions.TABLE:
        assert namespace[function.runtime_name] is function.native
        assert expr.FUNCTIONS[function.name] == function.rego


def test_no_module_but_the_lattice_lists_the_decisions():
    listed = re.compile(r"\(\"allow\", \"escalate\", \"require_approval\", \"deny\"\)")
    spelled = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "lattice.py" and listed.search(path.read_text(encoding="utf-8"))
    ]
    assert spelled == []
