"""A built bundle in place of a pack directory: ``load_pack``, ``eval`` and ``test`` run the
bundle's Rego, verify a signed bundle first, fail closed, and say in one line what needs the
pack's source.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
from conftest import fixture_input, verdict_core
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from aigre_policy.cli.main import main
from aigre_policy.pack import EvaluationError, load_pack
from aigre_policy.rego.bundle import (
    BundleError,
    BundleSignatureError,
    PackIdentity,
    build_pack_bundle,
    write_bundle,
)
from aigre_policy.rego.bundle_pack import BundlePack
from aigre_policy.rego.signing import BundleSigner, signing_key, verification_key

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "policy_packs" / "aigre-baseline"
TICKETS = ROOT / "policy_packs" / "change-tickets"
FIXTURES = sorted((ROOT / "fixtures" / "actions").glob("*.yaml"))
KEY = ed25519.Ed25519PrivateKey.generate()
PRIVATE = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
PUBLIC = KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """The baseline and change-tickets packs built once, plain and signed, and the keys."""
    where = tmp_path_factory.mktemp("bundles")
    signer = BundleSigner(signing_key(PRIVATE))
    made = {}
    for name, pack in (("baseline", BASELINE), ("tickets", TICKETS)):
        for suffix, sign in (("", None), ("-signed", signer)):
            built = build_pack_bundle(pack, signer=sign)
            assert built.archive is not None
            made[name + suffix] = where / f"{name}{suffix}.tar.gz"
            made[name + suffix].write_bytes(built.archive)
    made["public"] = where / "ed.pub"
    made["public"].write_bytes(PUBLIC)
    made["private"] = where / "ed.pem"
    made["private"].write_bytes(PRIVATE)
    return made


def _members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path, mode="r:gz") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isreg()]


def _tarball(members: list[tuple[str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue())


def _with_cost_cap(source: Path, target: Path, cap: bytes) -> Path:
    """The bundle with its per-action cost cap changed in data.json (no longer as built)."""
    members = _members(source)
    data = dict(members)["data.json"]
    assert b'"max_action_usd": 250,' in data
    changed = data.replace(b'"max_action_usd": 250,', b'"max_action_usd": ' + cap + b",")
    target.write_bytes(_tarball([(n, changed if n == "data.json" else b) for n, b in members]))
    return target


# ---------------------------------------------------------------------------- load_pack


def test_a_bundle_decides_as_its_pack_directory_does(bundles):
    from_bundle = load_pack(bundles["baseline"])
    native = load_pack(BASELINE)
    assert isinstance(from_bundle, BundlePack)
    assert (from_bundle.name, from_bundle.version, from_bundle.digest) == (
        native.name,
        native.version,
        native.digest,
    )
    assert from_bundle.engine == "rego"
    assert from_bundle.fail_closed == native.fail_closed
    decisions = set()
    for fixture in FIXTURES[::3]:
        document = fixture_input(fixture)
        expected = native.evaluate(document["action"], document["context"], document["usage"])
        got = from_bundle.evaluate(document["action"], document["context"], document["usage"])
        assert verdict_core(got.to_dict()) == verdict_core(expected.to_dict()), fixture.name
        assert got.to_dict()["pack"] == expected.to_dict()["pack"]
        decisions.add(got.decision)
    assert len(decisions) >= 3


def test_input_that_breaks_the_schema_fails_closed_on_a_bundle(bundles):
    pack = load_pack(bundles["baseline"])
    native = load_pack(BASELINE)
    document = fixture_input(FIXTURES[0])
    document["action"]["environment"] = "prodution"
    verdict = pack.evaluate(document["action"], document["context"], document["usage"])
    expected = native.evaluate(document["action"], document["context"], document["usage"])
    assert verdict.fail_closed
    assert verdict.decision == native.fail_closed == "require_approval"
    assert verdict_core(verdict.to_dict()) == verdict_core(expected.to_dict())
    with pytest.raises(EvaluationError):
        pack.evaluate(document["action"], document["context"], document["usage"], strict=True)


def test_an_engine_fault_fails_closed_with_the_packs_decision_and_approvers(bundles):
    pack = load_pack(bundles["baseline"])
    native = load_pack(BASELINE)

    class Broken:
        def decide(self, document):
            raise RuntimeError("the engine fell over")

    pack._engine = Broken()
    document = fixture_input(FIXTURES[0])
    verdict = pack.evaluate(document["action"], document["context"], document["usage"])
    assert verdict.fail_closed
    assert verdict.decision == "require_approval"
    assert list(verdict.approvers) == list(native.checked.policy.fail_closed_approvers)
    assert verdict.errors[0]["message"] == "RuntimeError: the engine fell over"


def test_a_signed_bundle_loads_only_with_its_key(bundles):
    signed = bundles["tickets-signed"]
    with pytest.raises(BundleSignatureError, match="the bundle is signed: give its verification"):
        load_pack(signed)
    for key in (bundles["public"], PUBLIC, str(bundles["public"]), verification_key(PUBLIC)):
        pack = load_pack(signed, verification_key=key)
        assert pack.signature is not None
        assert pack.signature.algorithm == "EdDSA"
    other = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(BundleSignatureError, match="signature does not verify"):
        load_pack(signed, verification_key=other)
    with pytest.raises(BundleSignatureError, match=r"not signed: no \.signatures\.json"):
        load_pack(bundles["tickets"], verification_key=PUBLIC)


def test_a_tampered_signed_bundle_is_refused_before_it_runs(bundles, tmp_path):
    tampered = _with_cost_cap(bundles["baseline-signed"], tmp_path / "t.tar.gz", b"25000")
    with pytest.raises(BundleSignatureError, match=r"data\.json: digest mismatch"):
        load_pack(tampered, verification_key=PUBLIC)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"envelopes": {"cost": {"max_action_usd": 5}}}, "envelope values are fixed"),
        ({"engine": "native"}, "holds Rego, not the native evaluator"),
        ({"engine": "nope"}, "unknown engine 'nope'"),
    ],
)
def test_what_a_bundle_cannot_do_is_one_line(bundles, kwargs, message):
    with pytest.raises(BundleError, match=message) as caught:
        load_pack(bundles["tickets"], **kwargs)
    assert "\n" not in str(caught.value)


def test_a_key_for_a_pack_directory_is_refused():
    with pytest.raises(ValueError, match="not a bundle"):
        load_pack(TICKETS, verification_key=PUBLIC)


ALLOW_ALL = (
    '{"decision": "allow", "fail_closed": false, "default_applied": true, "fired": [], '
    '"warnings": [], "errors": []}'
)


class HandMade:
    """A hand-made program: ``decision`` is whatever Rego text it is given."""

    package = "aigre.t"
    data: dict = {}
    roots = ("aigre/t",)
    entrypoint = "aigre/t/decision"

    def __init__(self, decision: str):
        self.modules = {"aigre/t/decision.rego": f"package aigre.t\n\ndecision := {decision}\n"}


@pytest.mark.parametrize(
    "decision, message",
    [
        ('{"decision": "allow"}', "its Rego does not run: the decision document is malformed"),
        (ALLOW_ALL, "an empty input does not fail closed"),
    ],
)
def test_a_bundle_that_does_not_fail_closed_is_refused(tmp_path, decision, message):
    target = tmp_path / "hand-made.tar.gz"
    target.write_bytes(write_bundle(HandMade(decision), PackIdentity("t", "1", "sha256:0"), "1"))
    with pytest.raises(BundleError, match=message):
        load_pack(target)


def test_a_bundle_not_built_by_aigre_policy_is_refused(tmp_path):
    foreign = tmp_path / "foreign.tar.gz"
    foreign.write_bytes(
        _tarball(
            [
                (".manifest", json.dumps({"revision": "x", "roots": ["p"]}).encode()),
                ("p/x.rego", b"package p\n\nx := 1\n"),
            ]
        )
    )
    with pytest.raises(BundleError, match="names no pack and entrypoint"):
        load_pack(foreign)


# ---------------------------------------------------------------------------- eval


@pytest.fixture
def cli(capsys, plain_console):
    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_eval_on_a_bundle_gives_the_verdict_and_exit_code_of_the_directory(cli, bundles):
    fixture = next(f for f in FIXTURES if "admin-role-grant.yaml" in f.name)
    code, out, err = cli("eval", bundles["baseline"], "--action", fixture, "--format", "json")
    native_code, native_out, _ = cli("eval", BASELINE, "--action", fixture, "--format", "json")
    assert (code, err) == (native_code, "")
    assert code == 4  # require_approval
    assert verdict_core(json.loads(out)) == verdict_core(json.loads(native_out))
    code, out, _ = cli("eval", bundles["baseline"], "--emit", "rego")
    assert code == 0
    assert "# file: aigre/aigre_baseline/decision.rego" in out


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "the bundle is signed: give its verification key"),
        (["--verification-key", "OTHER"], "signature does not verify"),
        (["--verification-key", "PUBLIC", "--emit", "python"], "it holds Rego, not the"),
        (["--verification-key", "PUBLIC", "--set", "cost.max_action_usd=5"], "fixed when"),
        (["--verification-key", "PUBLIC", "--engine", "native"], "not the native evaluator"),
    ],
)
def test_eval_on_a_bundle_refuses_in_one_line_with_exit_2(cli, bundles, tmp_path, extra, message):
    other = tmp_path / "other.pub"
    other.write_bytes(
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    names = {"OTHER": other, "PUBLIC": bundles["public"]}
    fixture = FIXTURES[0]
    args = [names.get(a, a) for a in extra]
    code, out, err = cli("eval", bundles["tickets-signed"], "--action", fixture, *args)
    assert (code, out) == (2, "")
    assert err.startswith("error: ")
    assert message in err
    assert err.count("\n") == 1


def test_eval_of_a_directory_with_a_verification_key_is_misuse(cli, bundles):
    code, _, err = cli(
        "eval", TICKETS, "--action", FIXTURES[0], "--verification-key", bundles["public"]
    )
    assert code == 2
    assert "--verification-key applies to a bundle" in err


# ---------------------------------------------------------------------------- test


def test_the_packs_tests_pass_on_its_signed_bundle(cli, bundles):
    code, out, err = cli(
        "test",
        bundles["tickets-signed"],
        "--tests",
        TICKETS,
        "--verification-key",
        bundles["public"],
    )
    assert code == 0, out + err
    assert "change-tickets 1.0.0" in out
    assert "10 passed" in out


def test_a_case_with_envelope_overrides_runs_on_the_bundle(cli, bundles):
    # `set envelopes` in a test: the source compiles the override, the bundle's Rego runs on it
    code, out, err = cli(
        "test", bundles["baseline"], "--tests", BASELINE, "-k", "smaller budget", "-v"
    )
    assert code == 0, out + err
    assert "1 passed" in out


def test_the_tests_judge_the_bundle_not_the_directory(cli, bundles, tmp_path):
    # a cost cap raised inside the bundle: the tests of the cap now fail against it
    changed = _with_cost_cap(bundles["baseline"], tmp_path / "raised.tar.gz", b"25000")
    code, out, _ = cli(
        "test", changed, "--tests", BASELINE, "-k", "action-cost-cap", "--format", "json"
    )
    report = json.loads(out)
    assert code == 1
    assert report["ok"] is False
    failed = [
        case["name"]
        for pack in report["packs"]
        for case in pack["tests"]
        if case["status"] == "failed"
    ]
    assert "251 USD" in " ".join(failed)  # 251 USD is no longer over the cap
    code, out, _ = cli("test", bundles["baseline"], "--tests", BASELINE, "-k", "action-cost-cap")
    assert code == 0, out


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "a bundle holds no tests: run `test BUNDLE --tests PACK_DIR`"),
        (["--tests", TICKETS, "--coverage"], "--coverage needs the pack directory"),
        (["--tests", TICKETS, "--mutate"], "--mutate needs the pack directory"),
        (["--tests", TICKETS, "--format", "sarif"], "--format sarif needs the pack directory"),
        (["--tests", "BUNDLE"], "not a pack directory"),
    ],
)
def test_test_on_a_bundle_refuses_what_needs_the_source(cli, bundles, extra, message):
    extra = [bundles["tickets"] if a == "BUNDLE" else a for a in extra]
    code, _, err = cli("test", bundles["tickets"], *extra)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1


def test_tests_from_another_pack_warn_that_the_bundle_was_built_from_something_else(cli, bundles):
    code, _, err = cli("test", bundles["tickets"], "--tests", BASELINE, "-k", "smaller budget")
    assert "was built from another version of" in err
    assert code == 1


@pytest.mark.parametrize(
    "call",
    [
        "opa.runtime().env",  # rego-cpp answers with the process environment, secrets included
        'http.send({"method": "get", "url": "http://127.0.0.1:1"})',
        "time.now_ns()",
        'net.lookup_ip_addr("example.com")',
    ],
)
def test_a_bundle_whose_rego_reads_the_world_is_refused(bundles, tmp_path, call):
    leak = f"package aigre.change_tickets.leak\n\nfound := {call}\n".encode()
    members = [*_members(bundles["tickets"]), ("aigre/change_tickets/leak.rego", leak)]
    target = tmp_path / "leak.tar.gz"
    target.write_bytes(_tarball(members))
    with pytest.raises(BundleError, match=r"leak\.rego:3: `.*` reads the world outside"):
        load_pack(target)


def test_names_of_impure_builtins_in_strings_and_comments_are_only_text(bundles, tmp_path):
    note = (
        b"package aigre.change_tickets.note\n\n# opa.runtime() is never called here\n"
        b'note := "hosts on net.internal, \\"opa.runtime\\" as text"\nraw := `http.send`\n'
    )
    members = [*_members(bundles["tickets"]), ("aigre/change_tickets/note.rego", note)]
    target = tmp_path / "note.tar.gz"
    target.write_bytes(_tarball(members))
    assert load_pack(target).name == "change-tickets"


@pytest.mark.parametrize(
    "extra", [["--tests", TICKETS], ["--verification-key", "k.pem"], ["--scope", "prod"]]
)
def test_bundle_options_on_a_pack_directory_are_misuse(cli, extra):
    code, _, err = cli("test", TICKETS, *extra)
    assert code == 2
    assert "apply to a bundle, not a pack directory" in err


def test_a_bundle_judges_the_json_data_a_value_stands_for_as_a_pack_does(bundles):
    from collections import OrderedDict

    pack = load_pack(bundles["baseline"])
    native = load_pack(BASELINE)
    document = fixture_input(FIXTURES[0])
    plain = pack.evaluate(document["action"], document["context"], document["usage"])
    ordered = pack.evaluate(OrderedDict(document["action"]), document["context"], document["usage"])
    assert verdict_core(ordered.to_dict()) == verdict_core(plain.to_dict())
    odd = dict(document["action"], labels={"a", "b"})  # a set has no JSON meaning
    got = pack.evaluate(odd, document["context"], document["usage"])
    expected = native.evaluate(odd, document["context"], document["usage"])
    assert got.fail_closed and expected.fail_closed
    assert got.decision == expected.decision
    assert got.errors == expected.errors
    assert got.errors[0]["kind"] == "input"
