"""Signed OPA bundles: ``.signatures.json`` written and checked as OPA does.

A signed bundle holds ``.signatures.json``: ``{"signatures": [JWT]}``, one JWT whose
payload lists every other file of the bundle with its hash (``files``: ``name``,
``hash``, ``algorithm``), plus optional claims (``keyid``, ``scope``, ``iss``, ``iat``).
The rules follow OPA's ``bundle`` package:

- a ``.rego`` file (or any file that is not structured) is hashed by its bytes;
- a structured file (base name ``data.json``, ``data.yaml``, ``.manifest`` or
  ``signatures.json``) is parsed and hashed in OPA's canonical form: objects as ``{``,
  each key (sorted by its UTF-8 bytes) JSON-encoded, ``:``, the value, ``,`` between
  members, ``}``; arrays as ``[``, values, ``,``, ``]``; strings as Go's JSON encoder
  writes them (no HTML escaping); numbers as the literal text in the file (OPA decodes
  with ``json.Number``); ``true``, ``false``, ``null``;
- verification: exactly one JWT; its signature checked with the configured key and
  algorithm; the payload's ``scope`` equal to the expected one; every file of the bundle
  listed with a matching hash and every listed file present.

Refused here where OPA accepts them: MD5 and SHA-1 file hashes, ``data.yaml`` (hashed
through a YAML-to-JSON conversion this module does not reproduce), a payload key that
differs from a known claim only in case (Go's decoder would read it as that claim), a
file listed twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    load_pem_private_key,
    load_pem_public_key,
)

SIGNATURES_FILE = ".signatures.json"
STRUCTURED = frozenset({"data.json", "data.yaml", ".manifest", "signatures.json"})
FILE_HASH = "SHA-256"  # what OPA and this module write
DEFAULT_ALGORITHM = "RS256"  # OPA's default for --signing-alg
DEFAULT_KEY_ID = "default"  # OPA's default --verification-key-id
HASHES = {
    "SHA-224": "sha224",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
    "SHA-512-224": "sha512_224",
    "SHA-512-256": "sha512_256",
}
WEAK_HASHES = frozenset({"MD5", "SHA-1"})  # OPA accepts them; a gate does not
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
HMAC_ALGORITHMS = {"HS256": 32, "HS384": 48, "HS512": 64}  # minimum secret bytes (RFC 7518)
ALGORITHMS = (*RSA_ALGORITHMS, *EC_ALGORITHMS.values(), "EdDSA", *HMAC_ALGORITHMS)
# claims of OPA's decoded payload, and the Go type each must have
_CLAIM_TYPES: dict[str, tuple[type, ...]] = {
    "files": (list,),
    "keyid": (str,),
    "scope": (str,),
    "iat": (int,),
    "iss": (str,),
}


class SignatureError(Exception):
    """A signature that cannot be made or does not verify; the message is one line."""


# ---------------------------------------------------------------------------- keys


@dataclass(frozen=True, slots=True)
class BundleKey:
    """A key and the JWT algorithm it is used with: a private key or secret to sign, a
    public key (or secret) to verify."""

    algorithm: str
    material: Any = field(repr=False)  # a cryptography key object, or the HMAC secret bytes
    key_id: str = DEFAULT_KEY_ID

    def verifier(self) -> BundleKey:
        """The key that verifies what this one signs: the public half, or the same secret."""
        public = getattr(self.material, "public_key", None)
        return BundleKey(self.algorithm, public() if public else self.material, self.key_id)


def read_key_argument(value: str, algorithm: str | None = None) -> bytes:
    """What ``--signing-key`` / ``--verification-key`` name, as OPA reads them: PEM text,
    else the file at that path; a literal HMAC secret only with an ``HS*`` algorithm, so a
    mistyped path is an error rather than a secret."""
    if value.lstrip().startswith("-----BEGIN"):
        return value.encode()
    path = Path(value)
    if path.is_file():
        try:
            return path.read_bytes()
        except OSError as exc:
            raise SignatureError(f"cannot read the key {value}: {exc.strerror or exc}") from None
    if algorithm in HMAC_ALGORITHMS:
        return value.encode()
    raise SignatureError(f"no key file {value} (a literal HMAC secret needs --signing-alg HS256)")


def signing_key(
    material: bytes, algorithm: str | None = None, key_id: str = DEFAULT_KEY_ID
) -> BundleKey:
    """A key to sign with: a PEM private key (RSA, EC, Ed25519), or an HMAC secret (with
    ``algorithm`` ``HS256``/``HS384``/``HS512``, never inferred). With no ``algorithm`` it
    follows from the key: RSA RS256, EC ES256/384/512 by curve, Ed25519 EdDSA."""
    return _key(material, algorithm, key_id, private=True)


def verification_key(
    material: bytes, algorithm: str | None = None, key_id: str = DEFAULT_KEY_ID
) -> BundleKey:
    """A key to verify with: a PEM public key, certificate or private key, or an HMAC
    secret; the algorithm, when not given, follows from the key as for ``signing_key``."""
    return _key(material, algorithm, key_id, private=False)


def _key(material: bytes, algorithm: str | None, key_id: str, *, private: bool) -> BundleKey:
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise SignatureError(
            f"unknown signing algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}"
        )
    pem = material.lstrip().startswith(b"-----BEGIN")
    if not pem:
        # never inferred: a DER or mangled key file must not quietly become an HMAC secret
        if algorithm is None:
            raise SignatureError("not a PEM key; a shared secret needs --signing-alg HS256")
        chosen = algorithm
        if chosen not in HMAC_ALGORITHMS:
            raise SignatureError(f"{chosen} needs a PEM key; this key is not PEM")
        if len(material) < HMAC_ALGORITHMS[chosen]:
            raise SignatureError(
                f"an {chosen} secret must hold at least {HMAC_ALGORITHMS[chosen]} bytes "
                f"(RFC 7518 3.2); this one has {len(material)}"
            )
        return BundleKey(chosen, bytes(material), key_id)
    if algorithm in HMAC_ALGORITHMS:
        raise SignatureError(f"{algorithm} takes a secret, not a PEM key")
    key = _pem_key(material, private)
    chosen = _algorithm_for(key, algorithm)
    return BundleKey(chosen, key, key_id)


def _pem_key(material: bytes, private: bool) -> Any:
    if b"PRIVATE KEY-----" in material:
        try:
            key = load_pem_private_key(material, password=None)
        except (ValueError, TypeError) as exc:
            raise SignatureError(f"not a usable PEM private key ({_first_line(exc)})") from None
        return key if private else key.public_key()
    if private:
        raise SignatureError("signing needs a private key; this PEM holds none")
    try:
        if b"CERTIFICATE-----" in material:
            return x509.load_pem_x509_certificate(material).public_key()
        return load_pem_public_key(material)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"not a usable PEM public key ({_first_line(exc)})") from None


def _algorithm_for(key: Any, algorithm: str | None) -> str:
    """The algorithm ``key`` signs with: ``algorithm`` if it fits the key, else the key's own."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        fits: tuple[str, ...] = RSA_ALGORITHMS
        if key.key_size < 2048:
            raise SignatureError(f"an RSA key of {key.key_size} bits is too short (2048 at least)")
    elif isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        curve = EC_ALGORITHMS.get(key.curve.name)
        if curve is None:
            raise SignatureError(f"the EC curve {key.curve.name} has no JWT algorithm")
        fits = (curve,)
    elif isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        fits = ("EdDSA",)
    else:
        raise SignatureError(f"a {type(key).__name__} cannot sign bundles")
    if algorithm is None:
        return fits[0]
    if algorithm not in fits:
        raise SignatureError(f"{algorithm} does not fit this key; it signs with {', '.join(fits)}")
    return algorithm


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------- hashing


