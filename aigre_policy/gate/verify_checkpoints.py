"""The checks of ``verify_log`` that hold the log against what was recorded outside it.

``Evidence`` is what they read: the scanned chain, the anchor, the checkpoints
of the checkpoint file and of the ledger's copy, and the key. Each checkpoint
first passes ``CHECKPOINT_CHECKS`` (its signature, then its log id: the first
problem refuses it); then each check of ``LOG_CHECKS`` yields the problems of
one kind, in the order the report lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from aigre_policy.gate import checkpoint as cp
from aigre_policy.gate.log_problems import LogProblem, span
from aigre_policy.gate.verify_chain import Chain

Located = tuple[cp.Checkpoint, str, int]  # a checkpoint and where it was read (file, line)
Head = tuple[str, str, int]  # the hash of the entry a checkpoint covers up to, and where


@dataclass(frozen=True)
class Evidence:
    """The scanned chain, and what was recorded about the log outside it."""

    chain: Chain
    anchor: str | None
    log_id: str | None  # the hash of seq 1, when the first line holds it
    found: tuple[Located, ...]  # from the checkpoint file
    stored: tuple[Located, ...]  # from the ledger's copy
    ledger_read: bool
    public_key: Ed25519PublicKey | None
    checkpoint_file: Path

    @cached_property
    def sifted(self) -> tuple[list[Located], list[LogProblem]]:
        """The distinct checkpoints that hold, and the problems of those refused."""
        seen: set[bytes] = set()
        valid: list[Located] = []
        refused: list[LogProblem] = []
        for located in (*self.found, *self.stored):
            line = located[0].line()
            if line in seen:
                continue
            seen.add(line)
            problem = next((p for check in CHECKPOINT_CHECKS for p in check(located, self)), None)
            if problem is None:
                valid.append(located)
            else:
                refused.append(problem)
        return valid, refused

    @property
    def valid(self) -> list[Located]:
        return self.sifted[0]

    @cached_property
    def by_size(self) -> list[Located]:
        """The valid checkpoints, fewest entries covered first."""
        return sorted(self.valid, key=lambda item: item[0].entries)

    @cached_property
    def in_log(self) -> list[tuple[Located, Head]]:
        """Valid checkpoints whose last entry the log still holds, with that entry."""
        heads = self.chain.heads
        return [
            (located, heads[located[0].entries])
            for located in self.by_size
            if located[0].entries <= self.chain.last_seq and located[0].entries in heads
        ]

    def at_end(self, code: str, message: str) -> LogProblem:
        """A problem of the log as a whole, reported at its last line."""
        return LogProblem(self.chain.last_file, self.chain.last_line, code, message)


def coverage(evidence: Evidence) -> tuple[int, int]:
    """How many checkpoints hold, and the most entries one of them covers."""
    holding = [c for (c, _, _), head in evidence.in_log if head[0] == c.head]
    return len(holding), (holding[-1].entries if holding else 0)


# -- each checkpoint ------------------------------------------------------------------------

CheckpointCheck = Callable[[Located, Evidence], Iterator[LogProblem]]


def _label(checkpoint: cp.Checkpoint) -> str:
    return f"checkpoint at seq {checkpoint.entries}"


def forged(located: Located, evidence: Evidence) -> Iterator[LogProblem]:
    checkpoint, where, number = located
    if evidence.public_key is not None:
        why = checkpoint.signature_problem(evidence.public_key)
        if why is not None:
            yield LogProblem(where, number, "V012", f"{_label(checkpoint)}: {why}")


def other_log(located: Located, evidence: Evidence) -> Iterator[LogProblem]:
    checkpoint, where, number = located
    if evidence.log_id is not None and checkpoint.log != evidence.log_id:
        yield LogProblem(
            where,
            number,
            "V014",
            f"{_label(checkpoint)} names log {checkpoint.log}, but this log's first entry has "
            f"hash {evidence.log_id}: the log was rewritten from its first entry, or the "
            "checkpoint is another log's",
        )


CHECKPOINT_CHECKS: tuple[CheckpointCheck, ...] = (forged, other_log)


# -- the log against its checkpoints --------------------------------------------------------

LogCheck = Callable[[Evidence], Iterator[LogProblem]]


def unanchored(evidence: Evidence) -> Iterator[LogProblem]:
    if not evidence.chain.anchored:
        yield evidence.at_end(
            "V008",
            f"the anchor {evidence.anchor} is not in the log: entries after it were removed "
            "or the log was rewritten",
        )


def refused(evidence: Evidence) -> Iterator[LogProblem]:
    yield from evidence.sifted[1]


def rewritten(evidence: Evidence) -> Iterator[LogProblem]:
    matched = 0
    for (checkpoint, where, number), (hash_, file, line) in evidence.in_log:
        if hash_ == checkpoint.head:
            matched = checkpoint.entries
            continue
        yield LogProblem(
            file,
            line,
            "V014",
            f"seq {checkpoint.entries} has hash {hash_}, but the checkpoint signed at "
            f"{checkpoint.time} ({where}:{number}) has {checkpoint.head}: entries after seq "
            f"{matched} up to seq {checkpoint.entries} were rewritten and their chain recomputed",
        )


def cut(evidence: Evidence) -> Iterator[LogProblem]:
    last_seq = evidence.chain.last_seq
    beyond = [located for located in evidence.by_size if located[0].entries > last_seq]
    if beyond:
        checkpoint, where, number = beyond[-1]
        yield evidence.at_end(
            "V013",
            f"the log ends at seq {last_seq}, but the checkpoint signed at {checkpoint.time} "
            f"({where}:{number}) covers {checkpoint.entries} entries: "
            f"{span(last_seq + 1, checkpoint.entries)} were removed",
        )


def missing_from_file(evidence: Evidence) -> Iterator[LogProblem]:
    in_file = {c.line() for c, _, _ in evidence.found}
    missing = [c for c, _, _ in evidence.valid if c.line() not in in_file]
    if missing:
        newest = max(missing, key=lambda c: c.entries)
        plural = "s" if len(missing) > 1 else ""
        yield LogProblem(
            str(evidence.checkpoint_file),
            len(evidence.found),
            "V016",
            f"the ledger holds {len(missing)} checkpoint{plural} this file lacks (the newest "
            f"covers {newest.entries} entries): the checkpoint file was cut or edited",
        )


def uncovered(evidence: Evidence) -> Iterator[LogProblem]:
    if not evidence.chain.entries:
        return
    if evidence.ledger_read and not evidence.stored:
        named = f" (id {evidence.log_id})" if evidence.log_id else ""
        yield evidence.at_end(
            "V015",
            f"the ledger holds no checkpoint for this log{named}: the log was rewritten from "
            "its first entry, or its writer never copied checkpoints there",
        )
    elif evidence.public_key is not None and not evidence.valid:
        yield evidence.at_end(
            "V015",
            f"no checkpoint signed by {cp.key_id(evidence.public_key)} covers this log: it was "
            "written without that signing key, or its checkpoints were removed",
        )


LOG_CHECKS: tuple[LogCheck, ...] = (
    unanchored,
    refused,
    rewritten,
    cut,
    missing_from_file,
    uncovered,
)


def problems(evidence: Evidence) -> Iterator[LogProblem]:
    for check in LOG_CHECKS:
        yield from check(evidence)
