"""The entry format of the decision log and the hash chain that links its lines.

Every line of a log file is one entry, written as canonical JSON (sorted keys, no
spaces, UTF-8) followed by ``\\n``::

    {"body":{...},"hash":"sha256:...","id":"...","kind":"decision",
     "prev":"sha256:...","seq":42,"time":"2025-03-11T14:02:10.123456Z","v":1}

``hash`` is the SHA-256 of the canonical JSON of the entry without ``hash``;
``prev`` is the ``hash`` of the entry before it (across rotated files), or
``GENESIS`` for the first entry of a log. ``seq`` counts entries from 1 without
gaps. Editing, removing, inserting or reordering a line therefore breaks either
the line's own hash, the next line's ``prev``, or the ``seq`` run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from aigre_policy.verdict import canonical_json

FORMAT_VERSION = 1
GENESIS = "sha256:" + "0" * 64

# Kinds a caller appends; ``recovery`` is written by the log itself after a crash.
KINDS = ("decision", "approval", "review", "outcome", "shadow")
RECOVERY = "recovery"
ALL_KINDS = (*KINDS, RECOVERY)

FIELDS = frozenset({"v", "seq", "id", "kind", "time", "prev", "body", "hash"})


@dataclass(frozen=True, slots=True)
class Entry:
    """One logged entry: a decision, approval, review, outcome, shadow or recovery."""

    seq: int
    id: str
    kind: str
    time: str
    prev: str
    hash: str
    body: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "seq": self.seq,
            "id": self.id,
            "kind": self.kind,
            "time": self.time,
            "prev": self.prev,
            "body": self.body,
            "hash": self.hash,
        }


def entry_hash(unhashed: dict[str, Any]) -> str:
    """The hash of an entry given without its ``hash`` field."""
    return "sha256:" + hashlib.sha256(canonical_json(unhashed)).hexdigest()


def seal(seq: int, entry_id: str, kind: str, time: str, prev: str, body: dict[str, Any]) -> Entry:
    """Build an entry and compute its hash."""
    unhashed = {
        "v": FORMAT_VERSION,
        "seq": seq,
        "id": entry_id,
        "kind": kind,
        "time": time,
        "prev": prev,
        "body": body,
    }
    return Entry(seq, entry_id, kind, time, prev, entry_hash(unhashed), body)


def seal_line(
    seq: int,
    entry_id: str,
    kind: str,
    time: str,
    prev: str,
    body: dict[str, Any],
    body_json: bytes,
) -> tuple[Entry, bytes]:
    """``seal`` and ``encode`` in one pass, with the body serialised once by the caller.

    Keys in canonical order are ``body, hash, id, kind, prev, seq, time, v``, so the
    unhashed form and the line differ only by the ``hash`` member after ``body``.
    """
    rest = b"".join(
        (
            b',"id":',
            canonical_json(entry_id),
            b',"kind":',
            canonical_json(kind),
            b',"prev":',
            canonical_json(prev),
            b',"seq":',
            str(seq).encode(),
            b',"time":',
            canonical_json(time),
            b',"v":%d}' % FORMAT_VERSION,
        )
    )
    digest = "sha256:" + hashlib.sha256(b'{"body":' + body_json + rest).hexdigest()
    line = b'{"body":' + body_json + b',"hash":"' + digest.encode() + b'"' + rest + b"\n"
    return Entry(seq, entry_id, kind, time, prev, digest, body), line


def encode(entry: Entry) -> bytes:
    """The line written for an entry, newline included."""
    return canonical_json(entry.to_dict()) + b"\n"


class EntryFormatError(ValueError):
    """A line that is not a well-formed entry."""


def decode(line: bytes | str) -> tuple[Entry, bool]:
    """Parse one line; return the entry and whether its stored hash matches its content.

    Raises ``EntryFormatError`` when the line is not JSON or lacks entry fields.
    """
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EntryFormatError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EntryFormatError("not a JSON object")
    missing = sorted(FIELDS - data.keys())
    if missing:
        raise EntryFormatError("missing " + ", ".join(f"`{m}`" for m in missing))
    extra = sorted(data.keys() - FIELDS)
    if extra:
        raise EntryFormatError("unknown " + ", ".join(f"`{e}`" for e in extra))
    if data["v"] != FORMAT_VERSION:
        raise EntryFormatError(f"unknown format version {data['v']!r}")
    seq, body = data["seq"], data["body"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise EntryFormatError(f"`seq` must be a positive integer, found {seq!r}")
    if not isinstance(body, dict):
        raise EntryFormatError("`body` must be an object")
    texts = {k: data[k] for k in ("id", "kind", "time", "prev", "hash")}
    for key, value in texts.items():
        if not isinstance(value, str):
            raise EntryFormatError(f"`{key}` must be a string, found {value!r}")
    stored = data.pop("hash")
    try:
        intact = entry_hash(data) == stored
    except ValueError as exc:  # a number JSON cannot carry canonically
        raise EntryFormatError(str(exc)) from None
    entry = Entry(seq, texts["id"], texts["kind"], texts["time"], texts["prev"], stored, body)
    return entry, intact
