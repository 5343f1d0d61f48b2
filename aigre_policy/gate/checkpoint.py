"""Signed checkpoints of a decision log: a key holder's statement of how far the chain ran.

A chain proves that lines were not changed *relative to each other*; whoever can
write the file can still recompute every hash, or cut the newest entries off.
A checkpoint binds the chain to a key the file's writer need not hold: every
``checkpoint_entries`` entries or ``checkpoint_seconds`` seconds the log signs,
with Ed25519, the statement "log L held N entries and the N-th had hash H at
time T". It is kept in two places: ``PATH.checkpoints`` beside the log, and the
ledger (``SqliteLedger.add_checkpoint``). ``verify_log(..., key=...)`` then
catches a recomputed chain (H differs) and a cut tail (N is past the end).

One checkpoint per line, in the log's canonical form (``chain``)::

    {"entries":1200,"head":"sha256:…","key":"sha256:…","log":"sha256:…",
     "sig":"…","time":"2026-03-11T14:02:10.123456Z","v":1}

- ``log``: the log's id, the hash of its first entry (seq 1);
- ``entries``: the seq of the last entry covered; ``head``: that entry's hash;
- ``time``: when it was signed, by the log's clock;
- ``key``: ``sha256:`` + SHA-256 of the signer's raw 32-byte public key;
- ``sig``: base64 of the Ed25519 signature of ``SIGNED_PREFIX`` followed by the
  canonical JSON of the other fields.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aigre_policy.gate.chain import (
    DIGEST,
    EntryFormatError,
    require_canonical,
    strict_json,
)
from aigre_policy.verdict import canonical_json

CHECKPOINT_VERSION = 1
SIGNED_PREFIX = b"aigre-policy decision-log checkpoint v1\n"  # a signature means nothing else
SUFFIX = ".checkpoints"
DEFAULT_ENTRIES = 1000
DEFAULT_SECONDS = 10.0
_FIELDS = frozenset({"entries", "head", "key", "log", "sig", "time", "v"})


class KeyFileError(ValueError):
    """A key file that cannot be used; the message is one line naming the file."""


class CheckpointStore(Protocol):
    """The second place checkpoints are kept (the ledger implements it)."""

    def add_checkpoint(self, log_id: str, entries: int, line: str) -> None: ...

    def checkpoints(self, log_id: str) -> list[str]: ...


def checkpoint_path(log_path: str | Path) -> Path:
    """Where a log's checkpoints are kept: ``PATH.checkpoints``."""
    path = Path(log_path)
    return path.with_name(path.name + SUFFIX)


# -- keys ------------------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def generate_key_pair(private_path: str | Path, public_path: str | Path) -> str:
    """Write a new Ed25519 key pair as PEM (the private file mode 0600); return its key id.

    Refuses to overwrite either file (``KeyFileError``).
    """
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for path in (private_path, public_path):
        if Path(path).exists():
            raise KeyFileError(f"{path}: already exists; not overwriting a key")
    _write_new(Path(private_path), private_pem, 0o600)
    _write_new(Path(public_path), public_pem, 0o644)
    return key_id(key.public_key())


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _read_key_file(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the key: {exc.strerror or exc}") from None


def load_private_key(source: Ed25519PrivateKey | str | Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM (PKCS#8, unencrypted) file, or the key itself."""
    if isinstance(source, Ed25519PrivateKey):
        return source
    data = _read_key_file(source)
    if b"PUBLIC KEY" in data:
        raise KeyFileError(f"{source}: a public key; signing needs the private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError(
            f"{source}: the private key is encrypted; give an unencrypted one"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(f"{source}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(
            f"{source}: the key is {_kind(key)}; checkpoints are signed with Ed25519"
        )
    return key


def load_public_key(source: Ed25519PublicKey | str | Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM (SubjectPublicKeyInfo) file, or the key itself."""
    if isinstance(source, Ed25519PublicKey):
        return source
    data = _read_key_file(source)
    if b"PRIVATE KEY" in data:
        raise KeyFileError(f"{source}: a private key; verify with the public key (.pub)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(f"{source}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(
            f"{source}: the key is {_kind(key)}; checkpoints are signed with Ed25519"
        )
    return key


def _kind(key: Any) -> str:
    return type(key).__name__.removeprefix("_").replace("PrivateKey", "").replace("PublicKey", "")


# -- the checkpoint --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    log: str
    entries: int
    head: str
    time: str
    key: str
    sig: str

    def unsigned(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "head": self.head,
            "key": self.key,
            "log": self.log,
            "time": self.time,
            "v": CHECKPOINT_VERSION,
        }

    def line(self) -> bytes:
        """The checkpoint's line, newline included."""
        return canonical_json({**self.unsigned(), "sig": self.sig}) + b"\n"

    def signature_problem(self, public_key: Ed25519PublicKey) -> str | None:
        """Why the signature does not hold under ``public_key``; ``None`` when it does."""
        if self.key != key_id(public_key):
            return f"signed by another key ({self.key}), not the one given"
        try:
            signature = base64.b64decode(self.sig, validate=True)
            public_key.verify(signature, SIGNED_PREFIX + canonical_json(self.unsigned()))
        except (InvalidSignature, binascii.Error, ValueError):
            return "the signature does not match its content: the checkpoint was edited"
        return None


def sign(
    private_key: Ed25519PrivateKey, log: str, entries: int, head: str, time: str
) -> Checkpoint:
    unsigned = Checkpoint(log, entries, head, time, key_id(private_key.public_key()), "")
    signature = private_key.sign(SIGNED_PREFIX + canonical_json(unsigned.unsigned()))
    return Checkpoint(log, entries, head, time, unsigned.key, base64.b64encode(signature).decode())


def parse(line: bytes) -> Checkpoint:
    """A checkpoint from its line (with or without the newline); ``EntryFormatError`` if not."""
    raw = line if line.endswith(b"\n") else line + b"\n"
    data = strict_json(raw)
    require_canonical(raw, data)
    if not isinstance(data, dict) or data.keys() != _FIELDS:
        fields = ", ".join(sorted(_FIELDS))
        raise EntryFormatError(f"not a checkpoint: expected the fields {fields}")
    if data["v"] != CHECKPOINT_VERSION or isinstance(data["v"], bool):
        raise EntryFormatError(f"unknown checkpoint version {data['v']!r}")
    entries = data["entries"]
    if not isinstance(entries, int) or isinstance(entries, bool) or entries < 1:
        raise EntryFormatError(f"`entries` must be a positive integer, found {entries!r}")
    texts = {k: data[k] for k in ("log", "head", "time", "key", "sig")}
    for name, value in texts.items():
        if not isinstance(value, str):
            raise EntryFormatError(f"`{name}` must be a string, found {value!r}")
    for name in ("log", "head", "key"):
        if not DIGEST.fullmatch(texts[name]):
            raise EntryFormatError(f"`{name}` must be `sha256:` and 64 hex digits")
    return Checkpoint(
        texts["log"], entries, texts["head"], texts["time"], texts["key"], texts["sig"]
    )


def last_checkpoint(path: Path) -> Checkpoint | None:
    """The last well-formed checkpoint of a checkpoint file (signature not checked)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 4096))
            tail = handle.read().splitlines()
    except OSError:  # none yet, or unreadable: the writer reports it when it writes one
        return None
    for line in reversed(tail):
        try:
            return parse(line)
        except EntryFormatError:
            continue
    return None
