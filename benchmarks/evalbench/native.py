"""aigre's own evaluator, timed whole and by stage.

Rows (each a median of its own distribution, so they do not add up exactly):

- ``native``: ``Pack.evaluate``, the public call: the input document, its validation, the
  rules, evidence capture (for every rule that held, the values it read and its message
  interpolates; rules with ``or``/``any``/``all`` record their comparisons as they run)
  and the ``Verdict``.
- ``native + records``: the same, then ``verdict.fired`` and ``verdict.warnings`` read, which
  renders the captured evidence into the published record dicts.
- ``evaluator``: what the floor is compared with: the rules, evidence capture, the
  decision and the ``Verdict`` (``pack.evaluator.decide``), given the input document that
  ``Pack.evaluate`` builds for validation, and without validation (the floor validates
  nothing).
- ``validation only``: ``pack.validator.is_valid``, the input schema check.
- ``native + to_dict``: ``Pack.evaluate`` then ``Verdict.to_dict()``, what a server or the
  decision log publishes (the to_dict goal reads this row minus ``native``).
"""

from __future__ import annotations

from typing import Any

from evalbench.measure import Engine


def native_engines(pack: Any, inputs: list[tuple], breakdown: bool) -> list[Engine]:
    def with_records(action: Any, context: Any, usage: Any) -> Any:
        verdict = pack.evaluate(action, context, usage)
        verdict.fired  # noqa: B018 - rendering the records is what is timed
        verdict.warnings  # noqa: B018
        return verdict

    engines = [
        Engine(
            "native",
            pack.evaluate,
            inputs,
            lambda v: v.decision,
            "Pack.evaluate: validation + rules + evidence capture + Verdict",
        ),
        Engine(
            "native + records",
            with_records,
            inputs,
            lambda v: v.decision,
            "Pack.evaluate, then verdict.fired and .warnings rendered as dicts",
        ),
        Engine(
            "native + to_dict",
            lambda action, context, usage: pack.evaluate(action, context, usage).to_dict(),
            inputs,
            lambda d: d["decision"],
            "Pack.evaluate, then Verdict.to_dict(): the whole published verdict",
        ),
    ]
    # The stages without validation: the pack's evaluator (the backend protocol) and its
    # validator.
    is_valid, decide = pack.validator.is_valid, pack.evaluator.decide
    # the input document Pack.evaluate builds once, for the validator and the verdict
    documents = [{"action": a, "context": c, "usage": u} for a, c, u in inputs]
    if decide:
        engines.append(
            Engine(
                "evaluator",
                decide,
                [(document, 0) for document in documents],
                lambda v: v.decision,
                "rules + evidence capture + decision + Verdict (pack.evaluator.decide), given "
                "the input document; no validation: the row compared with the floor",
                paired=True,
            )
        )
    if breakdown and is_valid:
        engines.append(
            Engine(
                "  validation only",
                is_valid,
                [(document,) for document in documents],
                decides=False,
                note="pack.validator.is_valid(document): the input schema check",
            )
        )
    return engines
