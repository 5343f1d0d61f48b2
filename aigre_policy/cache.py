"""The on-disk compile cache: a pack compiled once is loaded, not compiled, on the next run.

An entry is keyed by the pack's content (``pack.yaml``, ``exemptions.yaml`` and every file
in ``policies/``, read byte for byte), the envelope overrides, the pack's absolute path, the
compiler's version (with the size and time of each of its files) and the Python that runs
it, so any change to any of them misses. A pack that extends another (``extends:``) is not
cached: its parents' files are not in the key. It holds the checked pack and its generated
Python as data; the evaluator is rebuilt from them on load. The source's syntax trees, most
of an entry, are unpickled only when something reads them (``check``'s summary, the
linter, the test runner): judging an action never does.

Whoever can write the cache directory must not be able to change a verdict or run code:

- each entry is sealed with HMAC-SHA256 under a per-user key kept *outside* the cache
  directory (``$XDG_CONFIG_HOME/aigre-policy/cache-key``, created 0600); an entry whose
  seal does not verify is ignored and rebuilt, and a key that others can read or write, or
  that another user owns, turns the cache off;
- only after the seal verifies is the entry unpickled, by an unpickler that builds nothing
  but the compiler's own data classes (no function, no other module);
- the generated Python is stored with its SHA-256, rechecked, and goes through the same
  allowlist (``sandbox.verify``) as a fresh compile before it is compiled (each
  ``explain_N`` on its first call: ``sandbox.load(..., lazy=True)``);
- the schema file a pack names outside ``policies/`` is stored with its SHA-256 and rechecked.

Location: ``$AIGRE_CACHE_DIR``, else ``$XDG_CACHE_HOME/aigre-policy``, else
``~/.cache/aigre-policy``. A cache that cannot be read or written is skipped: the pack is
compiled as if there were none. Entries of a compile that failed are never written.

Deferred imports: the compiler and the native backend load only on a cache miss or a
revived entry, keeping a cached start small.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import io
import json
import os
import pickle
import secrets
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PosixPath, PurePosixPath
from typing import Any

from aigre_policy.collector import collector_paused
from aigre_policy.version import __version__

FORMAT = b"aigre-policy compile cache 1\0"
_MAC_SIZE = 32
# the modules whose data classes an entry may hold (found by pickling a compiled pack)
_DATA_MODULES = frozenset(
    {
        "aigre_policy.checked",
        "aigre_policy.diagnostics",
        "aigre_policy.emitted",
        "aigre_policy.exemptions",
        "aigre_policy.ir",
        "aigre_policy.nodes",
        "aigre_policy.types",
    }
)
_PATH_CLASSES = {("pathlib", "PosixPath"): PosixPath, ("pathlib", "PurePosixPath"): PurePosixPath}


def cache_dir() -> Path:
    """Where entries live (see the module's docstring)."""
    given = os.environ.get("AIGRE_CACHE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aigre-policy"


def key_file() -> Path:
    """The file holding the key that seals entries: never inside the cache directory."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "aigre-policy" / "cache-key"


class CompileCache:
    """``compile(path, envelopes)``: ``compiler.compile_pack``, through the cache."""

    def __init__(self, directory: Path | None = None, key_path: Path | None = None):
        self.directory = directory or cache_dir()
        self.key_path = key_path or key_file()
        self.hits = 0  # for tests and --verbose output: how many loads the cache served
        self.misses = 0

    def compile(
        self,
        path: str | Path,
        envelopes: dict[str, dict[str, Any]] | None = None,
        *,
        evaluator: bool = True,
    ) -> Any:  # checked.CompileReport
        """``evaluator=False``: a hit stops at the sealed ``CheckedPack`` (``report.checked``;
        ``report.compiled`` is ``None``), as ``compile_pack(engine=None)`` does: none of the
        generated code is loaded. A miss compiles in full either way, to store the entry."""
        root = Path(path)
        secret = self._secret()
        name = None if secret is None else _entry_name(root, envelopes)
        if name is not None and secret is not None:
            with collector_paused():
                report = self._load(name, secret, evaluator)
            if report is not None:
                self.hits += 1
                return report
        self.misses += 1
        from aigre_policy.compiler import compile_pack  # the parser and checker: on a miss only

        report = compile_pack(root, envelopes)
        if name is not None and secret is not None and report.ok:
            self._store(name, secret, report)
        return report

    # -- the key -------------------------------------------------------------------------

    def _secret(self) -> bytes | None:
        """The sealing key, created on first use; ``None`` (no cache) when it is not ours
        alone or cannot be made."""
        try:
            return _read_key(self.key_path)
        except FileNotFoundError:
            pass
        except OSError:
            return None
        try:
            self.key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
            return _read_key(self.key_path)
        except OSError:  # a read-only home, or another process made it first
            try:
                return _read_key(self.key_path)
            except OSError:
                return None

    # -- entries -------------------------------------------------------------------------

    def _entry(self, name: str) -> Path:
        return self.directory / f"{name}.pack"

    def _load(self, name: str, secret: bytes, evaluator: bool = True) -> Any:
        try:
            blob = self._entry(name).read_bytes()
        except OSError:
            return None
        mac, payload = blob[:_MAC_SIZE], blob[_MAC_SIZE:]
        if not hmac.compare_digest(mac, _seal(secret, name, payload)):
            return None  # tampered, truncated or sealed under another key: rebuilt
        try:
            stored = _DataUnpickler(io.BytesIO(payload)).load()
            return _revive(name, stored, evaluator)
        except Exception:  # a stale layout after an upgrade: rebuilt like any bad entry
            return None

    def _store(self, name: str, secret: bytes, report: Any) -> None:
        from dataclasses import replace

        compiled = report.compiled
        if compiled is None or compiled.handwritten or compiled.evaluator.engine != "native":
            return  # hand-written Rego is checked by regopy on each load
        python = compiled.python
        trees = io.BytesIO()
        _DataPickler(trees, protocol=pickle.HIGHEST_PROTOCOL).dump(tuple(compiled.checked.modules))
        stored = {
            "name": name,
            # the validator holds compiled code of its own: rebuilt from the schema on load;
            # the syntax trees are most of an entry and evaluating never reads them: they
            # are unpickled (by the same unpickler) when something first asks for them
            "checked": replace(compiled.checked, validator=None, modules=()),
            "modules": trees.getvalue(),
            "python": python,
            "python_sha256": hashlib.sha256(python.source.encode()).hexdigest(),
            "files": _outside_files(compiled),
            "diagnostics": report.diagnostics,
            "sources": dict(report.sources.files),
            "stages": list(report.stages_run),
        }
        try:
            buffer = io.BytesIO()
            _DataPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(stored)
            payload = buffer.getvalue()
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(_seal(secret, name, payload) + payload)
            os.replace(temporary, self._entry(name))
        except (OSError, pickle.PicklingError, TypeError, AttributeError):
            return  # a cache that cannot be written only costs the next compile


def _read_key(path: Path) -> bytes:
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PermissionError(f"{path} must be owned by you and readable by you alone")
        key = handle.read()
    if len(key) < 32:
        raise PermissionError(f"{path} is too short to be a key")
    return key


def _seal(secret: bytes, name: str, payload: bytes) -> bytes:
    return hmac.new(secret, FORMAT + name.encode() + b"\0" + payload, hashlib.sha256).digest()


def compiler_version() -> str:
    """The version, and the size and time of every module and the grammar: a development
    checkout that changes the compiler without a new version still misses. The Python
    version too: an entry pickled by one interpreter is not revived by another."""
    package = os.path.dirname(os.path.realpath(__file__))
    parent = os.path.dirname(package)
    h = hashlib.sha256(__version__.encode())
    h.update(f"\0{sys.implementation.cache_tag}\0{sys.version}\0".encode())
    stamps = _stamps(package, ".py", len(parent) + 1, recursive=True)
    stamps += _stamps(os.path.join(parent, "grammar"), ".lark", len(parent) + 1)
    stamps += _stamps(os.path.join(package, "grammar"), ".lark", len(parent) + 1)
    stamps += _stamps(os.path.join(package, "schemas"), ".json", len(parent) + 1)
    h.update("\0".join(sorted(stamps)).encode())
    return h.hexdigest()


def _stamps(folder: str, suffix: str, cut: int, recursive: bool = False) -> list[str]:
    """``path:size:mtime`` of each file under ``folder`` whose name ends in ``suffix``,
    the path from ``cut`` on; one ``scandir`` per folder (a start runs this every time)."""
    found: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return found
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if recursive and entry.name != "__pycache__":
                    found += _stamps(entry.path, suffix, cut, recursive)
            elif entry.name.endswith(suffix):
                info = entry.stat()
                found.append(f"{entry.path[cut:]}:{info.st_size}:{info.st_mtime_ns}")
        except OSError:
            continue
    return found


def _entry_name(root: Path, envelopes: dict[str, dict[str, Any]] | None) -> str | None:
    """The entry's name: a digest of the pack's content, overrides, path and the compiler;
    ``None`` when the pack cannot be read (the compile reports why)."""
    h = hashlib.sha256(FORMAT)
    h.update(compiler_version().encode() + b"\0")
    h.update(str(root.resolve()).encode() + b"\0")
    try:
        h.update(json.dumps(envelopes or {}, sort_keys=True, default=repr).encode() + b"\0")
        manifest = (root / "pack.yaml").read_bytes()
        if b"extends" in manifest:  # a parent's files are not covered: compile afresh
            return None
        h.update(b"pack.yaml\0" + manifest + b"\0")
        exemptions = root / "exemptions.yaml"
        if exemptions.is_file():
            h.update(b"exemptions.yaml\0" + exemptions.read_bytes() + b"\0")
        policies = root / "policies"
        if policies.is_dir():
            for file in sorted(policies.iterdir()):
                if file.is_file():
                    h.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    except (OSError, TypeError, ValueError):
        return None
    return h.hexdigest()


def _outside_files(compiled: Any) -> dict[str, str]:
    """Files the compile read that the entry's name does not cover: a schema file."""
    schema = compiled.manifest.input_schema
    if schema.startswith("builtin:"):
        return {}
    path = compiled.root / schema
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest()}


def _revive(name: str, stored: dict[str, Any], evaluator: bool = True) -> Any:
    """The ``CompileReport`` an entry stands for, once everything in it rechecks; without
    its evaluator (``compiled`` ``None``) unless ``evaluator``."""
    from dataclasses import replace

    from aigre_policy.checked import CompiledPack, CompileReport
    from aigre_policy.diagnostics import SourceText
    from aigre_policy.validation import InputValidator

    if stored["name"] != name:
        return None
    python = stored["python"]
    if hashlib.sha256(python.source.encode()).hexdigest() != stored["python_sha256"]:
        return None
    for file, digest in stored["files"].items():
        if hashlib.sha256(Path(file).read_bytes()).hexdigest() != digest:
            return None
    # the allowlist runs again here; the schema passed its metaschema check when the
    # sealed entry was made
    checked = stored["checked"]
    validator = InputValidator(checked.input_schema, schema_checked=True)
    checked = replace(checked, validator=validator, modules=_SyntaxTrees(stored["modules"]))
    compiled = None
    if evaluator:
        from aigre_policy import native

        compiled = CompiledPack(checked, native.load_emitted(checked, python, lazy=True))
    return CompileReport(
        list(stored["diagnostics"]),
        SourceText(stored["sources"]),
        compiled,
        list(stored["stages"]),
        checked,
    )


class _SyntaxTrees(Sequence[Any]):
    """A revived pack's syntax trees (``CheckedPack.modules``), unpickled when first read:
    a cached ``eval`` never reads them, and they are most of what an entry holds."""

    __slots__ = ("_payload", "_trees")

    def __init__(self, payload: bytes):
        self._payload = payload
        self._trees: tuple[Any, ...] | None = None

    def _load(self) -> tuple[Any, ...]:
        if self._trees is None:
            self._trees = tuple(_DataUnpickler(io.BytesIO(self._payload)).load())
            self._payload = b""
        return self._trees

    def __getitem__(self, index: Any) -> Any:
        return self._load()[index]

    def __len__(self) -> int:
        return len(self._load())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._load())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _SyntaxTrees):
            other = other._load()
        return self._load() == other if isinstance(other, tuple) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._load())

    def __reduce__(self) -> Any:  # pickled again (a copy of the pack): as the plain tuple
        return tuple, (self._load(),)


