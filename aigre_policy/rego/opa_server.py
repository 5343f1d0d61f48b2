"""The OPA-server engine: a pack's Rego evaluated by a running OPA, through its REST API.

``OpaServer`` speaks to OPA with ``opa-python-client``: the decision is
``POST /v1/data/<entrypoint>`` with ``{"input": ...}``; with ``push`` the pack's
modules go first to ``PUT /v1/policies/<module path>`` and its data to
``PUT /v1/data/<root>``. Every way the exchange can fail (timeout, refused or
dropped connection, an HTTP error, an answer that is not JSON or has the
wrong shape) raises ``OpaError`` with a sentence saying why; the engine turns it
into the pack's fail-closed verdict, never into ``allow``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from opa_client import OpaClient
from opa_client.errors import RegoParseError

from aigre_policy.lattice import RULE_VERDICTS
from aigre_policy.rego.bundle import RegoProgramLike, slash_path
from aigre_policy.rego.engine import DECISION_KEYS, EngineFault, register_engine
from aigre_policy.verdict import LATTICE

DEFAULT_URL = "http://127.0.0.1:8181"
DEFAULT_TIMEOUT = 2.0  # seconds, for each of connect and read


class OpaError(Exception):
    """The OPA server could not give a usable answer; the message says why."""


@dataclass(frozen=True, slots=True)
class OpaOptions:
    """Where the server is and how to talk to it."""

    url: str = DEFAULT_URL
    timeout: float = DEFAULT_TIMEOUT
    token: str | None = None
    push: bool = False  # upload the pack's policies and data before the first decision


def parse_url(url: str) -> tuple[str, int, bool]:
    """``http://host:port`` as (host, port, tls); ``ValueError`` for anything else."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"OPA url must look like http://host:port, not {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"OPA url must name only the server (http://host:port), not {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"OPA url has a bad port: {url!r}") from None
    tls = parts.scheme == "https"
    return parts.hostname, port or (443 if tls else 8181), tls


class OpaServer:
    """One OPA server and the pack program it evaluates."""

    def __init__(self, program: RegoProgramLike, options: OpaOptions = OpaOptions()):
        if options.timeout <= 0:
            raise ValueError("the OPA timeout must be a positive number of seconds")
        host, port, tls = parse_url(options.url)
        self.options = options
        self.program = program
        self.entrypoint = slash_path(program.entrypoint)
        self._pushed = not options.push
        self._lock = threading.Lock()
        # no retries: a gate waits at most `timeout` per request, then fails closed
        self._client = OpaClient(
            host=host, port=port, ssl=tls, token=options.token, timeout=options.timeout, retries=0
        )

    @property
    def where(self) -> str:
        return self.options.url.rstrip("/")

    def close(self) -> None:
        self._client.close_connection()

    def push(self) -> None:
        """Upload every module (``PUT /v1/policies/<path>``), each after the modules whose
        functions it calls (OPA compiles an upload against what it holds, and refuses a
        call of a function it does not hold yet), then the data under each root."""
        self.push_in_order(upload_order(self.program.modules))

    def push_in_order(self, paths: list[str]) -> None:
        """Upload the modules at ``paths`` in that order, then the data under each root."""
        for path in paths:
            with self._failures(f"PUT /v1/policies/{path}"):
                self._client.update_policy_from_string(
                    self.program.modules[path], path, rego_compat=False
                )
        for root in self.program.roots:
            value = _at(self.program.data, root)
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise OpaError(f"the data under root `{root}` is not an object")
            with self._failures(f"PUT /v1/data/{root}"):
                self._client.update_or_create_data(dict(value), root)

    def query(self, document: Mapping[str, Any]) -> Any:
        """The entrypoint's value for this input; ``OpaError`` if there is none to trust."""
        if not self._pushed:
            with self._lock:
                if not self._pushed:
                    self.push()
                    self._pushed = True
        package, _, rule = self.entrypoint.rpartition("/")
        with self._failures(f"POST /v1/data/{self.entrypoint}"):
            answer = self._client.query_rule(dict(document), package, rule)
        if not isinstance(answer, dict):
            raise OpaError(
                f"OPA at {self.where} answered with {type(answer).__name__}, not an object"
            )
        if "result" not in answer:
            raise OpaError(
                f"OPA at {self.where} has no value for `{self.entrypoint}`: "
                "is the pack's bundle loaded (or run with --opa-push)?"
            )
        return answer["result"]

    @contextmanager
    def _failures(self, request: str) -> Iterator[None]:
        """Whatever a request raises becomes an ``OpaError`` that says what went wrong."""
        try:
            yield
        except OpaError:
            raise
        except Exception as exc:
            reason = _reason(exc, self.options.timeout)
            raise OpaError(f"{request} to OPA at {self.where}: {reason}") from exc


_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_IMPORT = re.compile(r"^import\s+data\.([\w.]+?)(?:\s+as\s+(\w+))?\s*$", re.MULTILINE)
_FUNCTION = re.compile(r"^([a-z_]\w*)\(", re.MULTILINE)
_CALL = re.compile(r"(?<![\w.])(?:([a-z_]\w*)\.)?([a-z_]\w*)\(")
_NOISE = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|#.*')


