"""The OPA-server engine against a fake OPA run in-process.

The fake speaks OPA's REST API (policies, data, the Data API) and evaluates what
it holds with regopy, so its answers are real Rego answers; other modes hang,
drop the connection, fail with 500, or answer with something that is not a
decision. Every failure must reach the caller as a reason, never as `allow`.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import regopy
from conftest import fixture_input, verdict_core

from aigre_policy.cli.main import main
from aigre_policy.compiler import compile_pack
from aigre_policy.pack import load_pack
from aigre_policy.rego.bundle import PackIdentity, read_bundle, write_bundle
from aigre_policy.rego.emit import emit_rego
from aigre_policy.rego.engine import ENGINES, EngineFault, register_engine
from aigre_policy.rego.opa_server import (
    OpaEngine,
    OpaError,
    OpaOptions,
    OpaServer,
    opa_engine,
    parse_url,
)

# ---------------------------------------------------------------------------- the fake OPA


@dataclass
class FakeOpa:
    """OPA's REST API over regopy. ``mode`` picks how it answers the Data API."""

    mode: str = "evaluate"  # evaluate | hang | close | error | not-json | answer
    answer: Any = None  # the body sent in "answer" mode
    token: str | None = None
    policies: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    compiled: dict[str, Any] = field(default_factory=dict)

    def load(self, blob: bytes) -> None:
        """As `opa run --server bundle.tar.gz` would: the bundle's modules and data."""
        bundle = read_bundle(blob)
        self.policies.update({m.path: m.source for m in bundle.modules})
        self.data = bundle.data

    def evaluate(self, path: str, input_document: Any) -> dict[str, Any]:
        """``{"result": value}`` as OPA's Data API answers, ``{}`` when undefined."""
        with self.lock:
            key = json.dumps([self.policies, self.data, path], sort_keys=True)
            if key not in self.compiled:  # compile once per policy set, as OPA does
                rego = regopy.Interpreter()
                for name, source in sorted(self.policies.items()):
                    rego.add_module(name, source)
                rego.add_data(self.data)
                self.compiled = {key: (rego, rego.build(None, [path]))}
            rego, built = self.compiled[key]
            rego.set_input(regopy.Input(input_document))
            output = rego.query_bundle_entrypoint(built, path)
        if str(output) == "undefined":
            return {}
        expressions = json.loads(str(output)).get("expressions")
        return {"result": expressions[0]} if expressions else {}

    def compiles(self, path: str, source: str) -> str | None:
        """As OPA compiles an upload: parsed, and against the modules it already holds,
        so a call of a function no held module defines is refused."""
        rego = regopy.Interpreter()
        try:
            rego.add_module("check.rego", source)
            output = rego.query("x = 1")
        except regopy.RegoError as exc:
            return str(exc)
        if not output.ok():
            return str(output)
        held = {**self.policies, path: source}
        for name in undefined_calls(source, held.values()):
            return f"rego_type_error: undefined function {name}"
        return None


def undefined_calls(source: str, held: Any) -> list[str]:
    """The functions ``source`` calls (through an import, or its package's own ``_`` helpers)
    that no module of ``held`` defines."""
    code = lambda text: re.sub(r'"(?:[^"\\]|\\.)*"|`[^`]*`|#.*', '""', text)  # noqa: E731
    defined = set()
    for text in held:
        package = re.search(r"^package\s+(\S+)", text, re.MULTILINE).group(1)
        defined |= {f"{package}.{f}" for f in re.findall(r"^(\w+)\(", code(text), re.MULTILINE)}
    text = code(source)
    own = re.search(r"^package\s+(\S+)", text, re.MULTILINE).group(1)
    imports = {
        m.group(1).rsplit(".", 1)[-1]: m.group(1)
        for m in re.finditer(r"^import\s+data\.(\S+)\s*$", text, re.MULTILINE)
    }
    missing = []
    for alias, name in re.findall(r"(?<![\w.])(?:(\w+)\.)?(\w+)\(", text):
        if alias in imports:
            wanted = f"{imports[alias]}.{name}"
        elif not alias and name.startswith("_"):
            wanted = f"{own}.{name}"
        else:
            continue  # a builtin
        if wanted not in defined:
            missing.append(f"data.{wanted}")
    return missing