class _DataPickler(pickle.Pickler):
    """Writes a data class whose ``__init__`` only stores its fields as a call of the class
    with them: unpickled by ``__init__`` that way, a pack's tens of thousands of nodes load
    in half the time of the default ``__setstate__``, which looks their fields up each time."""

    def reducer_override(self, obj: Any) -> Any:
        names = _init_fields(type(obj))
        if names is None:
            return NotImplemented
        return type(obj), tuple(getattr(obj, name) for name in names)


_INIT_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _init_fields(cls: type) -> tuple[str, ...] | None:
    """The fields ``cls(*values)`` takes in order, when ``cls`` is a data class of the
    compiler whose generated ``__init__`` does nothing but store them; else ``None``."""
    try:
        return _INIT_FIELDS[cls]
    except KeyError:
        pass
    names = None
    if (
        dataclasses.is_dataclass(cls)
        and cls.__module__ in _DATA_MODULES
        and not hasattr(cls, "__post_init__")
    ):
        fields = dataclasses.fields(cls)
        code = getattr(cls.__init__, "__code__", None)
        generated = code is not None and code.co_filename.startswith("<")  # not one of ours
        if generated and all(f.init and not f.kw_only for f in fields):
            names = tuple(f.name for f in fields)
    _INIT_FIELDS[cls] = names
    return names


class _DataUnpickler(pickle.Unpickler):
    """Builds only the compiler's data classes (dataclasses and enums of its modules) and
    paths: an entry names no function, so unpickling it runs none."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PATH_CLASSES:
            return _PATH_CLASSES[(module, name)]
        if module in _DATA_MODULES and "." not in name:
            found = getattr(__import__(module, fromlist=[name]), name, None)
            if isinstance(found, type) and (
                dataclasses.is_dataclass(found) or issubclass(found, enum.Enum)
            ):
                return found
        raise pickle.UnpicklingError(f"a cache entry may not hold {module}.{name}")