def upload_order(modules: Mapping[str, str]) -> list[str]:
    """Module paths with every module after those defining the functions it calls, in
    path order where that leaves a choice (and for any cycle, which OPA would refuse)."""
    code = {path: _NOISE.sub('""', source) for path, source in modules.items()}
    package = {path: _package(text) for path, text in code.items()}
    defines = {
        (package[path], name): path
        for path, text in code.items()
        for name in _FUNCTION.findall(text)
    }
    needs: dict[str, set[str]] = {}
    for path, text in code.items():
        aliases = {
            (m.group(2) or m.group(1).rsplit(".", 1)[-1]): m.group(1)
            for m in _IMPORT.finditer(text)
        }
        needs[path] = set()
        for alias, name in _CALL.findall(text):
            target = (aliases.get(alias, f"{alias}"), name) if alias else (package[path], name)
            found = defines.get(target)
            if found is not None and found != path:
                needs[path].add(found)
    order: list[str] = []
    remaining = sorted(modules)
    while remaining:
        ready = [p for p in remaining if needs[p] <= set(order)] or remaining[:1]
        order.append(ready[0])
        remaining.remove(ready[0])
    return order


def _package(text: str) -> str:
    found = _PACKAGE.search(text)
    return found.group(1) if found else ""


def _reason(exc: Exception, timeout: float) -> str:
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, requests.ConnectionError):
        return f"connection failed ({_innermost(exc)})"
    if isinstance(exc, requests.HTTPError):
        return _http_reason(exc.response)
    if isinstance(exc, RegoParseError):
        return f"rejected: {exc}"
    if isinstance(exc, ValueError):  # requests' JSONDecodeError is one
        return "the answer is not JSON"
    return f"{type(exc).__name__}: {exc}"


def _http_reason(response: requests.Response | None) -> str:
    if response is None:
        return "HTTP error"
    detail = ""
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            detail = f": {body['message']}"
    except ValueError:
        text = response.text.strip()
        detail = f": {text[:200]}" if text else ""
    return f"HTTP {response.status_code}{detail}"


def _innermost(exc: BaseException) -> str:
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."


def _at(document: Mapping[str, Any], root: str) -> Any:
    node: Any = document
    for key in root.split("/") if root else []:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


class OpaEngine:
    """The ``opa`` engine: each decision asked of an OPA server (``load_pack(engine=...)``)."""

    name = "opa"

    def __init__(self, program: RegoProgramLike, options: OpaOptions = OpaOptions()):
        self.server = OpaServer(program, options)

    def decide(self, document: dict[str, Any]) -> dict[str, Any]:
        """The decision document OPA returns; ``EngineFault`` saying why when there is none."""
        try:
            value = self.server.query(document)
        except OpaError as exc:
            raise EngineFault(str(exc)) from exc
        problem = decision_problem(value)
        if problem:
            raise EngineFault(
                f"OPA at {self.server.where} answered `{self.server.entrypoint}` with {problem}"
            )
        return value

    def close(self) -> None:
        self.server.close()


def opa_engine(options: OpaOptions) -> Callable[[RegoProgramLike], OpaEngine]:
    """An engine factory bound to one server: ``load_pack(path, engine=opa_engine(...))``."""
    return lambda program: OpaEngine(program, options)


_LISTS_OF_OBJECTS = ("fired", "warnings", "errors")
_LISTS_OF_STRINGS = ("approvers", "escalate_to")


def decision_problem(value: Any) -> str | None:
    """What makes ``value`` unusable as a decision document, or ``None``.

    A server outside the process may run another program or be a proxy
    answering for it, so every field a verdict is built from is checked.
    """
    if not isinstance(value, dict):
        return f"{type(value).__name__}, not a decision document"
    missing = sorted(DECISION_KEYS - value.keys())
    if missing:
        return "a document without " + ", ".join(f"`{key}`" for key in missing)
    if value["decision"] not in LATTICE:
        return f"the unknown decision {value['decision']!r}"
    for key in ("fail_closed", "default_applied"):
        if not isinstance(value[key], bool):
            return f"`{key}` not a boolean"
    for key in _LISTS_OF_OBJECTS:
        if not isinstance(value[key], list) or not all(isinstance(x, dict) for x in value[key]):
            return f"`{key}` not a list of objects"
    for key in _LISTS_OF_STRINGS:
        if key in value and (
            not isinstance(value[key], list) or not all(isinstance(x, str) for x in value[key])
        ):
            return f"`{key}` not a list of strings"
    for record in value["fired"] + value["warnings"]:
        if not isinstance(record.get("id"), str) or record.get("verdict") not in _VERDICTS:
            return "a fired rule without an `id` and a `verdict`"
    return None


_VERDICTS = frozenset({*LATTICE, *RULE_VERDICTS})

register_engine("opa", OpaEngine)