def _handler(fake: FakeOpa) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def _send(self, status: int, body: Any = None, raw: bytes | None = None) -> None:
            payload = (
                raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
            )
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _authorised(self) -> bool:
            if fake.token and self.headers.get("Authorization") != f"Bearer {fake.token}":
                self._send(401, {"code": "unauthorized", "message": "authentication failed"})
                return False
            return True

        def do_PUT(self) -> None:
            body = self._body()
            fake.requests.append(("PUT", self.path, body.decode()))
            if not self._authorised():
                return
            if self.path.startswith("/v1/policies/"):
                problem = fake.compiles(self.path.removeprefix("/v1/policies/"), body.decode())
                if problem:
                    self._send(
                        400,
                        {
                            "code": "invalid_parameter",
                            "message": "error(s) occurred while compiling module(s)",
                            "errors": [{"code": "rego_parse_error", "message": problem}],
                        },
                    )
                    return
                fake.policies[self.path.removeprefix("/v1/policies/")] = body.decode()
                self._send(200, {})
            elif self.path.startswith("/v1/data/"):
                node = fake.data
                keys = self.path.removeprefix("/v1/data/").split("/")
                for key in keys[:-1]:
                    node = node.setdefault(key, {})
                node[keys[-1]] = json.loads(body)
                self._send(204)
            else:
                self._send(404, {"code": "resource_not_found", "message": "no such API"})

        def do_POST(self) -> None:
            body = json.loads(self._body())
            fake.requests.append(("POST", self.path, body))
            if not self._authorised():
                return
            if fake.mode == "hang":
                fake.release.wait(10)
                return
            if fake.mode == "close":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fake.mode == "error":
                self._send(500, {"code": "internal_error", "message": "storage is on fire"})
            elif fake.mode == "not-json":
                self._send(200, raw=b"<html>gateway says hello</html>")
            elif fake.mode == "answer":
                self._send(200, fake.answer)
            else:
                path = self.path.removeprefix("/v1/data/")
                self._send(200, fake.evaluate(path, body["input"]))

    return Handler


@pytest.fixture
def opa() -> Iterator[tuple[FakeOpa, str]]:
    fake = FakeOpa()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------- a small program


@dataclass(frozen=True)
class Program:
    package: str = "aigre.t"
    modules: dict[str, str] = field(
        default_factory=lambda: {
            "aigre/t/decision.rego": (
                "package aigre.t\n\n"
                'default decision := {"decision": "allow"}\n\n'
                'decision := {"decision": "deny"} if {\n'
                "  input.action.cost > data.aigre.t.envelopes.cost.max\n"
                "}\n"
            )
        }
    )
    data: dict[str, Any] = field(
        default_factory=lambda: {"aigre": {"t": {"envelopes": {"cost": {"max": 25}}}}}
    )
    roots: tuple[str, ...] = ("aigre/t",)
    entrypoint: str = "aigre/t/decision"


CHEAP = {"action": {"cost": 10}, "context": {}, "usage": {}}
COSTLY = {"action": {"cost": 30}, "context": {}, "usage": {}}


def test_push_then_query_gives_the_rego_answer(opa):
    fake, url = opa
    server = OpaServer(Program(), OpaOptions(url=url, push=True))
    assert server.query(CHEAP) == {"decision": "allow"}
    assert server.query(COSTLY) == {"decision": "deny"}
    methods = [(method, path) for method, path, _ in fake.requests]
    assert methods == [
        ("PUT", "/v1/policies/aigre/t/decision.rego"),
        ("PUT", "/v1/data/aigre/t"),
        ("POST", "/v1/data/aigre/t/decision"),
        ("POST", "/v1/data/aigre/t/decision"),
    ]  # pushed once, before the first decision
    assert json.loads(fake.requests[1][2]) == {"envelopes": {"cost": {"max": 25}}}
    assert fake.requests[2][2] == {"input": CHEAP}


def test_a_server_loaded_with_the_bundle_answers_without_a_push(opa):
    fake, url = opa
    fake.load(write_bundle(Program(), PackIdentity("t", "1.0.0", "sha256:00"), "1"))
    server = OpaServer(Program(), OpaOptions(url=url))
    assert server.query(COSTLY) == {"decision": "deny"}
    assert [m for m, _, _ in fake.requests] == ["POST"]


def test_a_server_without_the_policy_is_a_failure_not_an_answer(opa):
    _, url = opa
    server = OpaServer(Program(), OpaOptions(url=url))
    with pytest.raises(OpaError, match="has no value for `aigre/t/decision`: is the pack's bundle"):
        server.query(CHEAP)


def test_the_token_is_sent_as_a_bearer_header(opa):
    fake, url = opa
    fake.token = "s3cret"
    assert OpaServer(Program(), OpaOptions(url=url, push=True, token="s3cret")).query(COSTLY) == {
        "decision": "deny"
    }
    with pytest.raises(OpaError, match="HTTP 401: authentication failed"):
        OpaServer(Program(), OpaOptions(url=url, token="wrong")).query(COSTLY)