class _Number(str):
    """A JSON number kept as the text it was written with, as Go's ``json.Number``."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def structured(path: str) -> bool:
    """Whether OPA hashes this file parsed (``data.json``, ``.manifest``...) or by its bytes."""
    return PurePosixPath(path).name in STRUCTURED


def file_hash(path: str, content: bytes, algorithm: str = FILE_HASH) -> str:
    """The hex digest OPA records for the file ``path`` holding ``content``."""
    if algorithm in WEAK_HASHES:
        raise SignatureError(f"{path}: the file hash {algorithm} is too weak to trust")
    if algorithm not in HASHES:
        raise SignatureError(f"{path}: unknown file hash algorithm {algorithm!r}")
    digest = hashlib.new(HASHES[algorithm])
    if structured(path):
        digest.update(canonical(_parse(path, content), path))
    else:
        digest.update(content)
    return digest.hexdigest()


def _parse(path: str, content: bytes) -> Any:
    if PurePosixPath(path).name == "data.yaml":
        raise SignatureError(f"{path}: signed YAML data is not supported; use data.json")
    if content.startswith(b"\xef\xbb\xbf"):  # OPA strips a UTF-8 byte order mark
        content = content[3:]
    try:
        return json.loads(
            content.decode("utf-8"),
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SignatureError(f"{path}: not JSON that can be hashed ({_first_line(exc)})") from None


def canonical(value: Any, path: str = "<value>") -> bytes:
    """OPA's canonical form of a parsed JSON document (``bundle/hash.go``), as bytes."""
    out: list[str] = []
    try:
        _walk(value, out)
    except RecursionError:
        raise SignatureError(f"{path}: nested too deeply to hash") from None
    return "".join(out).encode("utf-8")


