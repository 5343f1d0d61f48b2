"""L101, L102, L103 and L105 decided by the SMT solver, for any condition it can state.

The range search (``conditions``, ``shadowing``) decides comparisons of one field with
constants and holds everything else free; what it cannot settle is asked here of the
solver (``aigre_policy.solver.lint``), which reads arithmetic, two fields compared,
``has``, calls and quantifiers as the engine computes them. A finding is reported only
on a proof (``unsat``) — a rule that never fires, always fires, or never changes the
decision — or, for L105, on a witness input the native engine judged with both rules
firing. A timeout, a construct the solver cannot state, or a proof that would rest on
the solver's own bounds (lists cut short, timestamps in whole seconds) reports nothing
and leaves a note saying which question was left to the range search.

Deferred imports: z3 (the `prove` extra) loads only here, when the check runs; without
it the check notes that it was skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from aigre_policy import ir
from aigre_policy.diagnostics import Diagnostic
from aigre_policy.lattice import RESTRICTIVE, RULE_RANKS
from aigre_policy.lint import conditions, shadowing
from aigre_policy.lint.context import PackView, finding

PROVED = "proved by the solver"
_SHOWN_NOTES = 5  # open questions named in the note; the rest are counted
_WITNESS_CHARS = 400


def check(view: PackView) -> Iterator[Diagnostic]:
    if not view.exact:
        return
    try:
        from aigre_policy.solver.lint import RuleQuestions
    except ImportError:
        view.notes.append(
            'exact lint skipped: z3 is not installed (pip install "aigre-policy[prove]"); '
            "L101-L103 were decided over field ranges only, L105 not checked"
        )
        return
    from aigre_policy.solver.inputs import Unencodable
    from aigre_policy.testing.runner import fired_ids

    try:
        questions = RuleQuestions(view.compiled.checked, view.pack)
    except Unencodable as exc:
        view.notes.append(
            f"exact lint skipped: the solver cannot state this pack ({exc.construct}); "
            "L101-L103 were decided over field ranges only"
        )
        return
    for result in view.suite.results:  # the pack's own tests: judged natively, witnesses free
        verdict, case = result.verdict, result.case
        if verdict is not None and not verdict.fail_closed and not case.overrides:
            document = {"action": case.action, "context": case.context, "usage": case.usage}
            questions.seen(document, fired_ids(verdict))
    run = _Run(view, questions)
    yield from run.conditions()
    yield from run.shadowed()
    yield from run.conflicts()
    if run.open:
        view.notes.append(run.note())


class _Run:
    def __init__(self, view: PackView, questions: Any):
        self.view = view
        self.q = questions
        self.open: dict[str, str] = {}  # rule id -> why a question about it stayed open
        self.live: list[ir.Rule] = []  # neither never nor always, by either search
        self.shadowed_ids: set[str] = set()

    def _left_open(self, rule: str, question: str, answer: Any) -> None:
        self.open.setdefault(rule, f"{question}: {answer.reason}")

    def conditions(self) -> Iterator[Diagnostic]:
        from aigre_policy.solver.lint import UNKNOWN, UNSAT

        for rule in self.view.rules:
            if conditions.decided(self.view.formulas[rule.id]) is not None:
                continue  # L101/L102 from the range search already
            fire = self.q.can_fire(rule.id)
            if fire.status == UNSAT:
                yield finding(
                    "L101",
                    f"rule `{rule.id}` never fires: no input the schema admits makes its "
                    f"condition true ({PROVED})",
                    rule.span,
                    "check the condition's parts against each other and the schema: "
                    "ranges, enums, `has` guards, arithmetic",
                )
                continue
            if fire.status == UNKNOWN:
                self._left_open(rule.id, "whether it can fire", fire)
            quiet = self.q.can_stay_quiet(rule.id)
            if quiet.status == UNSAT:
                yield finding(
                    "L102",
                    f"rule `{rule.id}` fires on every input: its condition always holds ({PROVED})",
                    rule.span,
                    "the condition does not tell inputs apart; check `and`/`or` and `not`",
                )
                continue
            if quiet.status == UNKNOWN:
                self._left_open(rule.id, "whether it can stay quiet", quiet)
            self.live.append(rule)

    def shadowed(self) -> Iterator[Diagnostic]:
        from aigre_policy.solver.lint import SAT, UNKNOWN, UNSAT

        deciding = [r for r in self.live if r.verdict in RULE_RANKS]
        for weaker in deciding:
            if any(
                stronger is not weaker
                and RULE_RANKS[stronger.verdict] >= RULE_RANKS[weaker.verdict]
                and shadowing.shadows(self.view, stronger, weaker)
                for stronger in deciding
            ):
                self.shadowed_ids.add(weaker.id)  # L103 from the range search already
                continue
            for stronger in deciding:
                if stronger is weaker or RULE_RANKS[stronger.verdict] < RULE_RANKS[weaker.verdict]:
                    continue
                answer = self.q.fires_without(weaker.id, stronger.id)
                if answer.status == UNKNOWN:
                    self._left_open(weaker.id, f"whether `{stronger.id}` shadows it", answer)
                if answer.status != UNSAT:
                    continue
                same_rank = RULE_RANKS[stronger.verdict] == RULE_RANKS[weaker.verdict]
                # two rules of one rank that hold on exactly the same inputs: the later only
                later = same_rank and stronger.index > weaker.index
                if later and self.q.fires_without(stronger.id, weaker.id).status != SAT:
                    continue
                self.shadowed_ids.add(weaker.id)
                yield finding(
                    "L103",
                    f"rule `{weaker.id}` never changes the decision: whenever it fires, "
                    f"`{stronger.id}` ({stronger.verdict}) fires too ({PROVED}, for every "
                    "input whose verdict does not fail closed)",
                    weaker.span,
                    f"narrow `{stronger.id}`, drop `{weaker.id}`, or make it a `warn`",
                )
                break

    def conflicts(self) -> Iterator[Diagnostic]:
        from aigre_policy.solver.lint import SAT, UNKNOWN

        permits = [r for r in self.live if r.verdict == "permit" and r.id not in self.shadowed_ids]
        restrictive = [r for r in self.live if r.verdict in RESTRICTIVE]
        for permit in permits:
            for rule in restrictive:
                answer = self.q.fire_together(permit.id, rule.id)
                if answer.status == UNKNOWN:
                    self._left_open(permit.id, f"whether `{rule.id}` overrules it", answer)
                if answer.status != SAT:
                    continue
                shown = witness_text(answer.document, [permit, rule])
                yield finding(
                    "L105",
                    f"permit `{permit.id}` is overruled by `{rule.id}` ({rule.verdict}) on "
                    f"some inputs it grants; both fire on {shown}",
                    permit.span,
                    f"if the grant should stand there, narrow `{rule.id}`; if not, narrow "
                    f"`{permit.id}` so the two do not overlap",
                )

    def note(self) -> str:
        named = [f"`{rule}` ({why})" for rule, why in list(self.open.items())[:_SHOWN_NOTES]]
        more = len(self.open) - len(named)
        tail = f", and {more} more" if more > 0 else ""
        return (
            f"the solver left questions about {len(self.open)} rule"
            f"{'s' if len(self.open) != 1 else ''} to the range search: " + "; ".join(named) + tail
        )


def witness_text(document: Any, rules: list[ir.Rule]) -> str:
    """The values of the fields ``rules`` read in a witness input, shortly."""
    paths = sorted({p for rule in rules for p in _reads(rule)})
    parts = []
    for path in paths:
        value = _lookup(document, path.split("."))
        shown = "absent" if value is _ABSENT else json.dumps(value, ensure_ascii=False)
        parts.append(f"{path} = {shown}" if value is not _ABSENT else f"{path} {shown}")
    text = ", ".join(parts) or "every input"
    if len(text) > _WITNESS_CHARS:
        text = text[: _WITNESS_CHARS - 3] + "..."
    return text


_ABSENT = object()


def _lookup(value: Any, steps: list[str]) -> Any:
    for step in steps:
        if not isinstance(value, dict) or value.get(step) is None:
            return _ABSENT
        value = value[step]
    return value


def _reads(rule: ir.Rule) -> set[str]:
    return {
        node.dotted
        for node in ir.walk(rule.condition)
        if isinstance(node, ir.Path) and not node.local
    }