def test_a_hanging_server_times_out(opa):
    fake, url = opa
    fake.mode = "hang"
    server = OpaServer(Program(), OpaOptions(url=url, timeout=0.3))
    started = time.monotonic()
    with pytest.raises(OpaError, match=r"POST /v1/data/aigre/t/decision .*no answer within 0\.3s"):
        server.query(CHEAP)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("mode", "answer", "reason"),
    [
        ("close", None, "connection failed"),
        ("error", None, "HTTP 500: storage is on fire"),
        ("not-json", None, "the answer is not JSON"),
        ("answer", [1, 2], "answered with list, not an object"),
        ("answer", {"results": {"decision": "allow"}}, "has no value for `aigre/t/decision`"),
    ],
)
def test_a_misbehaving_server_is_reported(opa, mode, answer, reason):
    fake, url = opa
    fake.mode, fake.answer = mode, answer
    with pytest.raises(OpaError, match=reason):
        OpaServer(Program(), OpaOptions(url=url, timeout=2)).query(CHEAP)


def test_nothing_listening_is_a_connection_failure():
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(OpaError, match=f"to OPA at {url}: connection failed"):
        OpaServer(Program(), OpaOptions(url=url, timeout=1)).query(CHEAP)


def test_a_rejected_push_says_why_and_is_retried_next_time(opa):
    fake, url = opa
    broken = Program(modules={"aigre/t/decision.rego": "package aigre.t\n\ndecision := {\n"})
    server = OpaServer(broken, OpaOptions(url=url, push=True))
    with pytest.raises(OpaError, match=r"PUT /v1/policies/aigre/t/decision\.rego .* rejected"):
        server.query(CHEAP)
    with pytest.raises(OpaError, match=r"PUT /v1/policies/aigre/t/decision\.rego"):
        server.query(CHEAP)
    assert [m for m, _, _ in fake.requests] == ["PUT", "PUT"]  # never queried


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8181", ("127.0.0.1", 8181, False)),
        ("http://opa.internal", ("opa.internal", 8181, False)),
        ("https://opa.example.com/", ("opa.example.com", 443, True)),
        ("https://opa.example.com:9443", ("opa.example.com", 9443, True)),
    ],
)
def test_urls_name_a_server(url, expected):
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8181", "ftp://opa", "http://opa/v1/data", "http://opa:port", "http://"]
)
def test_other_urls_are_refused(url):
    with pytest.raises(ValueError, match="OPA url"):
        parse_url(url)


def test_timeout_must_be_positive():
    with pytest.raises(ValueError, match="timeout"):
        OpaServer(Program(), OpaOptions(timeout=0))


# ---------------------------------------------------------------------------- the engine

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "policy_packs" / "aigre-baseline"
FIXTURES = ROOT / "fixtures" / "actions"

VALID = {
    "decision": "allow",
    "fail_closed": False,
    "default_applied": True,
    "fired": [],
    "warnings": [],
    "errors": [],
    "approvers": [],
    "escalate_to": [],
}


@pytest.fixture(scope="module")
def baseline():
    report = compile_pack(BASELINE)
    assert report.ok
    return load_pack(BASELINE), emit_rego(report.compiled)


def test_the_opa_engine_decides_as_the_native_engine(opa, baseline):
    pack, program = baseline
    fake, url = opa
    engine = OpaEngine(program, OpaOptions(url=url, push=True, timeout=30))
    decisions = set()
    for fixture in (
        "llm-rollback.yaml",
        "spend-past-budget.yaml",
        "admin-role-grant.yaml",
        "llm-patch-401-lines.yaml",
    ):
        document = fixture_input(FIXTURES / fixture)
        native = pack.evaluate(document["action"], document["context"], document["usage"])
        assert verdict_core(engine.decide(document)) == verdict_core(native.to_dict()), fixture
        decisions.add(native.decision)
    assert decisions == {"allow", "deny", "require_approval", "escalate"}
    assert set(fake.policies) == set(program.modules)
    assert [m for m, _, _ in fake.requests].count("PUT") == len(program.modules) + 1


