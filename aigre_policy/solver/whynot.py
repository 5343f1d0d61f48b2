"""What would change a verdict: the smallest change to the proposal that yields a decision.

The pack is encoded over an input space as wide as the input's lists; what the gate
attests (``context.actor``, ``context.approvals``, ``context.now`` and ``usage``) is
held to its value, and every other field the rules read may move. The solver finds a
way to the decision, or proves there is none. The way is then made small natively:
each changed object, list or field is put back when the decision holds without it,
and items the solver added to a list are dropped where they are not needed (fewest fields),
and each number that moved is moved back toward its old value as far as the decision
allows (nearest values, by bisection). Every step is an evaluation of the pack, so the
answer gives the decision asked for, without failing closed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aigre_policy import lattice
from aigre_policy.plain import as_plain
from aigre_policy.solver import DEFAULT_LIST_BOUND, DEFAULT_TIMEOUT_S
from aigre_policy.solver.bounds import conditions_of, length_hints
from aigre_policy.solver.decision import encode_pack, outcome_of
from aigre_policy.solver.inputs import InputSpace, Unencodable
from aigre_policy.solver.solve import Session
from aigre_policy.solver.values import Arithmetic
from aigre_policy.validation import InputValidator

BISECTIONS = 64  # steps toward the original value of a number that had to move
# what the gate fills from its own sources: a counterfactual never asks to change them
ATTESTED = (("context", "actor"), ("context", "approvals"), ("context", "now"), ("usage",))


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any  # None when the field was absent
    new: Any  # None when the change removes it

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "from": self.old, "to": self.new}


@dataclass
class Counterfactual:
    """The answer to "why not TARGET?": ``found`` with the changes, or why there is none."""

    target: str
    decision: str  # what the input gets now
    status: str  # found, already, impossible, unknown
    changes: list[FieldChange] = field(default_factory=list)
    input: dict[str, Any] | None = None  # the changed input, checked natively
    fired: tuple[str, ...] = ()  # the rules that fire on it
    reason: str = ""
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "target": self.target,
            "decision": self.decision,
            "status": self.status,
            "changes": [c.to_dict() for c in self.changes],
            "held": [".".join(prefix) for prefix in ATTESTED],
            "elapsed_s": round(self.elapsed_s, 4),
        }
        if self.input is not None:
            out["input"] = self.input
            out["fired"] = list(self.fired)
        if self.reason:
            out["reason"] = self.reason
        return out


def _longest_list(value: Any) -> int:
    if isinstance(value, dict):
        return max((_longest_list(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max([len(value), *(_longest_list(v) for v in value)])
    return 0


def changes_between(old: Any, new: Any) -> list[FieldChange]:
    """Every leaf that differs, by dotted path (list items as ``[i]``)."""
    return [FieldChange(_text(path), a, b) for path, a, b in _differences(old, new, ())]


def _differences(old: Any, new: Any, path: tuple[Any, ...]) -> list[tuple[Any, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in [*old, *(k for k in new if k not in old)]:
            found += _differences(old.get(key), new.get(key), (*path, key))
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        found = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            found += _differences(a, b, (*path, i))
        return found
    if old == new and type(old) is type(new):
        return []
    return [(path, old, new)]


def _text(path: tuple[Any, ...]) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text


def _put(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A copy of ``document`` with ``value`` at ``path`` (``None`` removes the field)."""
    changed = copy.deepcopy(document)
    holder: Any = changed
    for step in path[:-1]:
        holder = holder[step]
    if value is None:
        del holder[path[-1]]
    else:
        holder[path[-1]] = copy.deepcopy(value)
    return changed


Reaches = Callable[[dict[str, Any]], bool]


