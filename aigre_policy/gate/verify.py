"""Checking a decision log: its lines' bytes, its hash chain, and its signed checkpoints.

Each problem names the file, the line number (from 1) and what is wrong, with a
stable code (documented in ``docs/decision-log.md``):

- ``V001`` the line is not an entry (not UTF-8 or JSON, missing fields, unknown kind);
- ``V002`` the entry's bytes do not match its hash: it was edited;
- ``V003`` a gap in ``seq``: entries were removed (or moved later);
- ``V004`` ``seq`` goes backwards or repeats: entries were moved or duplicated;
- ``V005`` ``prev`` is not the hash of the entry before: the one before was
  replaced (hash recomputed) or this one was inserted;
- ``V006`` the log does not start at the beginning of the chain (earlier files missing);
- ``V007`` a torn last line: a writer stopped mid-entry (a crash); the next
  writer cuts it and records a ``recovery`` entry;
- ``V008`` the anchor (a hash recorded earlier, outside the log) is not in the log:
  entries at the end were removed, or the log was rewritten;
- ``V009`` the line is not in canonical form (whitespace, key order, escapes,
  number form, a byte-order mark, CRLF): its bytes were changed after writing;
- ``V010`` an object in the line repeats a key;
- ``V011`` a line of the checkpoint file (or the ledger's copy) is not a checkpoint;
- ``V012`` a checkpoint's signature does not hold under the given key;
- ``V013`` a checkpoint covers more entries than the log holds: its tail was cut;
- ``V014`` the log does not match a checkpoint (another head hash, another log id):
  entries were rewritten and their chain recomputed;
- ``V015`` no checkpoint signed by the given key covers the log;
- ``V016`` the ledger holds a checkpoint the checkpoint file lacks: the file was cut
  or edited.

Each code is one small check, in the style of a JSON Schema validator's keyword
functions: ``verify_chain.ENTRY_CHECKS`` for the lines, and
``verify_checkpoints.CHECKPOINT_CHECKS`` and ``LOG_CHECKS`` for the log against
its anchor and checkpoints. ``verify_log`` reads the files and runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from aigre_policy.gate import checkpoint as cp
from aigre_policy.gate.chain import EntryFormatError, check_line
from aigre_policy.gate.files import log_files
from aigre_policy.gate.log_problems import TORN, LogProblem
from aigre_policy.gate.verify_chain import scan
from aigre_policy.gate.verify_checkpoints import Evidence, Located, coverage, problems

__all__ = ["TORN", "LogProblem", "VerifyReport", "verify_log"]


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


def verify_log(
    path: str | Path,
    *,
    anchor: str | None = None,
    key: Ed25519PublicKey | str | Path | None = None,
    ledger: cp.CheckpointStore | None = None,
) -> VerifyReport:
    """Check every line of a log and its rotated files, and its checkpoints.

    ``anchor``: the hash of an entry known to have been logged (an earlier
    report's ``last_hash``); its absence is a problem (V008). ``key``: the public
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
    log_id = _first_hash(files[0])
    found, stored, unreadable = _checkpoints(checkpoint_file, log_id, ledger)
    chain = scan(files, {c.entries for c, _, _ in (*found, *stored)}, anchor)
    read = ledger is not None
    evidence = Evidence(
        chain, anchor, log_id, (*found,), (*stored,), read, public_key, checkpoint_file
    )
    holding, covered = coverage(evidence)
    return VerifyReport(
        tuple(str(f) for f in files),
        chain.entries,
        (*chain.problems, *unreadable, *problems(evidence)),
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


def _checkpoints(
    checkpoint_file: Path, log_id: str | None, ledger: cp.CheckpointStore | None
) -> tuple[list[Located], list[Located], list[LogProblem]]:
    """The checkpoints of the file and of the ledger's copy, and the lines that are not."""
    found, unreadable = _read_checkpoint_file(checkpoint_file)
    ledger_log_id = log_id or next((c.log for c, _, _ in found), None)
    if ledger is None or not ledger_log_id:
        return found, [], unreadable
    stored, unread = _read_ledger(ledger, ledger_log_id)
    return found, stored, unreadable + unread


def _read_checkpoint_file(path: Path) -> tuple[list[Located], list[LogProblem]]:
    """The checkpoints of ``PATH.checkpoints``; a malformed line is V011 (a torn last
    line, left by a crash mid-write and cut by the next writer, is skipped)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], []
    lines = data.splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n"):
        lines.pop()
    return _parsed(str(path), lines)


def _read_ledger(ledger: cp.CheckpointStore, log_id: str) -> tuple[list[Located], list[LogProblem]]:
    """The ledger's copy of the log's checkpoints; a malformed one is V011."""
    name = str(getattr(ledger, "name", "the ledger"))
    lines = [text.encode("utf-8", "surrogatepass") for text in ledger.checkpoints(log_id)]
    return _parsed(name, lines)


def _parsed(where: str, lines: list[bytes]) -> tuple[list[Located], list[LogProblem]]:
    found: list[Located] = []
    unreadable: list[LogProblem] = []
    for number, line in enumerate(lines, 1):
        try:
            found.append((cp.parse(line), where, number))
        except EntryFormatError as exc:
            unreadable.append(LogProblem(where, number, "V011", f"not a checkpoint: {exc}"))
    return found, unreadable