@pytest.mark.parametrize(
    ("mode", "answer", "reason"),
    [
        ("hang", None, "no answer within 0.3s"),
        ("close", None, "connection failed"),
        ("error", None, "HTTP 500: storage is on fire"),
        ("not-json", None, "the answer is not JSON"),
        ("answer", {}, "has no value for `aigre/t/decision`"),
        ("answer", {"result": "allow"}, "with str, not a decision document"),
        (
            "answer",
            {"result": {"decision": "allow"}},
            "a document without `default_applied`, `errors`, `fail_closed`, `fired`, `warnings`",
        ),
        ("answer", {"result": {**VALID, "decision": "maybe"}}, "the unknown decision 'maybe'"),
        ("answer", {"result": {**VALID, "fail_closed": "no"}}, "`fail_closed` not a boolean"),
        ("answer", {"result": {**VALID, "fired": {"id": "x"}}}, "`fired` not a list of objects"),
        ("answer", {"result": {**VALID, "approvers": [1]}}, "`approvers` not a list of strings"),
        (
            "answer",
            {"result": {**VALID, "fired": [{"id": "r", "verdict": "maybe"}]}},
            "a fired rule without an `id` and a `verdict`",
        ),
    ],
)
def test_the_opa_engine_faults_with_the_reason(opa, mode, answer, reason):
    fake, url = opa
    fake.mode, fake.answer = mode, answer
    engine = OpaEngine(Program(), OpaOptions(url=url, timeout=0.3 if mode == "hang" else 2))
    with pytest.raises(EngineFault, match=re.escape(reason)):
        engine.decide(CHEAP)


def test_a_well_formed_answer_is_returned_as_is(opa):
    fake, url = opa
    fake.mode, fake.answer = "answer", {"result": VALID}
    assert OpaEngine(Program(), OpaOptions(url=url)).decide(CHEAP) == VALID


def test_the_opa_engine_is_registered():
    assert ENGINES["opa"] is OpaEngine
    factory = opa_engine(OpaOptions(url="http://opa.internal:8181", timeout=5, push=True))
    engine = factory(Program())
    assert (engine.server.where, engine.server.options.push) == ("http://opa.internal:8181", True)


# ---------------------------------------------------------------------------- packs and the CLI

POLICY = """\
envelope cost {
  max_action_usd: 25
}

rule too-costly {
  category: cost
  deny when action.cost.estimated_usd > cost.max_action_usd
  because "costs {action.cost.estimated_usd} USD, over {cost.max_action_usd}"
}

rule irreversible-production {
  require_approval by ["sre-oncall"] when action.environment == "production"
    and not action.reversible
}
"""


@pytest.fixture
def engines(monkeypatch):
    """Engines registered by a test (or by `eval`) are forgotten after it."""
    monkeypatch.setitem(ENGINES, "opa", ENGINES["opa"])
    return ENGINES


@pytest.fixture
def small_pack(new_pack):
    return new_pack(POLICY, manifest={"fail_closed": "require_approval"})


@pytest.mark.parametrize(
    ("mode", "answer", "reason"),
    [
        ("hang", None, "no answer within 0.3s"),
        ("close", None, "connection failed"),
        ("error", None, "HTTP 500: storage is on fire"),
        ("not-json", None, "the answer is not JSON"),
        ("answer", {"result": {"decision": "allow"}}, "a document without"),
        ("answer", {"result": {**VALID, "decision": "yes"}}, "the unknown decision 'yes'"),
    ],
)
def test_a_pack_on_a_failing_server_fails_closed_with_the_reason(
    opa, engines, small_pack, make_action, valid_context, mode, answer, reason
):
    fake, url = opa
    fake.mode, fake.answer = mode, answer
    register_engine("opa", opa_engine(OpaOptions(url=url, timeout=0.3)))
    pack = load_pack(small_pack, engine="opa")
    verdict = pack.evaluate(make_action(), valid_context)
    assert verdict.decision == "require_approval"  # the pack's fail_closed, never allow
    assert verdict.fail_closed
    assert verdict.fired == []
    [problem] = verdict.errors
    assert problem["kind"] == "engine"
    assert reason in problem["message"]


def test_invalid_input_fails_closed_before_reaching_the_server(
    opa, engines, small_pack, make_action, valid_context
):
    fake, url = opa
    register_engine("opa", opa_engine(OpaOptions(url=url, push=True)))
    pack = load_pack(small_pack, engine="opa")
    verdict = pack.evaluate(make_action(environment="prodution"), valid_context)
    assert (verdict.decision, verdict.fail_closed) == ("require_approval", True)
    assert verdict.errors[0]["path"] == "action.environment"
    assert fake.requests == []


