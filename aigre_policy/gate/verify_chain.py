"""The line checks of ``verify_log``: each line's bytes, hash, ``seq`` and link.

``scan`` reads the log's files in order and runs every check of ``ENTRY_CHECKS``
on each line that holds an entry. A check reads the entry and the cursor (where
the chain stands before this line) and yields the problems it finds; the cursor
moves on only after all of them ran. The checks of one line are independent, but
the ``seq`` checks share a precedence: the start of the log (V006), then a gap
(V003), a step back (V004), a broken link (V005), at most one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aigre_policy.gate.chain import (
    ALL_KINDS,
    GENESIS,
    NOT_AN_ENTRY,
    RECOVERY,
    Entry,
    LineCheck,
    check_line,
)
from aigre_policy.gate.log_problems import RECOVERY_NOTE, TORN, LogProblem, span

_WINDOW = 4096  # entries whose hashes are kept for checking `prev` after a move


@dataclass(slots=True)
class Chain:
    """What the scan of the log's lines found."""

    problems: list[LogProblem] = field(default_factory=list)
    recoveries: list[LogProblem] = field(default_factory=list)
    entries: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS
    last_file: str = ""
    last_line: int = 0
    anchored: bool = True
    heads: dict[int, tuple[str, str, int]] = field(default_factory=dict)  # seq -> hash, where


