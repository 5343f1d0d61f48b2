"""OPA bundles: write a compiled Rego program as a reproducible ``.tar.gz``, and read one back.

The layout is OPA's bundle file format: the ``.rego`` modules at their bundle
paths, one ``data.json`` at the top holding the whole data document (nested
under the bundle's roots), and a ``.manifest`` with ``revision``, ``roots``,
``rego_version`` and ``metadata``. The reader checks the rules OPA enforces
when it activates a bundle (roots do not overlap; every package and every data
value sits under a root) so a bundle that passes here loads in OPA unchanged.

Writing is reproducible byte for byte: members in a fixed order, fixed
mtime/uid/gid/owner names/modes, and a gzip header without a file name or time.
A bundle may be signed (``.signatures.json``, see ``rego.signing``); the reader
verifies it when given a key.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import yaml

from aigre_policy.compiler import compile_pack
from aigre_policy.diagnostics import Diagnostic, SourceText
from aigre_policy.rego.emit import emit_rego
from aigre_policy.rego.signing import (
    SIGNATURES_FILE,
    BundleKey,
    BundleSigner,
    SignatureError,
    Verified,
    verify,
)
from aigre_policy.verdict import canonical_json
from aigre_policy.version import __version__

MANIFEST_FILE = ".manifest"
DATA_FILE = "data.json"
DATA_FILES = ("data.json", "data.yaml", "data.yml")  # the data files OPA loads
REGO_VERSION = 1  # the modules are written in Rego v1 syntax
COMPILER = "aigre-policy"
MAX_UNPACKED_BYTES = 64 * 1024 * 1024  # refuse gzip bombs long before memory runs out
_FILE_MODE = 0o644


class BundleError(Exception):
    """A file that is not a well-formed OPA bundle; the message says what is wrong."""


class BundleSignatureError(BundleError):
    """A bundle whose signature is missing, unexpected or does not verify."""


class RegoProgramLike(Protocol):
    """What the writer needs from a compiled program (``rego.emit.RegoProgram`` has it)."""

    @property
    def package(self) -> str: ...
    @property
    def modules(self) -> Mapping[str, str]: ...
    @property
    def data(self) -> Mapping[str, Any]: ...
    @property
    def roots(self) -> Sequence[str]: ...
    @property
    def entrypoint(self) -> str: ...


@dataclass(frozen=True, slots=True)
class PackIdentity:
    """The pack a bundle was built from, recorded in the manifest's metadata."""

    name: str
    version: str
    digest: str