@pytest.fixture
def cli(capsys, plain_console):
    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.mark.parametrize(
    ("overrides", "decision", "exit_code"),
    [
        ({}, "allow", 0),
        ({"reversible": False}, "require_approval", 4),
        ({"cost": {"estimated_usd": 30}}, "deny", 5),
    ],
)
def test_eval_on_an_opa_server_matches_the_native_engine(
    opa,
    engines,
    cli,
    small_pack,
    tmp_path,
    make_action,
    valid_context,
    overrides,
    decision,
    exit_code,
):
    fake, url = opa
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"action": make_action(**overrides), "context": valid_context}))
    native = cli("eval", str(small_pack), "--action", str(case), "--format", "json")
    code, out, err = cli(
        "eval", str(small_pack), "--action", str(case), "--format", "json",
        "--engine", "opa", "--opa-url", url, "--opa-push",
    )  # fmt: skip
    assert (code, err) == (exit_code, "")
    assert native[0] == exit_code
    verdict = json.loads(out)
    assert verdict["decision"] == decision
    assert verdict_core(verdict) == verdict_core(json.loads(native[1]))
    assert [m for m, _, _ in fake.requests][-1] == "POST"


def test_eval_on_a_hanging_server_exits_6(opa, engines, cli, small_pack, tmp_path, make_action):
    fake, url = opa
    fake.mode = "hang"
    case = tmp_path / "case.json"
    case.write_text(
        json.dumps({"action": make_action(), "context": {"now": "2026-01-01T00:00:00Z"}})
    )
    code, out, _ = cli(
        "eval", str(small_pack), "--action", str(case), "--engine", "opa",
        "--opa-url", url, "--opa-timeout", "0.3",
    )  # fmt: skip
    assert code == 6
    assert "REQUIRE_APPROVAL" in out and "(failed closed)" in out
    assert "no answer within 0.3s" in out


def test_eval_sends_the_token_from_the_environment(
    opa, engines, cli, small_pack, tmp_path, make_action, valid_context, monkeypatch
):
    fake, url = opa
    fake.token = "from-env"
    monkeypatch.setenv("AIGRE_OPA_TOKEN", "from-env")
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"action": make_action(), "context": valid_context}))
    args = ["eval", str(small_pack), "--action", str(case), "--engine", "opa", "--opa-url", url]
    assert cli(*args, "--opa-push")[0] == 0
    assert cli(*args, "--opa-token", "wrong")[0] == 6


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--opa-url", "http://127.0.0.1:8181"], "the --opa-* options need --engine opa"),
        (["--opa-push"], "the --opa-* options need --engine opa"),
        (["--engine", "opa", "--opa-url", "opa:8181"], "--opa-url: OPA url must look like"),
        (["--engine", "opa", "--opa-timeout", "0"], "--opa-timeout must be a positive number"),
    ],
)
def test_bad_opa_options_are_misuse(cli, small_pack, engines, options, message):
    code, _, err = cli("eval", str(small_pack), "--action", "x.json", *options)
    assert code == 2
    assert message in err


# ---------------------------------------------------------------------------- push order


def test_the_fake_refuses_a_call_of_a_function_it_does_not_hold(opa):
    _, url = opa
    calls = Program(
        modules={
            "aigre/t/a.rego": "package aigre.t\n\nimport data.aigre.t.lib\n\nx := lib.f(1)\n",
            "aigre/t/lib.rego": "package aigre.t.lib\n\nf(v) := v\n",
        }
    )
    with pytest.raises(OpaError, match=r"undefined function data\.aigre\.t\.lib\.f"):
        OpaServer(calls, OpaOptions(url=url)).push_in_order(sorted(calls.modules))


@pytest.mark.parametrize("pack", ["aigre-baseline", "change-tickets"])
def test_every_pack_uploads_dependencies_first_and_then_decides(opa, pack):
    fake, url = opa
    path = ROOT / "policy_packs" / pack
    program = emit_rego(compile_pack(path).compiled)
    engine = OpaEngine(program, OpaOptions(url=url, push=True, timeout=30))
    document = fixture_input(FIXTURES / "llm-rollback.yaml")
    native = load_pack(path).evaluate(**document)
    assert verdict_core(engine.decide(document)) == verdict_core(native.to_dict())
    uploaded = [p.removeprefix("/v1/policies/") for m, p, _ in fake.requests if "policies" in p]
    assert set(uploaded) == set(program.modules)
    base = program.roots[0]
    assert uploaded.index(f"{base}/lib.rego") < uploaded.index(f"{base}/verdict.rego")
    assert uploaded[-1] == f"{base}/decision.rego"  # it calls verdict.rego's _closed
