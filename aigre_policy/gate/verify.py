"""Checking a decision log's hash chain, line by line, across its rotated files.

Each problem names the file, the line number (from 1) and what is wrong, with a
stable code (documented in ``docs/decision-log.md``):

- ``L001`` the line is not an entry (not JSON, missing fields, unknown kind);
- ``L002`` the entry's content does not match its hash: it was edited;
- ``L003`` a gap in ``seq``: entries were removed (or moved later);
- ``L004`` ``seq`` goes backwards or repeats: entries were moved or duplicated;
- ``L005`` ``prev`` is not the hash of the entry before: the one before was
  replaced (hash recomputed) or this one was inserted;
- ``L006`` the log does not start at the beginning of the chain (earlier files missing);
- ``L007`` a torn last line: a writer stopped mid-entry (a crash); the next
  writer cuts it and records a ``recovery`` entry;
- ``L008`` the anchor (a hash recorded earlier, outside the log) is not in the log:
  entries at the end were removed, or the log was rewritten.

A chain alone cannot tell that its last entries were cut off: keep the last hash
of each verification somewhere else and pass it as ``anchor`` next time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aigre_policy.gate.chain import ALL_KINDS, GENESIS, RECOVERY, EntryFormatError, decode
from aigre_policy.gate.files import log_files

TORN = "L007"
_WINDOW = 4096  # entries whose hashes are kept for checking `prev` after a move


@dataclass(frozen=True, slots=True)
class LogProblem:
    file: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.code} {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of ``verify_log``: files read, entries checked, problems in line order."""

    files: tuple[str, ...]
    entries: int
    problems: tuple[LogProblem, ...]
    recoveries: tuple[LogProblem, ...]  # where writers repaired a torn line (not problems)
    last_seq: int
    last_hash: str

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def only_torn(self) -> bool:
        """The chain is intact but for a torn last line, which the next writer repairs."""
        return bool(self.problems) and all(p.code == TORN for p in self.problems)

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "files": list(self.files),
            "entries": self.entries,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "problems": [p.to_dict() for p in self.problems],
            "recoveries": [r.to_dict() for r in self.recoveries],
        }


def verify_log(path: str | Path, *, anchor: str | None = None) -> VerifyReport:
    """Check every line of a log and its rotated files; never raises for bad content.

    ``anchor``: the hash of an entry known to have been logged (an earlier
    report's ``last_hash``); its absence is a problem (L008).

    Raises ``FileNotFoundError`` when there is no log at ``path``.
    """
    files = log_files(path)
    if not files:
        raise FileNotFoundError(f"no log at {path}")
    problems: list[LogProblem] = []
    recoveries: list[LogProblem] = []
    expected_seq = 1
    # hashes of the latest entries by seq: after a move, the chain resumes from the right one
    recent: dict[int, str] = {0: GENESIS}
    chained = True  # false right after an unreadable line: its successor cannot be checked
    first = True
    entries = 0
    anchored = anchor is None
    number = 0
    for index, file in enumerate(files):
        name = str(file)
        last_file = index == len(files) - 1
        with open(file, "rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.endswith(b"\n"):
                    # only the very end of the log may be torn; anywhere else it was cut
                    code = TORN if last_file else "L001"
                    what = (
                        "torn last line"
                        if last_file
                        else "a rotated file ends mid-line (it was cut)"
                    )
                    problems.append(
                        LogProblem(
                            name, number, code, f"{what}: {len(line)} bytes without a newline"
                        )
                    )
                    break
                try:
                    entry, intact = decode(line)
                except EntryFormatError as exc:
                    problems.append(LogProblem(name, number, "L001", f"not an entry: {exc}"))
                    chained = False
                    first = False
                    continue
                entries += 1
                where = f"seq {entry.seq}"
                if entry.kind not in ALL_KINDS:
                    problems.append(
                        LogProblem(name, number, "L001", f"{where}: unknown kind {entry.kind!r}")
                    )
                if not intact:
                    problems.append(
                        LogProblem(
                            name,
                            number,
                            "L002",
                            f"{where}: the content does not match its hash: the entry was edited",
                        )
                    )
                if first:
                    if entry.seq != 1 or entry.prev != GENESIS:
                        problems.append(
                            LogProblem(
                                name,
                                number,
                                "L006",
                                f"the log starts at seq {entry.seq}, not at the start of "
                                "the chain: earlier entries or files are missing",
                            )
                        )
                elif entry.seq > expected_seq:
                    missing = (
                        f"seq {expected_seq}"
                        if entry.seq == expected_seq + 1
                        else f"seq {expected_seq}-{entry.seq - 1}"
                    )
                    problems.append(
                        LogProblem(
                            name,
                            number,
                            "L003",
                            f"{where} where {expected_seq} was expected: {missing} "
                            "removed or moved",
                        )
                    )
                elif entry.seq < expected_seq:
                    problems.append(
                        LogProblem(
                            name,
                            number,
                            "L004",
                            f"{where} after seq {expected_seq - 1}: "
                            "the entry was moved or duplicated",
                        )
                    )
                elif chained and entry.prev != recent.get(entry.seq - 1):
                    problems.append(
                        LogProblem(
                            name,
                            number,
                            "L005",
                            f"{where}: `prev` is not the hash of the entry before: that "
                            "entry was replaced, or this one inserted",
                        )
                    )
                if entry.kind == RECOVERY:
                    torn = entry.body.get("torn_bytes", "?")
                    recoveries.append(
                        LogProblem(
                            name,
                            number,
                            "recovery",
                            f"{where}: a writer cut a torn line of {torn} bytes here "
                            "and continued the chain",
                        )
                    )
                first = False
                chained = True
                anchored = anchored or entry.hash == anchor
                recent[entry.seq] = entry.hash
                if len(recent) > _WINDOW:
                    for old in sorted(recent)[: _WINDOW // 2]:
                        del recent[old]
                expected_seq = max(expected_seq, entry.seq + 1)
    if not anchored:
        problems.append(
            LogProblem(
                str(files[-1]),
                number,
                "L008",
                f"the anchor {anchor} is not in the log: entries after it were removed "
                "or the log was rewritten",
            )
        )
    return VerifyReport(
        tuple(str(f) for f in files),
        entries,
        tuple(problems),
        tuple(recoveries),
        expected_seq - 1,
        recent.get(expected_seq - 1, GENESIS),
    )