def _walk(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value)):  # code point order = UTF-8 byte order
            if i:
                out.append(",")
            out.append(go_string(key))
            out.append(":")
            _walk(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _walk(item, out)
        out.append("]")
    elif isinstance(value, _Number):
        out.append(str.__str__(value))
    elif isinstance(value, str):
        out.append(go_string(value))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    else:  # a number not read from text: only documents parsed here are hashed
        raise SignatureError(f"cannot hash a {type(value).__name__} the way OPA does")


_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_GO_ESCAPES.update({"\b": "\\b", "\f": "\\f"})  # Go 1.22 and later, what OPA 1.x builds with


def go_string(text: str) -> str:
    """``text`` as Go's ``json.Encoder`` with HTML escaping off writes it."""
    parts = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _GO_ESCAPES:
            parts.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code in (0x2028, 0x2029):
            parts.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            # Go reads a lone surrogate escape as U+FFFD: the texts would differ
            raise SignatureError("a string holds a lone UTF-16 surrogate")
        else:
            parts.append(ch)
    parts.append('"')
    return "".join(parts)


# ---------------------------------------------------------------------------- signing


@dataclass(frozen=True, slots=True)
class BundleSigner:
    """How to sign a bundle: the key, extra claims (OPA's ``--claims-file``) and a scope."""

    key: BundleKey
    claims: Mapping[str, Any] = field(default_factory=dict)
    scope: str | None = None

    def __post_init__(self) -> None:
        if "files" in self.claims:
            raise SignatureError("the claims may not set `files`: the signer lists the files")
        for name, types in _CLAIM_TYPES.items():
            value = self.claims.get(name)
            if name in self.claims and (isinstance(value, bool) or not isinstance(value, types)):
                raise SignatureError(f"the claim `{name}` must be {_type_name(types)}")
        claimed = self.claims.get("scope")
        if self.scope is not None and claimed is not None and claimed != self.scope:
            raise SignatureError(f"the scope {self.scope!r} differs from the claims' {claimed!r}")

    @property
    def signed_scope(self) -> str:
        """The scope the signature carries, which a verifier must expect."""
        return self.scope if self.scope is not None else str(self.claims.get("scope", ""))

    def payload(self, members: Sequence[tuple[str, bytes]]) -> dict[str, Any]:
        """The JWT payload for the bundle holding ``members``: ``files``, then the claims."""
        listed = [(path, body) for path, body in members if path != SIGNATURES_FILE]
        # OPA's order: modules and other files, then data, then the manifest
        ordered = sorted(
            listed, key=lambda m: (m[0] == ".manifest", PurePosixPath(m[0]).name in STRUCTURED)
        )
        files = [
            {"name": path, "hash": file_hash(path, body), "algorithm": FILE_HASH}
            for path, body in ordered
        ]
        payload: dict[str, Any] = {"files": files}
        if self.key.key_id:
            payload["keyid"] = self.key.key_id  # OPA's deprecated claim, read by older OPAs
        payload.update(self.claims)
        if self.scope is not None:
            payload["scope"] = self.scope
        return {name: payload[name] for name in sorted(payload)}

    def token(self, members: Sequence[tuple[str, bytes]]) -> str:
        body = json.dumps(
            self.payload(members), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
        headers = {"kid": self.key.key_id} if self.key.key_id else None
        try:
            return jwt.PyJWS().encode(body, self.key.material, self.key.algorithm, headers)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise SignatureError(f"cannot sign: {_first_line(exc)}") from None

    def signatures_file(self, members: Sequence[tuple[str, bytes]]) -> bytes:
        """The ``.signatures.json`` bytes, laid out as ``opa build`` writes them."""
        return json.dumps({"signatures": [self.token(members)]}, indent=1).encode()


def _type_name(types: tuple[type, ...]) -> str:
    return {list: "a list", str: "a string", int: "an integer"}[types[0]]


# ---------------------------------------------------------------------------- verifying


@dataclass(frozen=True, slots=True)
class Verified:
    """What a verified signature says: who signed, for which scope, which files."""

    algorithm: str
    key_id: str | None
    scope: str
    files: tuple[str, ...]
    claims: dict[str, Any]  # the payload without `files`

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": True,
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "scope": self.scope,
            "files": list(self.files),
            "claims": self.claims,
        }


def verify(members: Sequence[tuple[str, bytes]], key: BundleKey, scope: str = "") -> Verified:
    """Check the bundle made of ``members`` against its ``.signatures.json`` as OPA does;
    ``SignatureError`` naming the first problem."""
    signatures = [body for path, body in members if path == SIGNATURES_FILE]
    if not signatures:
        raise SignatureError(f"not signed: no {SIGNATURES_FILE}")
    for path, _ in members:
        if path != SIGNATURES_FILE and path.endswith("signatures.json"):
            raise SignatureError(f"{path}: OPA would take this file for {SIGNATURES_FILE}")
    header, payload = verify_token(_one_token(signatures[0]), key, scope)
    listed = _listed(payload.get("files", []))
    present = [(path, body) for path, body in members if path != SIGNATURES_FILE]
    for path, body in present:
        entry = listed.pop(path, None)
        if entry is None:
            raise SignatureError(f"{path}: not included in the bundle signature")
        got = file_hash(path, body, entry["algorithm"])
        if got != entry["hash"].lower():
            raise SignatureError(
                f"{path}: digest mismatch (signed {entry['hash'][:16]}..., file {got[:16]}...)"
            )
    if listed:
        names = ", ".join(sorted(listed))
        raise SignatureError(f"listed in the signature but not in the bundle: {names}")
    key_id = header.get("kid") if isinstance(header.get("kid"), str) else payload.get("keyid")
    return Verified(
        algorithm=key.algorithm,
        key_id=key_id,
        scope=payload.get("scope", ""),
        files=tuple(path for path, _ in present),
        claims={k: v for k, v in payload.items() if k != "files"},
    )


def verify_token(token: str, key: BundleKey, scope: str = "") -> tuple[dict, dict]:
    """The header and payload of a bundle JWT whose signature verifies with ``key`` and whose
    ``scope`` claim (empty when absent) is ``scope``; ``SignatureError`` otherwise."""
    header = _header(token)
    try:
        raw = jwt.PyJWS().decode_complete(token, key.material, [key.algorithm])["payload"]
    except jwt.InvalidAlgorithmError:
        raise SignatureError(
            f"the JWT is signed with {header.get('alg')!r}; the key verifies {key.algorithm}"
        ) from None
    except jwt.InvalidSignatureError:
        raise SignatureError("the JWT's signature does not verify with the given key") from None
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise SignatureError(f"the JWT is malformed ({_first_line(exc)})") from None
    payload = _payload(raw)
    claimed = payload.get("scope", "")
    if claimed != scope:
        raise SignatureError(f"scope mismatch: the JWT says {claimed!r}, expected {scope!r}")
    return header, payload


def _one_token(body: bytes) -> str:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SignatureError(f"{SIGNATURES_FILE} is not JSON ({_first_line(exc)})") from None
    if not isinstance(document, dict) or not isinstance(document.get("signatures", []), list):
        raise SignatureError(f"{SIGNATURES_FILE} must hold an object with a `signatures` list")
    plugin = document.get("plugin", "")
    if plugin not in ("", "_default"):
        raise SignatureError(f"signed by the OPA plugin {plugin!r}, which cannot be checked here")
    tokens = document.get("signatures", [])
    if len(tokens) != 1:
        raise SignatureError(f"{SIGNATURES_FILE} must hold exactly one JWT, not {len(tokens)}")
    if not isinstance(tokens[0], str):
        raise SignatureError(f"{SIGNATURES_FILE}: the JWT must be a string")
    return tokens[0]


def _header(token: str) -> dict[str, Any]:
    head = token.split(".", 1)[0]
    try:
        value = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"the JWT header is malformed ({_first_line(exc)})") from None
    if not isinstance(value, dict):
        raise SignatureError("the JWT header is not an object")
    return value


