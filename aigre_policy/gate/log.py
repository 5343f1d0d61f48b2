"""The tamper-evident decision log: one hash-chained JSON line per entry.

``DecisionLog(path).append(kind, body)`` writes an entry (see ``chain`` for the
line format) under a file lock, so threads and processes may share one log.
``read_log(path)`` streams the entries of a log and its rotated files in order;
``verify_log(path)`` checks the lines and the chain. With a ``signing_key`` the
log also signs checkpoints of its chain (``checkpoint``) every ``checkpoint_entries``
entries or ``checkpoint_seconds`` seconds. Documented in ``docs/decision-log.md``.

Bodies by kind (``decision_id`` links an entry to the decision it concerns):

- ``decision``, ``shadow``: ``{"verdict": Verdict.to_dict(), "input": {"action",
  "context", "usage"}}``; the entry id is the verdict's ``decision_id``. A
  ``shadow`` verdict was computed but not enforced (a candidate pack in shadow
  mode) and may name the enforced one in ``shadow_of``.
- ``approval``: ``{"decision_id", "status": requested|granted|rejected|expired|
  withdrawn, "group"?, "by"?}``.
- ``review``: ``{"decision_id", "tier", "reviewer": {"kind": human|llm|automation,
  "id"}, "decision": allow|escalate|require_approval|deny}``.
- ``outcome``: ``{"decision_id", "status": executed|failed|skipped|rolled_back,
  "cost_usd"?}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time as _time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aigre_policy.gate import checkpoint as cp
from aigre_policy.gate.chain import (
    GENESIS,
    KINDS,
    RECOVERY,
    Entry,
    EntryFormatError,
    decode,
    encode,
    seal,
    seal_line,
)
from aigre_policy.gate.files import log_files
from aigre_policy.gate.locking import InterProcessLock, LockTimeout
from aigre_policy.gate.redact import Redactor
from aigre_policy.gate.verify import LogProblem, VerifyReport, verify_log
from aigre_policy.verdict import LATTICE, canonical_json

__all__ = [
    "KINDS",
    "DecisionLog",
    "Entry",
    "LogError",
    "LogProblem",
    "VerifyReport",
    "log_files",
    "read_log",
    "validate_body",
    "verify_log",
]

FsyncPolicy = Literal["entry", "batch", "none"]
FSYNC_POLICIES = ("entry", "batch", "none")
APPROVAL_STATUSES = ("requested", "granted", "rejected", "expired", "withdrawn")
REVIEWER_KINDS = ("human", "llm", "automation")
OUTCOME_STATUSES = ("executed", "failed", "skipped", "rolled_back")
TORN_TEXT_LIMIT = 64 * 1024  # bytes of a torn line kept as text in the recovery entry
_CHUNK = 64 * 1024

logger = logging.getLogger("aigre_policy.gate.log")


class LogError(Exception):
    """The log cannot be written or read: bad use, a corrupt tail, a lock timeout, I/O."""


@dataclass(frozen=True, slots=True)
class _Tail:
    """The last entry of the log as this writer last saw it, and where the file ended."""

    seq: int
    hash: str
    inode: int
    size: int


def read_log(path: str | Path) -> Iterator[Entry]:
    """Stream the entries of a log and its rotated files, oldest first.

    Raises ``LogError`` at a line that is not an entry; a torn last line (no
    newline) is skipped. This reader does not check hashes: use ``verify_log``.
    """
    files = log_files(path)
    if not files:
        raise LogError(f"no log at {path}")
    for file in files:
        with open(file, "rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.endswith(b"\n"):
                    return  # a torn last line: a crash mid-write, reported by verify
                try:
                    entry, _ = decode(line)
                except EntryFormatError as exc:
                    raise LogError(f"{file}:{number}: {exc}") from None
                yield entry


def validate_body(kind: str, body: Any) -> list[str]:
    """Problems with a body for ``kind``; empty when it may be appended."""
    if kind not in KINDS:
        return [f"unknown entry kind {kind!r}: expected one of {', '.join(KINDS)}"]
    if not isinstance(body, dict):
        return [f"a {kind} body must be a mapping, not {type(body).__name__}"]
    problems: list[str] = []
    if kind in ("decision", "shadow"):
        verdict = body.get("verdict")
        if not isinstance(verdict, dict) or verdict.get("decision") not in LATTICE:
            problems.append(f"a {kind} body needs `verdict` with a `decision` in {list(LATTICE)}")
        if not isinstance(body.get("input"), dict):
            problems.append(f"a {kind} body needs `input`: the evaluated action, context, usage")
        return problems
    if not isinstance(body.get("decision_id"), str) or not body["decision_id"]:
        problems.append(f"a {kind} body needs `decision_id`")
    if kind == "approval" and body.get("status") not in APPROVAL_STATUSES:
        problems.append(f"approval `status` must be one of {', '.join(APPROVAL_STATUSES)}")
    if kind == "review":
        reviewer = body.get("reviewer")
        if not isinstance(reviewer, dict) or reviewer.get("kind") not in REVIEWER_KINDS:
            problems.append(f"review `reviewer.kind` must be one of {', '.join(REVIEWER_KINDS)}")
        if body.get("decision") not in LATTICE:
            problems.append(f"review `decision` must be one of {', '.join(LATTICE)}")
    if kind == "outcome":
        if body.get("status") not in OUTCOME_STATUSES:
            problems.append(f"outcome `status` must be one of {', '.join(OUTCOME_STATUSES)}")
        cost = body.get("cost_usd", 0)
        if isinstance(cost, bool) or not isinstance(cost, int | float) or cost < 0:
            problems.append("outcome `cost_usd` must be a number >= 0")
    return problems


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise LogError("the log clock must return timezone-aware datetimes")
    m = moment.astimezone(UTC)
    if m.year < 1000:  # strftime's %Y does not pad those on every platform
        return m.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f"{m.year}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
        f".{m.microsecond:06d}Z"
    )


class DecisionLog:
    """An append-only, hash-chained log file shared by threads and processes.

    ``fsync``: ``entry`` syncs every entry to disk before ``append`` returns;
    ``batch`` syncs once ``batch_entries`` entries or ``batch_seconds`` have
    accumulated (and on ``flush``/``close``); ``none`` leaves it to the OS.
    ``max_bytes`` rotates the file once an entry would take it past that size.
    ``sensitive`` maps input paths to ``mask`` or ``drop`` (a pack's
    ``sensitive:`` section); ``mask_key`` turns masks into keyed hashes.

    ``signing_key`` (an Ed25519 private key or its PEM file) makes the log sign a
    checkpoint of its chain after the first entry, then whenever
    ``checkpoint_entries`` entries or ``checkpoint_seconds`` seconds have passed
    since the last one (checked at each append), and on ``checkpoint()`` and
    ``close()``. Checkpoints go to ``PATH.checkpoints`` and, in a background
    thread, to ``checkpoint_store`` (the ledger). A checkpoint that cannot be
    written never fails the append (the entry is already in the log): it is
    counted in ``checkpoint_faults``, logged, and retried at the next append.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fsync: FsyncPolicy = "entry",
        max_bytes: int | None = None,
        sensitive: Mapping[str, str] | None = None,
        mask_key: bytes | str | None = None,
        batch_entries: int = 100,
        batch_seconds: float = 1.0,
        lock_timeout: float = 10.0,
        clock: Callable[[], datetime] = _utc_now,
        signing_key: Ed25519PrivateKey | str | Path | None = None,
        checkpoint_entries: int = cp.DEFAULT_ENTRIES,
        checkpoint_seconds: float = cp.DEFAULT_SECONDS,
        checkpoint_store: cp.CheckpointStore | None = None,
    ):
        if fsync not in FSYNC_POLICIES:
            raise LogError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        if max_bytes is not None and max_bytes < 1:
            raise LogError("max_bytes must be a positive number of bytes")
        self.path = Path(path)
        self.fsync = fsync
        self.max_bytes = max_bytes
        self.batch_entries = max(1, batch_entries)
        self.batch_seconds = batch_seconds
        self._clock = clock
        try:
            self._redactor = Redactor.from_spec(sensitive, mask_key)
        except ValueError as exc:
            raise LogError(str(exc)) from None
        self._file_lock = InterProcessLock(str(self.path) + ".lock", lock_timeout)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        self._tail: _Tail | None = None
        self._opened: os.stat_result | None = None  # fstat of _fd taken by _open, unused yet
        self._unsynced = 0
        self._unsynced_since = 0.0
        self._pending_recovery: dict[str, Any] | None = None
        self.recoveries = 0  # torn lines this writer repaired
        if checkpoint_entries < 1 or not checkpoint_seconds > 0:
            raise LogError("checkpoint_entries and checkpoint_seconds must be positive")
        try:
            self._signer = cp.load_private_key(signing_key) if signing_key is not None else None
        except cp.KeyFileError as exc:
            raise LogError(str(exc)) from None
        self.checkpoint_entries = checkpoint_entries
        self.checkpoint_seconds = checkpoint_seconds
        self.checkpoint_store = checkpoint_store
        self.checkpoints_path = cp.checkpoint_path(self.path)
        self.checkpoint_faults = 0  # checkpoints that could not be written (see the log)
        self.last_checkpoint_fault: str | None = None
        self._log_id: str | None = None
        self._last_checkpoint: tuple[int, datetime] | None = None  # entries, signed at
        self._checkpoint_loaded = False
        self._copier: ThreadPoolExecutor | None = None
        self._copier_pid = 0
        self._copies: list[Future[None]] = []

    # -- public API --------------------------------------------------------------------------

    def append(
        self,
        kind: str,
        body: dict[str, Any],
        *,
        entry_id: str | None = None,
        body_json: bytes | None = None,
    ) -> Entry:
        """Append one entry and return it (with its seq, time, prev and hash).

        ``body_json``: ``canonical_json(body)`` when the caller has already encoded it
        (the gate does); used only when nothing in the body is to be redacted.
        """
        problems = validate_body(kind, body)
        if problems:
            raise LogError("; ".join(problems))
        if kind in ("decision", "shadow") and self._redactor.paths:
            body, body_json = self._redactor.apply(body), None
        if body_json is None:
            try:
                body_json = canonical_json(body)
            except (TypeError, ValueError) as exc:
                raise LogError(f"the {kind} body is not JSON data: {exc}") from None
        if entry_id is None:
            verdict_id = body.get("verdict", {}).get("decision_id") if "verdict" in body else None
            entry_id = verdict_id if isinstance(verdict_id, str) else str(uuid.uuid4())
        with self._lock:
            try:
                with self._file_lock:
                    return self._append_locked(kind, body, body_json, entry_id)
            except LockTimeout:
                raise LogError(f"timed out waiting for the lock on {self.path}") from None
            except OSError as exc:
                self._tail = None  # re-read the file next time: a partial write is repaired
                raise LogError(f"cannot write {self.path}: {exc}") from None

    def flush(self) -> None:
        """Sync entries not yet on disk (under ``batch`` or ``none``)."""
        with self._lock:
            if self._fd is not None and self._unsynced:
                os.fsync(self._fd)
                self._unsynced = 0

    def checkpoint(self) -> cp.Checkpoint | None:
        """Sign a checkpoint of the log's last entry now (unless one covers it already)
        and wait for its copy to reach the store; ``None`` without a key or entries.

        Do not call it inside a transaction on the store it copies to.
        """
        if self._signer is None:
            return None
        with self._lock:
            try:
                with self._file_lock:
                    fd = self._open()
                    tail = self._current_tail(fd)
                    written = None
                    if tail.seq and self._checkpoint_due(tail.seq, force=True):
                        written = self._checkpoint_locked(fd, tail.seq, tail.hash)
            except LockTimeout:
                raise LogError(f"timed out waiting for the lock on {self.path}") from None
            except OSError as exc:
                raise LogError(f"cannot write {self.path}: {exc}") from None
        self._wait_for_copies()
        return written

    def close(self) -> None:
        if self._signer is not None and self._tail is not None:
            with contextlib.suppress(LogError):
                self.checkpoint()
        self._wait_for_copies()
        if self._copier is not None and self._copier_pid == os.getpid():
            self._copier.shutdown(wait=True)
        self._copier = None
        with self._lock:
            if self._fd is not None:
                if self._unsynced and self.fsync != "none":
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
                self._tail = None
                self._unsynced = 0
            self._file_lock.close()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- under the lock ----------------------------------------------------------------------

    def _append_locked(
        self, kind: str, body: dict[str, Any], body_json: bytes, entry_id: str
    ) -> Entry:
        fd = self._open()
        tail = self._current_tail(fd)
        entry, line = seal_line(
            tail.seq + 1, entry_id, kind, self._now(), tail.hash, body, body_json
        )
        if self.max_bytes is not None and tail.size > 0 and tail.size + len(line) > self.max_bytes:
            fd = self._rotate()
            tail = _Tail(tail.seq, tail.hash, os.fstat(fd).st_ino, 0)
        try:
            self._write(fd, line)
            self._after_write(fd)
        except OSError:
            # the caller is told the entry was not taken: it must not stay in the file
            self._take_back(fd, tail.size)
            raise
        self._tail = _Tail(entry.seq, entry.hash, tail.inode, tail.size + len(line))
        if self._signer is not None and self._checkpoint_due(entry.seq):
            self._checkpoint_locked(fd, entry.seq, entry.hash)
        return entry

    def _now(self) -> str:
        return _timestamp(self._clock())

    def _take_back(self, fd: int, end: int) -> None:
        """Cut the file back to ``end`` after a write or fsync that failed (still under the
        file lock, so no other writer appended since). When even that fails the partial
        entry stays: a torn line is repaired by the next writer, a whole one is reported."""
        try:
            os.ftruncate(fd, end)
            if self.fsync != "none":
                os.fsync(fd)
        except OSError as exc:
            logger.error("%s: a refused entry may remain after byte %d: %s", self.path, end, exc)

    # -- checkpoints (under both locks) ------------------------------------------------------

    def _checkpoint_due(self, seq: int, *, force: bool = False) -> bool:
        if not self._checkpoint_loaded:
            last = cp.last_checkpoint(self.checkpoints_path)
            if last is not None:
                self._last_checkpoint = (last.entries, _parse_time(last.time))
            self._checkpoint_loaded = True
        if self._last_checkpoint is None:
            return True
        entries, signed_at = self._last_checkpoint
        if force:
            return seq != entries
        return (
            seq - entries >= self.checkpoint_entries
            or (self._clock() - signed_at).total_seconds() >= self.checkpoint_seconds
        )

    def _checkpoint_locked(self, fd: int, seq: int, head: str) -> cp.Checkpoint | None:
        """Sign ``(log id, seq, head, now)``; write it beside the log, then to the store.

        A fault is counted and logged, never raised: the entry is already written.
        """
        assert self._signer is not None
        try:
            log_id = self._log_id or self._find_log_id()
            self._log_id = log_id
            moment = self._clock()
            checkpoint = cp.sign(self._signer, log_id, seq, head, _timestamp(moment))
            if self.fsync != "none" and self._unsynced:
                os.fsync(fd)  # never sign entries a power cut could still take away
                self._unsynced = 0
            self._append_checkpoint(checkpoint.line())
        except (OSError, LogError) as exc:
            self._checkpoint_fault(f"checkpoint of {self.path} at seq {seq} not written: {exc}")
            return None
        self._last_checkpoint = (seq, moment)
        if self.checkpoint_store is not None:
            self._copy(checkpoint)
        return checkpoint

    def _append_checkpoint(self, line: bytes) -> None:
        fd = os.open(self.checkpoints_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # a writer died mid-checkpoint: cut the torn line, it signs nothing
                data = os.pread(fd, min(size, _CHUNK), max(0, size - _CHUNK))
                os.ftruncate(fd, size - len(data) + data.rfind(b"\n") + 1)
            self._write(fd, line)
            if self.fsync != "none":
                os.fsync(fd)
        finally:
            os.close(fd)

    def _find_log_id(self) -> str:
        """The log's id: the hash of its first entry, or (first file archived) the id
        the last checkpoint signed by this key names."""
        files = log_files(self.path)
        if files:
            with open(files[0], "rb") as handle:
                first = handle.readline()
            with contextlib.suppress(EntryFormatError):
                entry, intact = decode(first)
                if entry.seq == 1 and intact:
                    return entry.hash
        last = cp.last_checkpoint(self.checkpoints_path)
        assert self._signer is not None
        if last is not None and last.key == cp.key_id(self._signer.public_key()):
            return last.log
        raise LogError("its first entry (seq 1) is gone and no checkpoint names its id")

    def _copy(self, checkpoint: cp.Checkpoint) -> None:
        """Hand the checkpoint to the store in a background thread: the caller may be
        inside a transaction on that same store (the gate logs inside one)."""
        if self._copier is None or self._copier_pid != os.getpid():
            self._copier = ThreadPoolExecutor(1, thread_name_prefix="aigre-checkpoint")
            self._copier_pid = os.getpid()
            self._copies = []
        pending = [f for f in self._copies if not f.done()]
        self._copies = [*pending, self._copier.submit(self._store_copy, checkpoint)]

    def _store_copy(self, checkpoint: cp.Checkpoint) -> None:
        assert self.checkpoint_store is not None
        try:
            line = checkpoint.line().decode().rstrip("\n")
            self.checkpoint_store.add_checkpoint(checkpoint.log, checkpoint.entries, line)
        except Exception as exc:  # any store fault: counted and logged, never raised
            self._checkpoint_fault(
                f"checkpoint of {self.path} at seq {checkpoint.entries} not copied to "
                f"{getattr(self.checkpoint_store, 'name', 'the store')}: {exc}"
            )

    def _checkpoint_fault(self, message: str) -> None:
        self.checkpoint_faults += 1
        self.last_checkpoint_fault = message
        logger.error("%s", message)

    def _wait_for_copies(self) -> None:
        if self._copier_pid == os.getpid() and self._copies:
            wait_for(self._copies, timeout=self._file_lock.timeout)

    def _open(self) -> int:
        """The descriptor of the active file, reopened after a fork or another's rotation.

        ``self._opened`` keeps the descriptor's ``fstat`` taken here, for ``_current_tail``.
        """
        self._opened = None
        if self._fd is not None and self._pid == os.getpid():
            try:
                opened = os.fstat(self._fd)
                if os.stat(self.path).st_ino == opened.st_ino:
                    self._opened = opened
                    return self._fd
            except FileNotFoundError:
                pass
            os.close(self._fd)
        self._fd = None
        self._tail = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self._pid = os.getpid()
        if created and self.fsync != "none":
            _sync_dir(self.path.parent)
        return self._fd

    def _current_tail(self, fd: int) -> _Tail:
        """The last entry's seq and hash: cached when nobody wrote since, else read back."""
        stat, self._opened = self._opened or os.fstat(fd), None
        cached = self._tail
        if cached is not None and cached.inode == stat.st_ino and cached.size == stat.st_size:
            return cached
        size = _repair_torn_tail(fd, stat.st_size, self._record_torn)
        seq, last = _last_entry(fd, size, self.path)
        if seq == 0:
            seq, last = self._previous_file_tail()
        tail = _Tail(seq, last, stat.st_ino, os.fstat(fd).st_size)
        self._tail = tail
        if self._pending_recovery is not None:
            tail = self._write_recovery(fd, tail)
        return tail

    def _record_torn(self, offset: int, torn: bytes) -> None:
        self._pending_recovery = {
            "reason": "torn last line: a writer stopped mid-entry",
            "offset": offset,
            "torn_bytes": len(torn),
            "torn_sha256": hashlib.sha256(torn).hexdigest(),
            "torn_text": torn[:TORN_TEXT_LIMIT].decode("utf-8", errors="replace"),
            "torn_text_truncated": len(torn) > TORN_TEXT_LIMIT,
        }

    def _write_recovery(self, fd: int, tail: _Tail) -> _Tail:
        body, self._pending_recovery = self._pending_recovery or {}, None
        entry = seal(tail.seq + 1, str(uuid.uuid4()), RECOVERY, self._now(), tail.hash, body)
        line = encode(entry)
        self._write(fd, line)
        os.fsync(fd)  # the repair itself is always made durable
        self.recoveries += 1
        self._tail = _Tail(entry.seq, entry.hash, tail.inode, tail.size + len(line))
        return self._tail

    def _previous_file_tail(self) -> tuple[int, str]:
        """Where the chain stands when the active file is empty: the newest rotated file."""
        files = [f for f in log_files(self.path) if f != self.path]
        if not files:
            return 0, GENESIS
        with open(files[-1], "rb") as handle:
            handle.seek(0, os.SEEK_END)
            seq, last = _last_entry(handle.fileno(), handle.tell(), files[-1])
        if seq == 0:
            raise LogError(f"rotated file {files[-1]} is empty: the chain cannot be continued")
        return seq, last

    def _rotate(self) -> int:
        """Move the full active file aside as ``PATH.N`` and start a new one."""
        if self._fd is not None:
            if self._unsynced and self.fsync != "none":
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        files = log_files(self.path)
        rotated = [f for f in files if f != self.path]
        number = int(rotated[-1].name.rsplit(".", 1)[1]) + 1 if rotated else 1
        os.rename(self.path, self.path.with_name(f"{self.path.name}.{number}"))
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self._pid = os.getpid()
        self._unsynced = 0
        if self.fsync != "none":
            _sync_dir(self.path.parent)
        return self._fd

    def _write(self, fd: int, line: bytes) -> None:
        view = memoryview(line)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def _after_write(self, fd: int) -> None:
        if self.fsync == "entry":
            os.fsync(fd)
            return
        if self._unsynced == 0:
            self._unsynced_since = _time.monotonic()
        self._unsynced += 1
        if self.fsync == "batch" and (
            self._unsynced >= self.batch_entries
            or _time.monotonic() - self._unsynced_since >= self.batch_seconds
        ):
            os.fsync(fd)
            self._unsynced = 0


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        return datetime.min.replace(tzinfo=UTC)  # unreadable: a checkpoint is due
    return moment


def _sync_dir(directory: Path) -> None:
    """Make a new or renamed file's directory entry durable (POSIX)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _repair_torn_tail(fd: int, size: int, record: Callable[[int, bytes], None]) -> int:
    """Cut bytes after the last newline (a crash mid-line), handing them to ``record``."""
    if size == 0:
        return 0
    if os.pread(fd, 1, size - 1) == b"\n":
        return size
    end = size
    cut = 0
    while end > 0:
        start = max(0, end - _CHUNK)
        chunk = os.pread(fd, end - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            cut = start + newline + 1
            break
        end = start
    torn = os.pread(fd, size - cut, cut)
    record(cut, torn)
    os.ftruncate(fd, cut)
    os.fsync(fd)
    return cut


def _last_entry(fd: int, size: int, path: Path) -> tuple[int, str]:
    """The seq and hash of the last complete line of a file; ``(0, "")`` when empty."""
    if size == 0:
        return 0, ""
    end = size - 1  # the final newline
    start = end
    while start > 0:
        begin = max(0, start - _CHUNK)
        chunk = os.pread(fd, start - begin, begin)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            start = begin + newline + 1
            break
        start = begin
    line = os.pread(fd, end - start, start)
    try:
        entry, intact = decode(line)
    except EntryFormatError as exc:
        raise LogError(
            f"{path}: the last entry is corrupt ({exc}); run `aigre-policy log verify {path}`"
        ) from None
    if not intact:
        raise LogError(
            f"{path}: the last entry's hash does not match its content; "
            f"run `aigre-policy log verify {path}`"
        )
    return entry.seq, entry.hash