def fewest(found: dict[str, Any], document: dict[str, Any], reaches: Reaches) -> dict[str, Any]:
    """``found`` with every change put back that the target does without (checked natively).

    Whole objects and lists are tried before their fields, then changes two at a time:
    changes that only make sense together (a justification's reference and the alert it
    names) go back together."""
    current = found
    for _ in range(3):
        undone = False
        for path in _changed_subtrees(document, current, ()):
            candidate = _put_back(current, document, [path])
            if candidate is not None and reaches(candidate):
                current, undone = candidate, True
        leaves = [path for path, _, _ in _differences(document, current, ())]
        for i, first in enumerate(leaves):
            for second in leaves[i + 1 :]:
                candidate = _put_back(current, document, [first, second])
                if candidate is not None and reaches(candidate):
                    current, undone = candidate, True
                    break
            if undone:
                break
        if not undone:
            break
    return _shortened(current, document, reaches)


def _put_back(
    current: dict[str, Any], document: dict[str, Any], paths: list[tuple[Any, ...]]
) -> dict[str, Any] | None:
    """``current`` with the proposal's values at ``paths``; ``None`` when one is already
    back or cannot be put back on its own."""
    candidate = current
    for path in paths:
        original = _get(document, path)
        if original == _get(candidate, path):
            return None
        try:
            candidate = _put(candidate, path, original)
        except (KeyError, IndexError, TypeError):
            return None
    return candidate


def _shortened(found: dict[str, Any], document: dict[str, Any], reaches: Reaches) -> Any:
    """``found`` with each item the solver added to a list dropped where the target holds
    without it (the solver fills a list to its bound as readily as to one item)."""
    current = found
    paths = [p for top in _changed_subtrees(document, current, ()) for p in _lists_in(current, top)]
    for path in dict.fromkeys(paths):
        items, original = _get(current, path), _get(document, path)
        if not isinstance(items, list):
            continue
        kept = len(original) if isinstance(original, list) else 0  # the proposal's own
        for i in reversed(range(kept, len(items))):
            shorter = _get(current, path)
            if not isinstance(shorter, list) or i >= len(shorter):
                continue
            candidate = _put(current, path, [*shorter[:i], *shorter[i + 1 :]])
            if reaches(candidate):
                current = candidate
    return current