def _payload(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SignatureError(f"the JWT payload is not JSON ({_first_line(exc)})") from None
    if not isinstance(payload, dict):
        raise SignatureError("the JWT payload is not an object")
    for name in payload:
        known = name.lower()
        if known in _CLAIM_TYPES and name != known:
            # Go's decoder matches struct fields without regard to case
            raise SignatureError(f"the JWT payload's `{name}` would be read as `{known}`")
    for name, types in _CLAIM_TYPES.items():
        value = payload.get(name)
        if name in payload and (isinstance(value, bool) or not isinstance(value, types)):
            raise SignatureError(f"the JWT payload's `{name}` must be {_type_name(types)}")
    return payload


_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


def _listed(files: list[Any]) -> dict[str, dict[str, str]]:
    listed: dict[str, dict[str, str]] = {}
    for entry in files:
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k, ""), str) for k in ("name", "hash", "algorithm")
        ):
            raise SignatureError("a `files` entry of the JWT is not {name, hash, algorithm}")
        name = entry.get("name", "")  # as OPA: a leading `/` matches no bundle path
        if not entry.get("algorithm"):
            raise SignatureError(f"{name}: no hashing algorithm in the signature")
        if _HEX.fullmatch(entry.get("hash", "")) is None:
            raise SignatureError(f"{name}: the signed hash is not hexadecimal")
        if name in listed:
            raise SignatureError(f"{name}: listed twice in the signature")
        listed[name] = {"hash": entry.get("hash", ""), "algorithm": entry["algorithm"]}
    return listed
