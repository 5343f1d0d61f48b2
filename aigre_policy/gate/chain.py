"""The entry format of the decision log and the hash chain that links its lines.

Every line of a log file is one entry in **canonical form**: the entry's JSON
exactly as ``canonical_json`` writes it — object keys sorted by code point, no
whitespace between tokens, strings as UTF-8 with only ``"``, ``\\`` and the
control characters U+0000-U+001F escaped (``\\n``-style short escapes where JSON
has one, ``\\u00XX`` otherwise), numbers in Python's shortest round-trip form,
no NaN or infinity, no byte-order mark — followed by a single ``\\n`` (no
``\\r``)::

    {"body":{...},"hash":"sha256:...","id":"...","kind":"decision",
     "prev":"sha256:...","seq":42,"time":"2025-03-11T14:02:10.123456Z","v":1}

``hash`` is the SHA-256 of the line's own bytes with the ``,"hash":"..."``
member and the newline taken out (for a canonical line that is the canonical
JSON of the entry without ``hash``); ``prev`` is the ``hash`` of the entry
before it (across rotated files), or ``GENESIS`` for the first entry of a log.
``seq`` counts entries from 1 without gaps.

A line is only read as an entry when its bytes are that canonical form and no
object in it repeats a key: then one sequence of bytes has one meaning, and the
hash covers every byte a reader interprets. Editing, removing, inserting or
reordering a line therefore breaks either the line's form, its own hash, the
next line's ``prev``, or the ``seq`` run.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from aigre_policy.verdict import canonical_json

FORMAT_VERSION = 1
GENESIS = "sha256:" + "0" * 64
BOM = b"\xef\xbb\xbf"

# Kinds a caller appends; ``recovery`` is written by the log itself after a crash.
KINDS = ("decision", "approval", "review", "outcome", "shadow")
RECOVERY = "recovery"
ALL_KINDS = (*KINDS, RECOVERY)

FIELDS = frozenset({"v", "seq", "id", "kind", "time", "prev", "body", "hash"})
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

# problem codes a line can earn (see ``verify``)
NOT_AN_ENTRY = "V001"
NOT_CANONICAL = "V009"
DUPLICATE_KEY = "V010"


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
            _string(entry_id),
            b',"kind":',
            _string(kind),
            b',"prev":',
            _string(prev),
            b',"seq":',
            str(seq).encode(),
            b',"time":',
            _string(time),
            b',"v":%d}' % FORMAT_VERSION,
        )
    )
    digest = "sha256:" + hashlib.sha256(b'{"body":' + body_json + rest).hexdigest()
    line = b'{"body":' + body_json + b',"hash":"' + digest.encode() + b'"' + rest + b"\n"
    return Entry(seq, entry_id, kind, time, prev, digest, body), line


def _string(text: str) -> bytes:
    """``canonical_json(text)``: quoted as it is when nothing in it needs escaping (ids,
    kinds, digests and times always), through the encoder otherwise."""
    plain = type(text) is str and text.isascii() and text.isprintable()
    if plain and '"' not in text and "\\" not in text:
        return b'"' + text.encode() + b'"'
    return canonical_json(text)


def encode(entry: Entry) -> bytes:
    """The line written for an entry, newline included."""
    return canonical_json(entry.to_dict()) + b"\n"


class EntryFormatError(ValueError):
    """A line that is not a well-formed entry; ``code`` says how (V001, V009, V010)."""

    def __init__(self, message: str, code: str = NOT_AN_ENTRY):
        super().__init__(message)
        self.code = code


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return found


def _no_constant(name: str) -> Any:
    raise ValueError(f"`{name}` is not a JSON value")


def strict_json(line: bytes) -> Any:
    """Parse one line of UTF-8 JSON, refusing repeated keys, NaN and infinities.

    Raises ``EntryFormatError``: V010 for a repeated key, V001 for anything else.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EntryFormatError(f"not UTF-8 at byte {exc.start + 1}") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_object, parse_constant=_no_constant)
    except _DuplicateKey as exc:
        raise EntryFormatError(
            f"key `{exc.key}` appears twice in one object: readers disagree on which value counts",
            DUPLICATE_KEY,
        ) from None
    except RecursionError:
        raise EntryFormatError("not JSON: nested too deeply") from None
    except ValueError as exc:
        raise EntryFormatError(f"not JSON: {exc}") from None