@dataclass(slots=True)
class Cursor:
    """Where the chain stands before the next line."""

    expected_seq: int = 1
    # hashes of the latest entries by seq: after a move, the chain resumes from the right one
    recent: dict[int, str] = field(default_factory=lambda: {0: GENESIS})
    chained: bool = True  # false right after an unreadable line: its successor is unchecked
    unread: bool = False  # the line before could not be read
    first: bool = True

    def skip(self) -> None:
        """An unreadable line: it held one entry, or was added; either seq may follow."""
        self.chained, self.first, self.unread = False, False, True

    def resync(self, seq: int) -> None:
        """After an unreadable line, the entry it held counts as read."""
        if self.unread and seq == self.expected_seq + 1:
            self.expected_seq += 1
        self.unread = False

    def advance(self, entry: Entry) -> None:
        self.first, self.chained = False, True
        self.recent[entry.seq] = entry.hash
        if len(self.recent) > _WINDOW:
            for old in sorted(self.recent)[: _WINDOW // 2]:
                del self.recent[old]
        self.expected_seq = max(self.expected_seq, entry.seq + 1)


@dataclass(frozen=True, slots=True)
class Line:
    """An entry read from a line, and where it stands."""

    file: str
    number: int
    entry: Entry
    intact: bool | None

    @property
    def where(self) -> str:
        return f"seq {self.entry.seq}"

    def problem(self, code: str, message: str) -> LogProblem:
        return LogProblem(self.file, self.number, code, message)


EntryCheck = Callable[[Line, Cursor], Iterator[LogProblem]]


def unknown_kind(line: Line, cursor: Cursor) -> Iterator[LogProblem]:
    if line.entry.kind not in ALL_KINDS:
        yield line.problem(NOT_AN_ENTRY, f"{line.where}: unknown kind {line.entry.kind!r}")


def edited(line: Line, cursor: Cursor) -> Iterator[LogProblem]:
    if line.intact is False:
        message = f"{line.where}: the bytes do not match its hash: the entry was edited"
        yield line.problem("V002", message)


def not_at_start(line: Line, cursor: Cursor) -> Iterator[LogProblem]:
    if cursor.first and (line.entry.seq != 1 or line.entry.prev != GENESIS):
        yield line.problem(
            "V006",
            f"the log starts at seq {line.entry.seq}, not at the start of the chain: "
            "earlier entries or files are missing",
        )


def gap(line: Line, cursor: Cursor) -> Iterator[LogProblem]:
    expected = cursor.expected_seq
    if not cursor.first and line.entry.seq > expected:
        missing = span(expected, line.entry.seq - 1)
        message = f"{line.where} where {expected} was expected: {missing} removed or moved"
        yield line.problem("V003", message)


def backwards(line: Line, cursor: Cursor) -> Iterator[LogProblem]:
    if not cursor.first and line.entry.seq < cursor.expected_seq:
        after = f"after seq {cursor.expected_seq - 1}"
        yield line.problem("V004", f"{line.where} {after}: the entry was moved or duplicated")


def broken_link(line: Line, cursor: Cursor) -> Iterator[LogProblem]:
    entry = line.entry
    in_step = not cursor.first and entry.seq == cursor.expected_seq and cursor.chained
    if in_step and entry.prev != cursor.recent.get(entry.seq - 1):
        yield line.problem(
            "V005",
            f"{line.where}: `prev` is not the hash of the entry before: that entry was "
            "replaced, or this one inserted",
        )


ENTRY_CHECKS: tuple[EntryCheck, ...] = (
    unknown_kind,
    edited,
    not_at_start,
    gap,
    backwards,
    broken_link,
)


def _torn(name: str, number: int, raw: bytes, last_file: bool) -> LogProblem:
    """A line without its newline: only the very end of the log may be torn."""
    if last_file:
        return LogProblem(name, number, TORN, f"torn last line: {len(raw)} bytes without a newline")
    what = "a rotated file ends mid-line (it was cut)"
    return LogProblem(name, number, NOT_AN_ENTRY, f"{what}: {len(raw)} bytes without a newline")


def _flaw(name: str, number: int, result: LineCheck) -> Iterator[LogProblem]:
    if result.flaw is not None:
        code, message = result.flaw
        prefix = "not an entry: " if code == NOT_AN_ENTRY else ""
        yield LogProblem(name, number, code, prefix + message)


def _recovery(line: Line) -> Iterator[LogProblem]:
    """Where a writer repaired a torn line: a note for the report, not a problem."""
    if line.entry.kind == RECOVERY:
        torn = line.entry.body.get("torn_bytes", "?")
        yield line.problem(
            RECOVERY_NOTE,
            f"{line.where}: a writer cut a torn line of {torn} bytes here and continued the chain",
        )


@dataclass(slots=True)
class _Scan:
    """A scan in progress: what it found, where the chain stands, what it looks for."""

    chain: Chain
    cursor: Cursor
    wanted: set[int]  # seqs whose hashes the checkpoints need
    anchor: str | None

    def read(self, name: str, number: int, raw: bytes) -> None:
        """Run every check on one complete line, then move the cursor past it."""
        result = check_line(raw)
        self.chain.problems.extend(_flaw(name, number, result))
        if result.entry is None:
            self.cursor.skip()
            return
        line = Line(name, number, result.entry, result.intact)
        self.cursor.resync(line.entry.seq)
        self.chain.entries += 1
        for check in ENTRY_CHECKS:
            self.chain.problems.extend(check(line, self.cursor))
        self.chain.recoveries.extend(_recovery(line))
        self._keep(line)
        self.cursor.advance(line.entry)

    def _keep(self, line: Line) -> None:
        entry, chain = line.entry, self.chain
        if entry.seq in self.wanted and entry.seq not in chain.heads:
            chain.heads[entry.seq] = (entry.hash, line.file, line.number)
        chain.anchored = chain.anchored or entry.hash == self.anchor


def scan(files: list[Path], wanted: set[int], anchor: str | None) -> Chain:
    """Check each line's bytes, hash, seq and link; keep the hashes at ``wanted`` seqs."""
    state = _Scan(Chain(anchored=anchor is None), Cursor(), wanted, anchor)
    for index, file in enumerate(files):
        _scan_file(state, file, last_file=index == len(files) - 1)
    chain, cursor = state.chain, state.cursor
    chain.last_seq = cursor.expected_seq - 1
    chain.last_hash = cursor.recent.get(cursor.expected_seq - 1, GENESIS)
    return chain


def _scan_file(state: _Scan, file: Path, *, last_file: bool) -> None:
    name = state.chain.last_file = str(file)
    with open(file, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            state.chain.last_line = number
            if not raw.endswith(b"\n"):  # only the file's end can lack one
                state.chain.problems.append(_torn(name, number, raw, last_file))
                return
            state.read(name, number, raw)
