"""Replay: re-judge every logged decision's input under a candidate pack and compare.

The log is streamed line by line (its rotated files too); only ``decision``
entries are replayed (not shadow verdicts, approvals or reviews). Each logged
input (``action``, ``context``, ``usage``: the attested input the pack saw, its
``context.actor`` and ``context.approvals`` included) is evaluated by the
candidate's native evaluator, the approvals the gate held resolve its fired
``require_approval`` rules as the gate resolves them, and that decision is
compared with the logged one on the lattice ``deny > require_approval > escalate >
allow``: lower is **looser**, higher is **stricter**. Like is compared with like:
the logged side is what the rules and approvals decided (``gate.resolved_decision``),
before reviewers answered and before a gate fault failed the check closed, since
neither is the pack's doing. Entries whose input was masked or dropped
(``redacted``) are not replayed, since the candidate would judge a different
input; they are counted and listed. Entries of checks the pack never judged (a
fault before evaluation: their input is incomplete) count as unreadable.

The log is cut into spans of whole lines; with ``jobs > 1`` each worker
process compiles the candidate once and reads its spans from the file itself.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Any

from aigre_policy.gate.approvals import resolve, weighing_rules
from aigre_policy.gate.files import log_files
from aigre_policy.pack import Pack, load_pack
from aigre_policy.verdict import LATTICE

_DECISION_MARK = b'"kind":"decision"'  # entries are canonical JSON: a cheap pre-filter


@dataclass
class _Tally:
    """Counts from one chunk of lines; merged in log order so examples are the first ones."""

    decisions: int = 0
    replayed: int = 0
    unchanged: int = 0
    rules_changed: int = 0  # same decision, different rules fired
    redacted: int = 0
    unreadable: int = 0
    fail_closed: int = 0
    transitions: Counter = field(default_factory=Counter)
    rules: dict[str, Counter] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    baseline_packs: Counter = field(default_factory=Counter)

    def example(self, key: str, decision_id: str, limit: int) -> None:
        found = self.examples.setdefault(key, [])
        if len(found) < limit:
            found.append(decision_id)

    def merge(self, other: _Tally, limit: int) -> None:
        self.decisions += other.decisions
        self.replayed += other.replayed
        self.unchanged += other.unchanged
        self.rules_changed += other.rules_changed
        self.redacted += other.redacted
        self.unreadable += other.unreadable
        self.fail_closed += other.fail_closed
        self.transitions.update(other.transitions)
        self.baseline_packs.update(other.baseline_packs)
        for rule, counts in other.rules.items():
            self.rules.setdefault(rule, Counter()).update(counts)
        for key, ids in other.examples.items():
            for decision_id in ids:
                self.example(key, decision_id, limit)


@dataclass(frozen=True)
class ReplayReport:
    """What changed when the log's decisions were re-judged by the candidate pack."""

    candidate: dict[str, str]
    decisions: int  # decision entries read
    replayed: int  # of which re-evaluated
    unchanged: int
    rules_changed: int
    redacted: int  # not replayed: their input was masked or dropped
    unreadable: int  # not replayed: no usable input in the entry
    candidate_fail_closed: int  # replayed inputs the candidate judged fail-closed
    transitions: dict[str, int]  # "allow->deny": count
    rules: dict[str, dict[str, int]]  # rule id -> {"looser": n, "stricter": n}
    examples: dict[str, list[str]]  # transition, "redacted", "unreadable" -> decision ids
    baseline_packs: dict[str, int]  # "name version digest" of the logged verdicts -> count
    elapsed_seconds: float

    @property
    def changed(self) -> int:
        return sum(self.transitions.values())

    def count(self, direction: str) -> int:
        return sum(n for key, n in self.transitions.items() if _direction(key) == direction)

    @property
    def looser(self) -> int:
        return self.count("looser")

    @property
    def stricter(self) -> int:
        return self.count("stricter")

    @property
    def rate(self) -> float:
        """Decisions replayed per second."""
        return self.replayed / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "decisions": self.decisions,
            "replayed": self.replayed,
            "unchanged": self.unchanged,
            "changed": self.changed,
            "looser": self.looser,
            "stricter": self.stricter,
            "rules_changed": self.rules_changed,
            "redacted": self.redacted,
            "unreadable": self.unreadable,
            "candidate_fail_closed": self.candidate_fail_closed,
            "transitions": [
                {
                    "from": key.split("->")[0],
                    "to": key.split("->")[1],
                    "count": n,
                    "direction": _direction(key),
                    "examples": self.examples.get(key, []),
                }
                for key, n in sorted(self.transitions.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "rules": {rule: dict(counts) for rule, counts in sorted(self.rules.items())},
            "examples": {
                "redacted": self.examples.get("redacted", []),
                "unreadable": self.examples.get("unreadable", []),
            },
            "baseline_packs": dict(self.baseline_packs),
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "decisions_per_second": round(self.rate, 1),
        }


def _direction(transition: str) -> str:
    before, after = transition.split("->")
    return "looser" if LATTICE[after] < LATTICE[before] else "stricter"


# Worker state: the candidate pack, compiled once per process.
_PACK: Pack | None = None
_LIMIT = 5


def _init_worker(pack_path: str, envelopes: dict[str, dict[str, Any]] | None, limit: int) -> None:
    global _PACK, _LIMIT
    _PACK = load_pack(pack_path, envelopes)
    _LIMIT = limit


def _replay_span(span: _Span) -> _Tally:
    assert _PACK is not None, "worker not initialised"
    return replay_lines(_PACK, _read_span(span), _LIMIT)


def replay_lines(pack: Pack, lines: list[bytes], limit: int = 5) -> _Tally:
    """Re-judge the decision entries among ``lines`` under ``pack``."""
    tally = _Tally()
    evaluate = pack.evaluate
    weighing = weighing_rules(pack)  # rules that weigh context.approvals themselves
    for line in lines:
        if _DECISION_MARK not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # not an entry: `log verify` reports it
        if not isinstance(entry, dict) or entry.get("kind") != "decision":
            continue
        tally.decisions += 1
        decision_id = str(entry.get("id", "?"))
        body = entry.get("body")
        verdict = body.get("verdict") if isinstance(body, dict) else None
        document = body.get("input") if isinstance(body, dict) else None
        if isinstance(body, dict) and body.get("redacted"):
            tally.redacted += 1
            tally.example("redacted", decision_id, limit)
            continue
        before = _logged_decision(verdict)
        if before not in LATTICE or not isinstance(document, dict) or not isinstance(verdict, dict):
            tally.unreadable += 1
            tally.example("unreadable", decision_id, limit)
            continue
        logged_pack = verdict.get("pack")
        if isinstance(logged_pack, dict):
            tally.baseline_packs[
                f"{logged_pack.get('name')} {logged_pack.get('version')} "
                f"{logged_pack.get('digest')}"
            ] += 1
        judged = evaluate(document.get("action"), document.get("context"), document.get("usage"))
        decision = judged.decision
        if isinstance(verdict.get("gate"), dict) and not judged.fail_closed:
            # a gate's entry: its approvals resolve the candidate's rules as they did the pack's
            held = _held_approvals(verdict, document)
            decision = resolve(decision, judged.fired, held, weighing=weighing).decision
        tally.replayed += 1
        if judged.fail_closed:
            tally.fail_closed += 1
        fired_before = {f.get("id") for f in verdict.get("fired", []) if isinstance(f, dict)}
        fired_after = set(judged.rule_ids)
        if decision == before:
            tally.unchanged += 1
            if fired_before != fired_after:
                tally.rules_changed += 1
            continue
        key = f"{before}->{decision}"
        tally.transitions[key] += 1
        tally.example(key, decision_id, limit)
        direction = "looser" if LATTICE[decision] < LATTICE[before] else "stricter"
        # the rules that account for the change: newly fired ones, or ones that stopped firing
        for rule in fired_after ^ fired_before:
            tally.rules.setdefault(str(rule), Counter())[direction] += 1
        if judged.fail_closed:
            tally.rules.setdefault("(fail closed)", Counter())[direction] += 1
    return tally


def _logged_decision(verdict: Any) -> Any:
    """What the logged pack and approvals decided, or ``None`` when no pack judged.

    A gate's entry holds it as ``gate.resolved_decision`` (before reviewers and gate
    faults); an entry with gate evidence but no ``pack_decision`` is a check that
    failed before the pack judged. An entry without gate evidence (a pack's own
    verdict) is its ``decision``.
    """
    if not isinstance(verdict, dict):
        return None
    gate = verdict.get("gate")
    if not isinstance(gate, dict):
        return verdict.get("decision")
    if "resolved_decision" in gate:
        return gate["resolved_decision"]
    if "pack_decision" not in gate:
        return None  # the pack never judged: the logged input is not what a pack saw
    # an entry written before gates logged resolved_decision: work it out the same way
    errors = verdict.get("errors")
    gate_faults = isinstance(errors, list) and any(
        isinstance(e, dict) and str(e.get("path", "")).startswith("gate.") for e in errors
    )
    if verdict.get("fail_closed") and not gate_faults:
        return gate["pack_decision"]  # the pack itself failed closed: no approval resolves it
    fired = [f for f in verdict.get("fired", []) if isinstance(f, dict)]
    return resolve(gate["pack_decision"], fired, _counted(gate)).decision


def _held_approvals(verdict: dict[str, Any], document: dict[str, Any]) -> list[dict[str, Any]]:
    """The approvals the gate held for the action: those it attested in
    ``context.approvals``, or those its evidence counted when the pack's schema had no
    such field."""
    context = document.get("context")
    attested = context.get("approvals") if isinstance(context, dict) else None
    if isinstance(attested, list):
        return [a for a in attested if isinstance(a, dict)]
    return _counted(verdict["gate"])


def _counted(gate: dict[str, Any]) -> list[dict[str, Any]]:
    """The approvals a gate's evidence lists as counted."""
    evidence = gate.get("approvals")
    counted = evidence.get("counted") if isinstance(evidence, dict) else None
    return [a for a in counted if isinstance(a, dict)] if isinstance(counted, list) else []


@dataclass(frozen=True)
class _Span:
    """A run of whole lines of one log file: ``[start, end)`` in bytes."""

    file: str
    start: int
    end: int


def _spans(path: str | Path, size: int) -> Iterator[_Span]:
    """Cut each file of the log into spans of about ``size`` bytes, at line ends.

    Workers read their own span from the file, so no line crosses a pipe.
    """
    for file in log_files(path):
        total = file.stat().st_size
        with open(file, "rb") as handle:
            start = 0
            while start < total:
                handle.seek(min(start + size, total))
                handle.readline()  # on to the end of the line the cut fell in
                end = min(handle.tell(), total) if start + size < total else total
                yield _Span(str(file), start, end)
                start = end


def _read_span(span: _Span) -> list[bytes]:
    """The complete lines of a span; a torn last line (no newline) is no decision yet."""
    with open(span.file, "rb") as handle:
        handle.seek(span.start)
        lines = handle.read(span.end - span.start).splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n"):
        lines.pop()
    return lines


def _merge_next(
    window: deque[tuple[AsyncResult, int]],
    total: _Tally,
    limit: int,
    progress: Callable[[int], None] | None,
) -> None:
    result, read = window.popleft()
    total.merge(result.get(), limit)
    if progress is not None:
        progress(read)


def log_size(path: str | Path) -> int:
    """Total bytes of a log's files: the progress bar's extent."""
    return sum(f.stat().st_size for f in log_files(path))


def replay_log(
    candidate: str | Path,
    log_path: str | Path,
    *,
    envelopes: dict[str, dict[str, Any]] | None = None,
    jobs: int = 1,
    examples: int = 5,
    chunk_bytes: int = 4 << 20,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Replay every decision of the log at ``log_path`` under the pack at ``candidate``.

    Raises ``CompileError`` if the candidate does not compile and ``FileNotFoundError``
    if there is no log. ``progress`` is called with the bytes of each batch of lines judged.
    """
    if not log_files(log_path):
        raise FileNotFoundError(f"no log at {log_path}")
    pack = load_pack(candidate, envelopes)
    started = time.perf_counter()
    total = _Tally()
    spans = _spans(log_path, chunk_bytes)
    if log_size(log_path) < 2 * jobs * chunk_bytes:
        jobs = 1  # a small log: starting workers would cost more than they save
    if jobs <= 1:
        for span in spans:
            total.merge(replay_lines(pack, _read_span(span), examples), examples)
            if progress is not None:
                progress(span.end - span.start)
    else:
        # spawn, not fork: the caller may run threads (a progress bar)
        context = multiprocessing.get_context("spawn")
        with context.Pool(
            jobs, initializer=_init_worker, initargs=(str(candidate), envelopes, examples)
        ) as pool:
            # a bounded window of spans in flight keeps memory flat on large logs;
            # merging in submission order keeps the examples the log's first ones
            window: deque[tuple[AsyncResult, int]] = deque()
            for span in spans:
                window.append((pool.apply_async(_replay_span, (span,)), span.end - span.start))
                if len(window) >= 2 * jobs:
                    _merge_next(window, total, examples, progress)
            while window:
                _merge_next(window, total, examples, progress)
    elapsed = time.perf_counter() - started
    return ReplayReport(
        candidate={"name": pack.name, "version": pack.version, "digest": pack.digest},
        decisions=total.decisions,
        replayed=total.replayed,
        unchanged=total.unchanged,
        rules_changed=total.rules_changed,
        redacted=total.redacted,
        unreadable=total.unreadable,
        candidate_fail_closed=total.fail_closed,
        transitions=dict(total.transitions),
        rules={rule: dict(counts) for rule, counts in total.rules.items()},
        examples=total.examples,
        baseline_packs=dict(total.baseline_packs),
        elapsed_seconds=elapsed,
    )