def _get(document: Any, path: tuple[Any, ...]) -> Any:
    """The value at ``path``, ``None`` where it is absent."""
    value = document
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _lists_in(document: Any, path: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The paths of the lists at or inside ``path``, outer ones first."""
    value = _get(document, path)
    if isinstance(value, dict):
        keys: Any = value.keys()
    elif isinstance(value, list):
        keys = range(len(value))
    else:
        return []
    found = [path] if isinstance(value, list) else []
    for key in keys:
        found += _lists_in(document, (*path, key))
    return found


def _changed_subtrees(old: Any, new: Any, path: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Every path where ``new`` differs from ``old``, each parent before its fields."""
    if old == new and type(old) is type(new):
        return []
    found = [path] if path else []
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            found += _changed_subtrees(old.get(key), new.get(key), (*path, key))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            found += _changed_subtrees(a, b, (*path, i))
    return found


def nearest(found: dict[str, Any], document: dict[str, Any], reaches: Reaches) -> dict[str, Any]:
    """Each number that moved, moved back as far toward its old value as the target allows."""
    current = found
    for path, old, new in _differences(document, current, ()):
        numbers = (int, float)
        if not (isinstance(old, numbers) and isinstance(new, numbers)) or isinstance(old, bool):
            continue
        far, near = new, old  # `far` reaches the target, `near` does not
        for _ in range(BISECTIONS):
            middle = (far + near) / 2
            if isinstance(old, int) and isinstance(new, int):
                middle = (far + near) // 2
                if middle in (far, near):
                    break
            elif middle in (far, near):
                break
            if reaches(_put(current, path, middle)):
                far = middle
            else:
                near = middle
        if isinstance(old, int) and isinstance(far, float) and far.is_integer():
            whole = _put(current, path, int(far))
            if reaches(whole):
                far = int(far)
        current = _put(current, path, far)
    return current


def counterfactual(
    pack: Any,
    action: Any,
    context: Any = None,
    usage: Any = None,
    target: str = "allow",
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Counterfactual:
    """The smallest change to ``action`` (and the context the gate does not attest) that
    makes ``pack`` decide ``target``; checked by evaluating it."""
    started = time.perf_counter()
    if target not in lattice.DECISIONS:
        raise ValueError(f"unknown decision {target!r}: one of {', '.join(lattice.DECISIONS)}")
    document = as_plain({"action": action, "context": context or {}, "usage": usage or {}})
    verdict = pack.evaluate(document["action"], document["context"], document["usage"])
    answer = Counterfactual(target, verdict.decision, "unknown")
    if verdict.fail_closed and verdict.errors and verdict.errors[0].get("kind") == "input":
        answer.reason = "the input breaks the schema: " + verdict.errors[0]["message"]
        return answer
    if not verdict.fail_closed and verdict.decision == target:
        answer.status = "already"
        return answer
    checked = pack.checked
    bound = max(DEFAULT_LIST_BOUND, _longest_list(document))
    try:
        space, formula, session = _encoded(checked, bound, timeout_s)
    except Unencodable as exc:
        answer.reason = f"not encodable: {exc.construct}"
        return answer
    held = [
        keep
        for key, keep in space.keeps(document)
        if any(key[: len(prefix)] == prefix for prefix in ATTESTED)
    ]
    wanted = lattice.LATTICE[target]

    def reproduce(candidate: dict[str, Any]) -> tuple[bool, Any]:
        got = pack.evaluate(candidate["action"], candidate["context"], candidate["usage"])
        return (not got.fail_closed and got.decision == target), got

    # any way to the decision: the solver's first answer is made small natively below
    found = session.witness([*held, formula.outcome == wanted], reproduce, base=document)
    if found.status == "sat" and found.document is not None:
        valid = InputValidator(checked.input_schema).is_valid

        def reaches(candidate: dict[str, Any]) -> bool:
            return valid(candidate) and reproduce(candidate)[0]

        smallest = nearest(fewest(found.document, document, reaches), document, reaches)
        found = replace(found, document=smallest, detail=reproduce(smallest)[1])
    answer.elapsed_s = time.perf_counter() - started
    if found.status == "unsat":
        answer.status = "impossible"
        answer.reason = (
            f"no change to the proposal gives {target} while "
            + ", ".join(".".join(p) for p in ATTESTED)
            + " stay as they are"
        )
        return answer
    if found.status != "sat" or found.document is None:
        answer.reason = found.reason
        return answer
    answer.status = "found"
    answer.input = found.document
    answer.changes = changes_between(document, found.document)
    answer.fired = tuple(found.detail.rule_ids)
    assert outcome_of(found.detail) == wanted
    return answer


_ENCODED: dict[tuple[Any, ...], tuple[InputSpace, Any, Arithmetic]] = {}


def _encoded(checked: Any, bound: int, timeout_s: float) -> tuple[InputSpace, Any, Session]:
    """The pack's encoding, made once per pack and list bound, with a new solver over it."""
    key = (checked.digest, id(checked.program), bound)
    if key not in _ENCODED:
        if len(_ENCODED) >= 8:
            _ENCODED.clear()
        lengths = length_hints(conditions_of(checked.program), checked.envelopes)
        space = InputSpace(checked.input_schema, bound, lengths)
        arithmetic = Arithmetic()
        formula = encode_pack(checked, space, arithmetic)
        _ENCODED[key] = (space, formula, arithmetic)
    space, formula, arithmetic = _ENCODED[key]
    return space, formula, Session(space, arithmetic, [formula.encoder], timeout_s)


def _at(document: Any, key: tuple[Any, ...]) -> Any:
    value = document
    for step in key:
        if isinstance(step, str):
            value = value.get(step) if isinstance(value, dict) else None
        else:
            value = value[step] if isinstance(value, list) and step < len(value) else None
    return value
