"""Checking a decision log: its lines' bytes, its hash chain, and its signed checkpoints.

Each problem names the file, the line number (from 1) and what is wrong, with a
stable code (documented in ``docs/decision-log.md``):

- ``L001`` the line is not an entry (not UTF-8 or JSON, missing fields, unknown kind);
- ``L002`` the entry's bytes do not match its hash: it was edited;
- ``L003`` a gap in ``seq``: entries were removed (or moved later);
- ``L004`` ``seq`` goes backwards or repeats: entries were moved or duplicated;
- ``L005`` ``prev`` is not the hash of the entry before: the one before was
  replaced (hash recomputed) or this one was inserted;
- ``L006`` the log does not start at the beginning of the chain (earlier files missing);
- ``L007`` a torn last line: a writer stopped mid-entry (a crash); the next
  writer cuts it and records a ``recovery`` entry;
- ``L008`` the anchor (a hash recorded earlier, outside the log) is not in the log:
  entries at the end were removed, or the log was rewritten;
- ``L009`` the line is not in canonical form (whitespace, key order, escapes,
  number form, a byte-order mark, CRLF): its bytes were changed after writing;
- ``L010`` an object in the line repeats a key;
- ``L011`` a line of the checkpoint file (or the ledger's copy) is not a checkpoint;
- ``L012`` a checkpoint's signature does not hold under the given key;
- ``L013`` a checkpoint covers more entries than the log holds: its tail was cut;
- ``L014`` the log does not match a checkpoint (another head hash, another log id):
  entries were rewritten and their chain recomputed;
- ``L015`` no checkpoint signed by the given key covers the log;
- ``L016`` the ledger holds a checkpoint the checkpoint file lacks: the file was cut
  or edited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from aigre_policy.gate import checkpoint as cp
from aigre_policy.gate.chain import (
    ALL_KINDS,
    GENESIS,
    NOT_AN_ENTRY,
    RECOVERY,
    EntryFormatError,
    check_line,
)
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
    """The outcome of ``verify_log``: files read, entries checked, problems in line order.

    ``checkpoints``: checkpoints that hold (signed by the key, when one was given)
    and match the log; ``covered``: the most entries one of them covers, so the
    last ``last_seq - covered`` entries are protected by the chain alone.
    """

    files: tuple[str, ...]
    entries: int
    problems: tuple[LogProblem, ...]
    recoveries: tuple[LogProblem, ...]  # where writers repaired a torn line (not problems)
    last_seq: int
    last_hash: str
    checkpoints: int = 0
    covered: int = 0
    signed: bool = False  # signatures were checked

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
            "checkpoints": self.checkpoints,
            "covered": self.covered,
            "signed": self.signed,
            "problems": [p.to_dict() for p in self.problems],
            "recoveries": [r.to_dict() for r in self.recoveries],
        }


@dataclass(slots=True)
class _Chain:
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


def verify_log(
    path: str | Path,
    *,
    anchor: str | None = None,
    key: Ed25519PublicKey | str | Path | None = None,
    ledger: cp.CheckpointStore | None = None,
) -> VerifyReport:
    """Check every line of a log and its rotated files, and its checkpoints.

    ``anchor``: the hash of an entry known to have been logged (an earlier
    report's ``last_hash``); its absence is a problem (L008). ``key``: the public
    key checkpoints are signed with; every checkpoint must then carry a valid
    signature and at least one must cover the log. ``ledger``: a second copy of
    the checkpoints to compare the file with. Checkpoints are read from
    ``PATH.checkpoints`` whenever it exists.

    Raises ``FileNotFoundError`` when there is no log at ``path``, ``KeyFileError``
    for an unusable key and ``LedgerError`` for an unreadable ledger; never raises
    for bad content.
    """
    files = log_files(path)
    if not files:
        raise FileNotFoundError(f"no log at {path}")
    public_key = cp.load_public_key(key) if key is not None else None
    checkpoint_file = cp.checkpoint_path(path)
    problems: list[LogProblem] = []
    found = _read_checkpoint_file(checkpoint_file, problems)
    wanted = {c.entries for c, _, _ in found}
    log_id = _first_hash(files[0])
    if ledger is not None:
        ledger_log_id = log_id or next((c.log for c, _, _ in found), None)
        stored = _read_ledger(ledger, ledger_log_id, problems) if ledger_log_id else []
        wanted |= {c.entries for c, _, _ in stored}
    else:
        stored = []
    chain = _scan(files, wanted, anchor)
    problems[:0] = chain.problems
    if not chain.anchored:
        problems.append(
            LogProblem(
                chain.last_file,
                chain.last_line,
                "L008",
                f"the anchor {anchor} is not in the log: entries after it were removed "
                "or the log was rewritten",
            )
        )
    holding, covered = _check_checkpoints(
        chain, log_id, found, stored, public_key, checkpoint_file, problems, ledger is not None
    )
    return VerifyReport(
        tuple(str(f) for f in files),
        chain.entries,
        tuple(problems),
        tuple(chain.recoveries),
        chain.last_seq,
        chain.last_hash,
        holding,
        covered,
        public_key is not None,
    )


def _first_hash(file: Path) -> str | None:
    """The hash of seq 1 when the first line holds it (the log's id), else ``None``."""
    with open(file, "rb") as handle:
        line = handle.readline()
    result = check_line(line)
    if result.entry is None or result.entry.seq != 1 or not result.intact:
        return None
    return result.entry.hash


def _scan(files: list[Path], wanted: set[int], anchor: str | None) -> _Chain:
    """Check each line's bytes, hash, seq and link; keep the hashes at ``wanted`` seqs."""
    chain = _Chain(anchored=anchor is None)
    problems = chain.problems
    expected_seq = 1
    # hashes of the latest entries by seq: after a move, the chain resumes from the right one
    recent: dict[int, str] = {0: GENESIS}
    chained = True  # false right after an unreadable line: its successor cannot be checked
    unread = False  # the line before could not be read
    first = True
    number = 0
    name = ""
    for index, file in enumerate(files):
        name = str(file)
        last_file = index == len(files) - 1
        with open(file, "rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.endswith(b"\n"):
                    # only the very end of the log may be torn; anywhere else it was cut
                    code = TORN if last_file else NOT_AN_ENTRY
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
                result = check_line(line)
                entry = result.entry
                if result.flaw is not None:
                    code, message = result.flaw
                    prefix = "not an entry: " if code == NOT_AN_ENTRY else ""
                    problems.append(LogProblem(name, number, code, prefix + message))
                if entry is None:
                    # the unreadable line held one entry, or was added: either seq may follow
                    chained = False
                    first = False
                    unread = True
                    continue
                if unread and entry.seq == expected_seq + 1:
                    expected_seq += 1
                unread = False
                chain.entries += 1
                where = f"seq {entry.seq}"
                if entry.kind not in ALL_KINDS:
                    problems.append(
                        LogProblem(
                            name, number, NOT_AN_ENTRY, f"{where}: unknown kind {entry.kind!r}"
                        )
                    )
                if result.intact is False:
                    problems.append(
                        LogProblem(
                            name,
                            number,
                            "L002",
                            f"{where}: the bytes do not match its hash: the entry was edited",
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
                    chain.recoveries.append(
                        LogProblem(
                            name,
                            number,
                            "recovery",
                            f"{where}: a writer cut a torn line of {torn} bytes here "
                            "and continued the chain",
                        )
                    )
                if entry.seq in wanted and entry.seq not in chain.heads:
                    chain.heads[entry.seq] = (entry.hash, name, number)
                first = False
                chained = True
                chain.anchored = chain.anchored or entry.hash == anchor
                recent[entry.seq] = entry.hash
                if len(recent) > _WINDOW:
                    for old in sorted(recent)[: _WINDOW // 2]:
                        del recent[old]
                expected_seq = max(expected_seq, entry.seq + 1)
    chain.last_seq = expected_seq - 1
    chain.last_hash = recent.get(expected_seq - 1, GENESIS)
    chain.last_file, chain.last_line = name, number
    return chain


Located = tuple[cp.Checkpoint, str, int]  # a checkpoint and where it was read (file, line)


def _read_checkpoint_file(path: Path, problems: list[LogProblem]) -> list[Located]:
    """The checkpoints of ``PATH.checkpoints``; a malformed line is L011 (a torn last
    line, left by a crash mid-write and cut by the next writer, is skipped)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    found: list[Located] = []
    lines = data.splitlines(keepends=True)
    for number, line in enumerate(lines, 1):
        if not line.endswith(b"\n") and number == len(lines):
            break
        try:
            found.append((cp.parse(line), str(path), number))
        except EntryFormatError as exc:
            problems.append(LogProblem(str(path), number, "L011", f"not a checkpoint: {exc}"))
    return found


def _read_ledger(
    ledger: cp.CheckpointStore, log_id: str, problems: list[LogProblem]
) -> list[Located]:
    name = str(getattr(ledger, "name", "the ledger"))
    found: list[Located] = []
    for number, text in enumerate(ledger.checkpoints(log_id), 1):
        try:
            found.append((cp.parse(text.encode("utf-8", "surrogatepass")), name, number))
        except EntryFormatError as exc:
            problems.append(LogProblem(name, number, "L011", f"not a checkpoint: {exc}"))
    return found


def _check_checkpoints(
    chain: _Chain,
    log_id: str | None,
    found: list[Located],
    stored: list[Located],
    public_key: Ed25519PublicKey | None,
    checkpoint_file: Path,
    problems: list[LogProblem],
    stored_read: bool,
) -> tuple[int, int]:
    """Hold each checkpoint (from the file, then the ledger) against the scanned chain.

    Returns how many checkpoints hold and the most entries one of them covers.
    """
    seen: set[bytes] = set()
    valid: list[Located] = []
    for checkpoint, where, number in (*found, *stored):
        line = checkpoint.line()
        if line in seen:
            continue
        seen.add(line)
        label = f"checkpoint at seq {checkpoint.entries}"
        why = checkpoint.signature_problem(public_key) if public_key is not None else None
        if why is not None:
            problems.append(LogProblem(where, number, "L012", f"{label}: {why}"))
        elif log_id is not None and checkpoint.log != log_id:
            problems.append(
                LogProblem(
                    where,
                    number,
                    "L014",
                    f"{label} names log {checkpoint.log}, but this log's first entry has hash "
                    f"{log_id}: the log was rewritten from its first entry, or the "
                    "checkpoint is another log's",
                )
            )
        else:
            valid.append((checkpoint, where, number))
    holding = covered = matched = 0
    cut: Located | None = None
    for checkpoint, where, number in sorted(valid, key=lambda item: item[0].entries):
        if checkpoint.entries > chain.last_seq:
            cut = (checkpoint, where, number)
            continue
        head = chain.heads.get(checkpoint.entries)
        if head is None:
            continue  # the entry itself is gone: the chain scan reported the gap
        if head[0] != checkpoint.head:
            problems.append(
                LogProblem(
                    head[1],
                    head[2],
                    "L014",
                    f"seq {checkpoint.entries} has hash {head[0]}, but the checkpoint signed "
                    f"at {checkpoint.time} ({where}:{number}) has {checkpoint.head}: entries "
                    f"after seq {matched} up to seq {checkpoint.entries} were rewritten and "
                    "their chain recomputed",
                )
            )
            continue
        holding += 1
        matched = covered = checkpoint.entries
    if cut is not None:
        checkpoint, where, number = cut
        removed = (
            f"seq {chain.last_seq + 1}"
            if checkpoint.entries == chain.last_seq + 1
            else f"seq {chain.last_seq + 1}-{checkpoint.entries}"
        )
        problems.append(
            LogProblem(
                chain.last_file,
                chain.last_line,
                "L013",
                f"the log ends at seq {chain.last_seq}, but the checkpoint signed at "
                f"{checkpoint.time} ({where}:{number}) covers {checkpoint.entries} entries: "
                f"{removed} were removed",
            )
        )
    in_file = {c.line() for c, _, _ in found}
    held = {c.line(): c for c, _, _ in valid}
    missing = [c for line, c in held.items() if line not in in_file]
    if missing:
        newest = max(missing, key=lambda c: c.entries)
        problems.append(
            LogProblem(
                str(checkpoint_file),
                len(found),
                "L016",
                f"the ledger holds {len(missing)} checkpoint{'s' if len(missing) > 1 else ''} "
                f"this file lacks (the newest covers {newest.entries} entries): the "
                "checkpoint file was cut or edited",
            )
        )
    if stored_read and not stored and chain.entries:
        problems.append(
            LogProblem(
                chain.last_file,
                chain.last_line,
                "L015",
                "the ledger holds no checkpoint for this log"
                + (f" (id {log_id})" if log_id else "")
                + ": the log was rewritten from its first entry, or its writer never copied "
                "checkpoints there",
            )
        )
    elif public_key is not None and not valid and chain.entries:
        problems.append(
            LogProblem(
                chain.last_file,
                chain.last_line,
                "L015",
                f"no checkpoint signed by {cp.key_id(public_key)} covers this log: it was "
                "written without that signing key, or its checkpoints were removed",
            )
        )
    return holding, covered