def require_canonical(line: bytes, data: Any) -> None:
    """Raise V009 unless ``line`` is exactly the canonical form of ``data`` and ``\\n``."""
    try:
        canonical = canonical_json(data) + b"\n"
    except (ValueError, RecursionError) as exc:  # a lone surrogate, a huge integer
        raise EntryFormatError(f"no canonical form: {exc}", NOT_CANONICAL) from None
    if line == canonical:
        return
    if line.startswith(BOM):
        what = "a byte-order mark (EF BB BF) before the entry"
    elif line.endswith(b"\r\n"):
        what = "a carriage return before the newline (CRLF)"
    else:
        column = next(
            (i for i, (a, b) in enumerate(zip(line, canonical, strict=False)) if a != b),
            min(len(line), len(canonical)),
        )
        found = line[column : column + 12].decode("utf-8", "backslashreplace")
        wanted = canonical[column : column + 12].decode("utf-8", "backslashreplace")
        what = f"at column {column + 1}: found {found!r} where the canonical form has {wanted!r}"
    raise EntryFormatError(
        f"not in canonical form, {what}: the bytes were changed after writing", NOT_CANONICAL
    )


def line_hash(line: bytes, stored: str) -> str:
    """The hash of a canonical line: its bytes without its ``hash`` member and newline.

    In canonical order every member after ``hash`` holds a string or an integer,
    in which an unescaped ``"`` cannot occur, so the last ``,"hash":"…"`` is the member.
    """
    member = b',"hash":' + canonical_json(stored)
    start = line.rfind(member)
    if start < 0:
        raise EntryFormatError("the `hash` member is not where the canonical form puts it")
    end = len(line) - 1 if line.endswith(b"\n") else len(line)
    return "sha256:" + hashlib.sha256(line[:start] + line[start + len(member) : end]).hexdigest()


def _entry_of(data: Any) -> Entry:
    if not isinstance(data, dict):
        raise EntryFormatError("not a JSON object")
    missing = sorted(FIELDS - data.keys())
    if missing:
        raise EntryFormatError("missing " + ", ".join(f"`{m}`" for m in missing))
    extra = sorted(data.keys() - FIELDS)
    if extra:
        raise EntryFormatError("unknown " + ", ".join(f"`{e}`" for e in extra))
    if data["v"] != FORMAT_VERSION or isinstance(data["v"], bool):
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
    for key in ("prev", "hash"):
        if not DIGEST.fullmatch(texts[key]):
            raise EntryFormatError(f"`{key}` must be `sha256:` and 64 hex digits")
    return Entry(seq, texts["id"], texts["kind"], texts["time"], texts["prev"], texts["hash"], body)


@dataclass(frozen=True, slots=True)
class LineCheck:
    """What ``check_line`` found: the entry (if the line holds one), whether its
    hash matches its bytes (``None`` when the line is not canonical: unchecked),
    and the line's first flaw as ``(code, message)``."""

    entry: Entry | None
    intact: bool | None
    flaw: tuple[str, str] | None


def check_line(line: bytes) -> LineCheck:
    """Read one line strictly; never raises for bad content.

    A line that parses but is not canonical (or repeats a key) still yields its
    entry, so the chain around it can be checked; its hash is not.
    """
    body = line[len(BOM) :] if line.startswith(BOM) else line
    try:
        data = strict_json(body)
    except EntryFormatError as exc:
        if exc.code != DUPLICATE_KEY:
            return LineCheck(None, None, (exc.code, str(exc)))
        flaw: tuple[str, str] | None = (exc.code, str(exc))
        try:  # the entry as Python reads it (the last value of a repeated key)
            data = json.loads(body)
        except (ValueError, RecursionError):
            return LineCheck(None, None, flaw)
    else:
        flaw = None
    try:
        entry = _entry_of(data)
    except EntryFormatError as exc:
        return LineCheck(None, None, flaw or (exc.code, str(exc)))
    if flaw is None:
        try:
            require_canonical(line, data)
        except EntryFormatError as exc:
            flaw = (exc.code, str(exc))
    if flaw is not None:
        return LineCheck(entry, None, flaw)
    return LineCheck(entry, line_hash(line, entry.hash) == entry.hash, None)


def decode(line: bytes | str) -> tuple[Entry, bool]:
    """Parse one line; return the entry and whether its stored hash matches its bytes.

    Raises ``EntryFormatError`` when the line is not a canonical entry (with the
    problem's code: V001 not an entry, V009 not canonical, V010 a repeated key).
    """
    raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
    if not raw.endswith(b"\n"):
        raw += b"\n"
    result = check_line(raw)
    if result.flaw is not None:
        raise EntryFormatError(result.flaw[1], result.flaw[0])
    assert result.entry is not None and result.intact is not None
    return result.entry, result.intact