@dataclass(frozen=True, slots=True)
class BundleModule:
    path: str
    package: str
    source: str

    @property
    def size(self) -> int:
        return len(self.source.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Bundle:
    """A bundle as read back: its manifest, its modules and its whole data document."""

    manifest: dict[str, Any]
    modules: tuple[BundleModule, ...]
    data: dict[str, Any]
    files: tuple[tuple[str, int], ...] = field(default=())  # (member, size), archive order
    signed: bool = False  # holds .signatures.json
    signature: Verified | None = None  # what the signature says, when it was verified

    @property
    def revision(self) -> str:
        return self.manifest.get("revision", "")

    @property
    def roots(self) -> list[str]:
        return list(self.manifest.get("roots", [""]))

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.manifest.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def entrypoint(self) -> str | None:
        """The rule a caller queries (``aigre/<pkg>/decision``), from the metadata if recorded."""
        value = self.metadata.get("entrypoint")
        return value if isinstance(value, str) else None

    def data_roots(self) -> list[str]:
        """The bundle roots under which ``data.json`` holds something."""
        found = []
        for root in self.roots:
            if _lookup(self.data, root) is not None:
                found.append(root)
        return found

    def data_at(self, root: str) -> Any:
        return _lookup(self.data, root)


# ---------------------------------------------------------------------------- paths


def slash_path(ref: str) -> str:
    """``data.aigre.x.decision``, ``aigre.x.decision`` or ``aigre/x/decision`` as a slash path."""
    text = ref.strip().strip("/")
    if "/" in text:
        return text
    segments = package_segments(text)
    if segments[:1] == ["data"]:
        segments = segments[1:]
    return "/".join(segments)


_REF_TOKEN = re.compile(r'\s*(?:([A-Za-z_][A-Za-z0-9_]*)|\[\s*"((?:[^"\\]|\\.)*)"\s*\]|(\.))')


def package_segments(ref: str) -> list[str]:
    """The segments of a Rego ref such as ``a.b["c-d"].e``; ``BundleError`` if it is not one."""
    segments: list[str] = []
    pos = 0
    expect_name = True
    while pos < len(ref):
        match = _REF_TOKEN.match(ref, pos)
        if match is None or match.end() == pos:
            raise BundleError(f"`{ref}` is not a package path")
        name, quoted, dot = match.groups()
        if dot:
            if expect_name:
                raise BundleError(f"`{ref}` is not a package path")
            expect_name = True
        elif name is not None:
            if not expect_name:
                raise BundleError(f"`{ref}` is not a package path")
            segments.append(name)
            expect_name = False
        else:
            segments.append(json.loads(f'"{quoted}"'))
            expect_name = False
        pos = match.end()
    if not segments or expect_name:
        raise BundleError(f"`{ref}` is not a package path")
    return segments


_PACKAGE_LINE = re.compile(r"^[ \t]*package[ \t]+([^#\n]+?)[ \t]*(?:#.*)?$", re.MULTILINE)


def module_package(source: str, path: str) -> str:
    """The package a Rego module declares (``aigre.x``), read from its ``package`` line."""
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _PACKAGE_LINE.match(line)
        if match is None:
            raise BundleError(f"{path}: a Rego module must start with a `package` line")
        ref = match.group(1)
        package_segments(ref)  # validates
        return ref
    raise BundleError(f"{path}: a Rego module must start with a `package` line")


def _root_segments(root: str) -> list[str]:
    return root.split("/")


def _root_contains(root: str, path: str) -> bool:
    """OPA's rule: the empty root holds everything; otherwise ``root`` must prefix ``path``."""
    if root == "":
        return True
    outer, inner = _root_segments(root), _root_segments(path)
    return len(outer) <= len(inner) and inner[: len(outer)] == outer


def roots_overlap(a: str, b: str) -> bool:
    return _root_contains(a, b) or _root_contains(b, a)


def _lookup(document: Mapping[str, Any], path: str) -> Any:
    node: Any = document
    for segment in path.split("/") if path else []:
        if not isinstance(node, Mapping) or segment not in node:
            return None
        node = node[segment]
    return node


# ---------------------------------------------------------------------------- layout rules


def layout_problems(
    roots: Sequence[str], packages: Mapping[str, str], data: Mapping[str, Any]
) -> list[str]:
    """What OPA would refuse when activating a bundle: overlapping roots, a package or data
    outside every root. ``packages`` maps module path to its package ref."""
    problems: list[str] = []
    roots = [root.strip("/") for root in roots]
    for i, first in enumerate(roots):
        for second in roots[i + 1 :]:
            if roots_overlap(first, second):
                problems.append(f"the manifest's roots overlap: `{first}` and `{second}`")
    for path, package in sorted(packages.items()):
        package_path = "/".join(package_segments(package))
        if not any(_root_contains(root, package_path) for root in roots):
            problems.append(
                f"{path}: package `{package}` is outside the bundle's roots {_show(roots)}"
            )
    problems += _data_outside(roots, data, "")
    return problems


def _data_outside(roots: Sequence[str], node: Any, path: str) -> list[str]:
    # the walk OPA's manifest validation does: a value is fine under a root; an object on
    # the way to a root is walked into; anything else lies outside every root
    if path and any(_root_contains(root, path) for root in roots):
        return []
    if "" in roots:
        return []
    if isinstance(node, Mapping):
        if path and not any(_root_contains(path, root) for root in roots):
            return [f"data at `/{path}` is outside the bundle's roots {_show(roots)}"]
        problems: list[str] = []
        for key in sorted(node):
            problems += _data_outside(roots, node[key], f"{path}/{key}" if path else str(key))
        return problems
    return [f"data at `/{path}` is outside the bundle's roots {_show(roots)}"]


def _show(roots: Sequence[str]) -> str:
    return "[" + ", ".join(f"`{root}`" for root in roots) + "]"


# ---------------------------------------------------------------------------- writing


def content_digest(modules: Mapping[str, str], data: Mapping[str, Any]) -> str:
    """SHA-256 over what the bundle evaluates: each module by path and text, then the data."""
    h = hashlib.sha256()
    for path in sorted(modules):
        h.update(path.encode() + b"\0" + modules[path].encode() + b"\0")
    h.update(canonical_json(data))
    return "sha256:" + h.hexdigest()


def bundle_manifest(
    program: RegoProgramLike, pack: PackIdentity, compiler_version: str
) -> dict[str, Any]:
    """The ``.manifest`` document: OPA's fields, and what built the bundle in ``metadata``."""
    digest = content_digest(program.modules, program.data)
    return {
        "revision": f"{pack.version}+{digest}",
        "roots": [root.strip("/") for root in program.roots],
        "rego_version": REGO_VERSION,
        "metadata": {
            "pack": {"name": pack.name, "version": pack.version, "digest": pack.digest},
            "content_digest": digest,
            "entrypoint": slash_path(program.entrypoint),
            "compiler": {"name": COMPILER, "version": compiler_version},
        },
    }


def bundle_members(
    program: RegoProgramLike,
    pack: PackIdentity,
    compiler_version: str,
    signer: BundleSigner | None = None,
) -> list[tuple[str, bytes]]:
    """The bundle's files in archive order: ``.manifest``, ``.signatures.json`` when signed,
    ``data.json``, modules by path.

    Raises ``BundleError`` if the program breaks a rule OPA enforces or cannot be signed.
    """
    modules = {_member_name(path): source for path, source in program.modules.items()}
    if not modules:
        raise BundleError("the program has no Rego modules")
    if DATA_FILE in modules or MANIFEST_FILE in modules:
        raise BundleError("a module path collides with data.json or .manifest")
    packages = {path: module_package(source, path) for path, source in modules.items()}
    problems = layout_problems(program.roots, packages, program.data)
    if problems:
        raise BundleError("; ".join(problems))
    manifest = bundle_manifest(program, pack, compiler_version)
    members = [
        (MANIFEST_FILE, _json_bytes(manifest)),
        (DATA_FILE, _json_bytes(program.data)),
    ]
    members += [(path, modules[path].encode("utf-8")) for path in sorted(modules)]
    if signer is not None:
        try:
            members.insert(1, (SIGNATURES_FILE, signer.signatures_file(members)))
        except SignatureError as exc:
            raise BundleSignatureError(str(exc)) from None
    return members


def write_bundle(
    program: RegoProgramLike,
    pack: PackIdentity,
    compiler_version: str,
    signer: BundleSigner | None = None,
) -> bytes:
    """The gzipped tarball, identical bytes for identical inputs (and a deterministic
    signature algorithm: RS256, EdDSA and HS256 are; ECDSA and RSA-PSS are not)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in bundle_members(program, pack, compiler_version, signer):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            info.mode = _FILE_MODE
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(content))
    packed = io.BytesIO()
    # filename="" leaves the name out of the gzip header; mtime=0 fixes its time field
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def _json_bytes(value: Any) -> bytes:
    return (
        json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    ).encode("utf-8")


def _member_name(path: str) -> str:
    name = str(PurePosixPath("/", path)).lstrip("/")
    parts = PurePosixPath(name).parts
    if not name or ".." in PurePosixPath(path).parts or not parts:
        raise BundleError(f"`{path}` is not a path inside a bundle")
    if not name.endswith(".rego"):
        raise BundleError(f"module `{path}` must end in .rego")
    return name


@dataclass(frozen=True, slots=True)
class PackBuild:
    """A pack built as a bundle: the archive bytes, or the diagnostics that stopped it."""

    archive: bytes | None
    diagnostics: tuple[Diagnostic, ...]
    sources: SourceText
    program: RegoProgramLike | None = None
    pack: PackIdentity | None = None
    problem: str | None = None  # the program broke a bundle rule (a compiler fault)

    @property
    def ok(self) -> bool:
        return self.archive is not None


def build_pack_bundle(
    path: str | Path,
    envelopes: dict[str, dict[str, Any]] | None = None,
    signer: BundleSigner | None = None,
) -> PackBuild:
    """Compile the pack at ``path`` for the Rego target and write its bundle, signed with
    ``signer`` if given; never raises for a bad pack: a pack that does not compile, or not to
    Rego, comes back with its diagnostics. ``BundleSignatureError`` if it cannot be signed."""
    report = compile_pack(path, envelopes)
    if not report.ok or report.compiled is None:
        return PackBuild(None, tuple(report.diagnostics), report.sources)
    compiled = report.compiled
    program = emit_rego(compiled)
    diagnostics = (*report.diagnostics, *program.diagnostics)
    identity = PackIdentity(compiled.manifest.name, compiled.manifest.version, compiled.digest)
    if not program.ok:
        return PackBuild(None, diagnostics, report.sources, program, identity)
    try:
        archive = write_bundle(program, identity, __version__, signer)
    except BundleSignatureError:
        raise
    except BundleError as exc:
        problem = f"the Rego program breaks OPA's bundle rules: {exc}"
        return PackBuild(None, diagnostics, report.sources, program, identity, problem)
    return PackBuild(archive, diagnostics, report.sources, program, identity)


# ---------------------------------------------------------------------------- reading


def read_bundle(
    blob: bytes,
    name: str = "bundle",
    verification_key: BundleKey | None = None,
    scope: str = "",
) -> Bundle:
    """Parse and check a bundle; ``BundleError`` with a clear message for anything wrong.

    With ``verification_key`` the bundle must be signed and its signature must verify
    (``BundleSignatureError`` otherwise) before anything else of it is read.
    """
    tar_bytes = _gunzip(blob, name)
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as archive:
            files = _regular_files(archive, name)
    except tarfile.TarError as exc:
        raise BundleError(f"{name}: not a tar archive inside the gzip stream ({exc})") from None
    signed = any(path == SIGNATURES_FILE for path, _ in files)
    verified = None
    if verification_key is not None:
        try:
            verified = verify(files, verification_key, scope)
        except SignatureError as exc:
            raise BundleSignatureError(f"{name}: {exc}") from None
    try:
        return _parse_members(files, signed, verified, name)
    except RecursionError:  # a document nested past what the parsers can walk
        raise BundleError(f"{name}: a document in the bundle is nested too deeply") from None


def _parse_members(
    files: list[tuple[str, bytes]], signed: bool, verified: Verified | None, name: str
) -> Bundle:
    manifest: dict[str, Any] | None = None
    modules: list[BundleModule] = []
    data: dict[str, Any] = {}
    for path, body in files:
        base = PurePosixPath(path).name
        if path == MANIFEST_FILE:
            manifest = _manifest(body, name)
        elif base in DATA_FILES:
            _insert(data, PurePosixPath(path).parent, _data(body, path, name), path, name)
        elif path.endswith(".rego"):
            source = _text(body, path, name)
            modules.append(BundleModule(path, _package(source, path, name), source))
    if manifest is None:
        raise BundleError(f"{name}: no .manifest: not a bundle built by aigre-policy")
    packages = {module.path: module.package for module in modules}
    problems = layout_problems(manifest["roots"], packages, data)
    if problems:
        raise BundleError(f"{name}: " + "; ".join(problems))
    sizes = tuple((p, len(b)) for p, b in files)
    return Bundle(manifest, tuple(modules), data, sizes, signed, verified)


def _regular_files(archive: tarfile.TarFile, name: str) -> list[tuple[str, bytes]]:
    """Each file of the archive with its bytes, in archive order; directories skipped."""
    files: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    try:
        members = archive.getmembers()
    except EOFError as exc:
        raise BundleError(f"{name}: the tar archive is cut short ({exc})") from None
    for member in members:
        if member.isdir():
            continue
        path = _normalised(member.name, name)
        if not member.isreg():
            raise BundleError(f"{name}: `{member.name}` is not a regular file")
        if path in seen:
            raise BundleError(f"{name}: `{path}` appears twice")
        seen.add(path)
        content = archive.extractfile(member)
        files.append((path, content.read() if content is not None else b""))
    return files


def _gunzip(blob: bytes, name: str) -> bytes:
    if blob[:2] != b"\x1f\x8b":
        if len(blob) >= 262 and blob[257:262] == b"ustar":
            raise BundleError(f"{name}: a tar archive without gzip: OPA bundles are .tar.gz")
        raise BundleError(f"{name}: not a gzip file (OPA bundles are .tar.gz)")
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(blob), mode="rb") as gz:
            unpacked = gz.read(MAX_UNPACKED_BYTES + 1)
    except EOFError:
        raise BundleError(f"{name}: the gzip stream is truncated") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise BundleError(f"{name}: the gzip stream is damaged ({exc})") from None
    if len(unpacked) > MAX_UNPACKED_BYTES:
        raise BundleError(f"{name}: unpacks to more than {MAX_UNPACKED_BYTES} bytes")
    return unpacked


def _normalised(member: str, name: str) -> str:
    parts = [part for part in PurePosixPath(member).parts if part not in ("/", ".")]
    if not parts or ".." in parts:
        raise BundleError(f"{name}: `{member}` points outside the bundle")
    return "/".join(parts)


def _text(body: bytes, path: str, name: str) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError(f"{name}: {path} is not UTF-8 text") from None


def _manifest(body: bytes, name: str) -> dict[str, Any]:
    try:
        value = json.loads(_text(body, MANIFEST_FILE, name))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{name}: .manifest is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BundleError(f"{name}: .manifest must hold a JSON object")
    if not isinstance(value.get("revision", ""), str):
        raise BundleError(f"{name}: .manifest `revision` must be a string")
    roots = value.get("roots", [""])
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise BundleError(f"{name}: .manifest `roots` must be a list of strings")
    value["roots"] = [root.strip("/") for root in roots]
    if "rego_version" in value and value["rego_version"] not in (0, 1):
        raise BundleError(f"{name}: .manifest `rego_version` must be 0 or 1")
    if "metadata" in value and not isinstance(value["metadata"], dict):
        raise BundleError(f"{name}: .manifest `metadata` must be an object")
    return value


def _data(body: bytes, path: str, name: str) -> Any:
    text = _text(body, path, name)
    try:
        if path.endswith(".json"):
            return json.loads(text)
        return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader without aliases
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if path.endswith(".json") else "YAML"
        raise BundleError(f"{name}: {path} is not valid {kind} ({exc})") from None


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a few lines of aliases can stand for a document of
    billions of nodes, which every engine handed the data would have to expand."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "an alias (*name) in bundle data", mark)
        return super().compose_node(parent, index)


def _insert(
    data: dict[str, Any], directory: PurePosixPath, value: Any, path: str, name: str
) -> None:
    keys = [part for part in directory.parts if part not in ("/", ".")]
    if not keys:
        if not isinstance(value, dict):
            raise BundleError(f"{name}: {path} at the bundle's top must hold an object")
        _merge(data, value, path, name)
        return
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise BundleError(f"{name}: {path} collides with data already at `{key}`")
        node = child
    last = keys[-1]
    if last in node and isinstance(node[last], dict) and isinstance(value, dict):
        _merge(node[last], value, path, name)
    elif last in node:
        raise BundleError(f"{name}: {path} collides with data already at `{'/'.join(keys)}`")
    else:
        node[last] = value


def _merge(into: dict[str, Any], value: dict[str, Any], path: str, name: str) -> None:
    for key, item in value.items():
        if key in into and isinstance(into[key], dict) and isinstance(item, dict):
            _merge(into[key], item, path, name)
        elif key in into:
            raise BundleError(f"{name}: {path} sets `{key}` a second time")
        else:
            into[key] = item


def _package(source: str, path: str, name: str) -> str:
    try:
        return module_package(source, path)
    except BundleError as exc:
        raise BundleError(f"{name}: {exc}") from None
