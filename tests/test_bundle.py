"""OPA bundles: the writer's layout and reproducibility, the reader's checks, `build` and
`inspect`, and bundles of the repository's packs evaluated by regopy against the native engine.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import regopy
from conftest import fixture_input, verdict_core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigre_policy import __version__
from aigre_policy.cli.main import main
from aigre_policy.pack import load_pack
from aigre_policy.rego.bundle import (
    BundleError,
    PackIdentity,
    build_pack_bundle,
    content_digest,
    layout_problems,
    module_package,
    package_segments,
    read_bundle,
    slash_path,
    write_bundle,
)

ROOT = Path(__file__).resolve().parent.parent
PACKS = sorted(p.parent for p in (ROOT / "policy_packs").glob("*/pack.yaml"))
BASELINE = ROOT / "policy_packs" / "aigre-baseline"
IDENTITY = PackIdentity("t", "1.2.3", "sha256:" + "ab" * 32)


@dataclass(frozen=True)
class Program:
    """A hand-made program with the fields the bundle writer reads."""

    package: str = "aigre.t"
    modules: dict[str, str] = field(
        default_factory=lambda: {
            "aigre/t/decision.rego": 'package aigre.t\n\ndecision := {"decision": "allow"}\n'
        }
    )
    data: dict[str, Any] = field(
        default_factory=lambda: {"aigre": {"t": {"envelopes": {"cost": {"max": 25}}}}}
    )
    roots: tuple[str, ...] = ("aigre/t",)
    entrypoint: str = "aigre/t/decision"


def tarball(members: list[tuple[str, bytes]], *, compress: bool = True) -> bytes:
    """An archive holding exactly ``members``: for bundles the writer would never make."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue()) if compress else raw.getvalue()


MANIFEST = json.dumps({"revision": "1", "roots": ["aigre/t"]}).encode()
MODULE = b"package aigre.t\n\nx := 1\n"


# ---------------------------------------------------------------------------- writing


def test_bundle_holds_manifest_data_and_modules_in_a_fixed_order():
    blob = write_bundle(Program(), IDENTITY, "9.9.9")
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        data = json.load(tar.extractfile("data.json"))
        manifest = json.load(tar.extractfile(".manifest"))
    assert names == [".manifest", "data.json", "aigre/t/decision.rego"]
    assert data == {"aigre": {"t": {"envelopes": {"cost": {"max": 25}}}}}
    digest = content_digest(Program().modules, Program().data)
    assert manifest == {
        "revision": f"1.2.3+{digest}",
        "roots": ["aigre/t"],
        "rego_version": 1,
        "metadata": {
            "pack": {"name": "t", "version": "1.2.3", "digest": IDENTITY.digest},
            "content_digest": digest,
            "entrypoint": "aigre/t/decision",
            "compiler": {"name": "aigre-policy", "version": "9.9.9"},
        },
    }


def test_archive_headers_carry_no_time_owner_or_file_name():
    blob = write_bundle(Program(), IDENTITY, "1")
    # gzip header: magic, method, flags (no FNAME), mtime 0
    assert blob[:3] == b"\x1f\x8b\x08"
    assert blob[3] == 0
    assert blob[4:8] == b"\0\0\0\0"
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar.getmembers():
            assert member.isreg()
            assert (member.mtime, member.uid, member.gid) == (0, 0, 0)
            assert (member.uname, member.gname, member.mode) == ("", "", 0o644)


def test_content_change_changes_the_revision_and_nothing_else_does():
    first = read_bundle(write_bundle(Program(), IDENTITY, "1"))
    rebuilt = read_bundle(write_bundle(Program(), IDENTITY, "2"))
    changed = Program(data={"aigre": {"t": {"envelopes": {"cost": {"max": 26}}}}})
    other = read_bundle(write_bundle(changed, IDENTITY, "1"))
    assert first.revision == rebuilt.revision
    assert first.revision != other.revision
    assert other.revision.startswith("1.2.3+sha256:")


segment = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
json_leaf = st.one_of(st.integers(-(2**40), 2**40), st.booleans(), st.text(max_size=8), st.none())
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(segment, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def programs(draw) -> Program:
    root = draw(st.lists(segment, min_size=1, max_size=3))
    names = draw(st.lists(segment, min_size=1, max_size=3, unique=True))
    modules = {}
    for name in names:
        sub = draw(st.lists(segment, max_size=2))
        package = ".".join(root + sub)
        rule = draw(segment)
        body = draw(st.text(alphabet="abc 123\n#é", max_size=40))
        modules["/".join([*root, *sub, f"{name}.rego"])] = (
            f"# {body.replace(chr(10), ' ')}\npackage {package}\n\n{rule} := 1\n"
        )
    data: dict[str, Any] = {}
    node = data
    for key in root[:-1]:
        node = node.setdefault(key, {})
    node[root[-1]] = draw(st.dictionaries(segment, json_value, max_size=4))
    return Program(".".join(root), modules, data, ("/".join(root),), "/".join([*root, "d"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_writing_is_reproducible_and_reads_back_what_was_written(program):
    blob = write_bundle(program, IDENTITY, __version__)
    assert write_bundle(program, IDENTITY, __version__) == blob
    bundle = read_bundle(blob)
    assert {m.path: m.source for m in bundle.modules} == program.modules
    assert bundle.data == program.data
    assert bundle.roots == list(program.roots)
    assert bundle.entrypoint == program.entrypoint
    assert bundle.data_roots() == list(program.roots)


@pytest.mark.parametrize(
    ("program", "problem"),
    [
        (
            Program(roots=("aigre", "aigre/t")),
            "the manifest's roots overlap: `aigre` and `aigre/t`",
        ),
        (
            Program(modules={"aigre/t/x.rego": "package other.t\n\nx := 1\n"}),
            "aigre/t/x.rego: package `other.t` is outside the bundle's roots [`aigre/t`]",
        ),
        (
            Program(data={"aigre": {"t": {}, "u": 1}}),
            "data at `/aigre/u` is outside the bundle's roots [`aigre/t`]",
        ),
        (
            Program(data={"elsewhere": {"x": 1}}),
            "data at `/elsewhere` is outside the bundle's roots [`aigre/t`]",
        ),
        (Program(modules={"x.rego": "x := 1\n"}), "x.rego: a Rego module must start with"),
        (Program(modules={"../x.rego": MODULE.decode()}), "`../x.rego` is not a path inside"),
        (Program(modules={}), "the program has no Rego modules"),
    ],
)
def test_writer_refuses_what_opa_would_refuse(program, problem):
    with pytest.raises(BundleError, match=_literal(problem)):
        write_bundle(program, IDENTITY, "1")


def _literal(text: str) -> str:
    import re

    return re.escape(text)


def test_layout_rules_follow_opa():
    assert layout_problems([""], {"x.rego": "anything.at.all"}, {"a": {"b": 1}}) == []
    assert layout_problems(["a/b", "a/c"], {"x.rego": "a.b.c"}, {"a": {"c": {"d": 1}}}) == []
    assert layout_problems(["a/b"], {}, {"a": {"b": 1}}) == []  # a value at the root itself
    assert layout_problems(["a/b"], {"x.rego": "a"}, {}) == [
        "x.rego: package `a` is outside the bundle's roots [`a/b`]"
    ]
    assert layout_problems(["a/b"], {}, {"a": 1}) == [
        "data at `/a` is outside the bundle's roots [`a/b`]"
    ]
    assert layout_problems(["ab", "a"], {}, {}) == []  # segments, not string prefixes


def test_package_refs_and_entrypoints():
    assert package_segments('aigre.x["with-dash"].rules') == ["aigre", "x", "with-dash", "rules"]
    assert module_package("# c\n\npackage aigre.x # trailing\n", "m") == "aigre.x"
    assert slash_path("data.aigre.x.decision") == "aigre/x/decision"
    assert slash_path("aigre.x.decision") == "aigre/x/decision"
    assert slash_path("/aigre/x/decision") == "aigre/x/decision"
    for bad in ("", "a..b", "a.", ".a", "a b", "1a"):
        with pytest.raises(BundleError):
            package_segments(bad)


# ---------------------------------------------------------------------------- reading


def _corrupt_bundles() -> dict[str, tuple[bytes, str]]:
    good = write_bundle(Program(), IDENTITY, "1")
    return {
        "truncated gzip": (good[: len(good) // 2], "the gzip stream is truncated"),
        "damaged gzip": (good[:10] + b"\xff" * 40 + good[50:], "the gzip stream is damaged"),
        "not gzip": (b"PK\x03\x04 a zip file", "not a gzip file"),
        "empty file": (b"", "not a gzip file"),
        "tar without gzip": (
            tarball([(".manifest", MANIFEST)], compress=False),
            "a tar archive without gzip",
        ),
        "not a tar": (gzip.compress(b"just some text, no tar headers" * 40), "not a tar archive"),
        "missing manifest": (tarball([("aigre/t/x.rego", MODULE)]), "no .manifest"),
        "manifest not JSON": (tarball([(".manifest", b"{revision: 1")]), ".manifest is not valid"),
        "manifest not an object": (tarball([(".manifest", b"[1, 2]")]), "must hold a JSON object"),
        "roots not strings": (
            tarball([(".manifest", b'{"roots": [1]}')]),
            "`roots` must be a list of strings",
        ),
        "revision not a string": (
            tarball([(".manifest", b'{"revision": 7}')]),
            "`revision` must be a string",
        ),
        "bad rego_version": (
            tarball([(".manifest", b'{"rego_version": 3}')]),
            "`rego_version` must be 0 or 1",
        ),
        "data not JSON": (
            tarball([(".manifest", MANIFEST), ("data.json", b'{"aigre": ')]),
            "data.json is not valid JSON",
        ),
        "data outside roots": (
            tarball([(".manifest", MANIFEST), ("data.json", b'{"other": {"x": 1}}')]),
            "data at `/other` is outside the bundle's roots",
        ),
        "overlapping roots": (
            tarball([(".manifest", b'{"roots": ["a", "a/b"]}')]),
            "the manifest's roots overlap",
        ),
        "package outside roots": (
            tarball([(".manifest", MANIFEST), ("p.rego", b"package elsewhere\n")]),
            "package `elsewhere` is outside the bundle's roots",
        ),
        "module without package": (
            tarball([(".manifest", MANIFEST), ("aigre/t/x.rego", b"x := 1\n")]),
            "must start with a `package` line",
        ),
        "module not UTF-8": (
            tarball([(".manifest", MANIFEST), ("aigre/t/x.rego", b"package aigre.t \xff")]),
            "is not UTF-8 text",
        ),
        "path escapes": (
            tarball([(".manifest", MANIFEST), ("../evil.rego", MODULE)]),
            "points outside the bundle",
        ),
        "duplicate member": (
            tarball([(".manifest", MANIFEST), (".manifest", MANIFEST)]),
            "appears twice",
        ),
    }


CORRUPT = _corrupt_bundles()


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_reader_names_what_is_wrong(case):
    blob, message = CORRUPT[case]
    with pytest.raises(BundleError, match=_literal(message)):
        read_bundle(blob, "b.tar.gz")


GOOD = write_bundle(Program(), IDENTITY, "1")
_RAW = gzip.decompress(GOOD)  # the tar inside, to damage it under a valid gzip layer


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.builds(lambda n: GOOD[:n], st.integers(0, len(GOOD) - 1)),
        st.builds(
            lambda i, b: GOOD[:i] + bytes([b]) + GOOD[i + 1 :],
            st.integers(0, len(GOOD) - 1),
            st.integers(0, 255),
        ),
        st.builds(
            lambda i, b: gzip.compress(_RAW[:i] + bytes([b]) + _RAW[i + 1 :], mtime=0),
            st.integers(0, 2047),
            st.integers(0, 255),
        ),
        st.binary(max_size=600),
    )
)
def test_any_damage_is_a_bundle_error_never_a_crash(blob):
    try:
        bundle = read_bundle(blob)
    except BundleError as exc:
        assert str(exc)
    else:
        assert isinstance(bundle.manifest, dict)


def test_reader_refuses_links():
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(".manifest")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(BundleError, match="is not a regular file"):
        read_bundle(gzip.compress(raw.getvalue()))


def test_reader_accepts_opa_style_members_and_nested_data_files():
    # `opa build` writes names with a leading slash; hand-made bundles put data.json in
    # directories, each loaded at its directory's path
    blob = tarball(
        [
            ("/.manifest", MANIFEST),
            ("/aigre/t/envelopes/data.json", b'{"cost": {"max": 1}}'),
            ("./aigre/t/x.rego", MODULE),
            ("/data.json", b'{"aigre": {"t": {"other": true}}}'),
        ]
    )
    bundle = read_bundle(blob)
    assert bundle.data == {"aigre": {"t": {"envelopes": {"cost": {"max": 1}}, "other": True}}}
    assert [m.path for m in bundle.modules] == ["aigre/t/x.rego"]
    assert bundle.entrypoint is None


# ---------------------------------------------------------------------------- inspect


@pytest.fixture
def cli(capsys, plain_console):
    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_inspect_lists_manifest_modules_data_and_entrypoint(cli, tmp_path):
    target = tmp_path / "b.tar.gz"
    target.write_bytes(write_bundle(Program(), IDENTITY, "1"))
    code, out, err = cli("inspect", str(target))
    assert (code, err) == (0, "")
    assert "revision      1.2.3+sha256:" in out
    assert "roots         aigre/t" in out
    assert "rego_version  1" in out
    assert f"pack          t 1.2.3 {IDENTITY.digest}" in out
    assert "entrypoint    aigre/t/decision" in out
    assert "aigre/t/decision.rego  aigre.t " in out
    assert "aigre/t  envelopes" in out

    code, out, err = cli("inspect", str(target), "--format", "json")
    document = json.loads(out)
    assert code == 0
    assert document["entrypoint"] == "aigre/t/decision"
    assert document["manifest"]["roots"] == ["aigre/t"]
    assert document["modules"] == [
        {
            "path": "aigre/t/decision.rego",
            "package": "aigre.t",
            "size": len(Program().modules["aigre/t/decision.rego"]),
        }
    ]
    assert document["data_roots"] == [{"root": "aigre/t", "keys": ["envelopes"]}]
    assert [f["path"] for f in document["files"]] == [
        ".manifest",
        "data.json",
        "aigre/t/decision.rego",
    ]


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_inspect_of_a_broken_bundle_exits_1_with_one_clear_line(cli, tmp_path, case):
    blob, message = CORRUPT[case]
    target = tmp_path / "b.tar.gz"
    target.write_bytes(blob)
    code, out, err = cli("inspect", str(target), "--format", "json")
    assert code == 1
    assert out == ""
    assert err.startswith(f"error: {target}: ")
    assert message in err.replace("\n", " ")
    assert "Traceback" not in err


def test_inspect_of_a_missing_file_is_misuse(cli, tmp_path):
    code, _, err = cli("inspect", str(tmp_path / "nope.tar.gz"))
    assert code == 2
    assert "file not found" in err


def test_inspect_of_a_directory_is_misuse(cli, tmp_path):
    code, _, err = cli("inspect", str(tmp_path))
    assert code == 2
    assert f"cannot read {tmp_path}" in err


# ---------------------------------------------------------------------------- build


def test_build_writes_a_bundle_of_the_pack(cli, tmp_path):
    target = tmp_path / "out" / "baseline.tar.gz"
    target.parent.mkdir()
    code, out, _ = cli("build", str(BASELINE), "-o", str(target))
    assert code == 0
    bundle = read_bundle(target.read_bytes())
    pack = load_pack(BASELINE)
    assert bundle.metadata["pack"] == {
        "name": pack.name,
        "version": pack.version,
        "digest": pack.digest,
    }
    assert bundle.metadata["compiler"] == {"name": "aigre-policy", "version": __version__}
    assert bundle.revision == f"{pack.version}+{bundle.metadata['content_digest']}"
    assert bundle.roots == ["aigre/aigre_baseline"]
    assert bundle.entrypoint == "aigre/aigre_baseline/decision"
    # the envelopes, and the table of each time zone the pack reads (its window's, UTC)
    assert bundle.data.keys() == {"aigre"} and bundle.data["aigre"].keys() == {"aigre_baseline"}
    data = bundle.data["aigre"]["aigre_baseline"]
    assert data.keys() == {"envelopes", "zones"}
    assert data["envelopes"] == pack.envelopes and data["zones"].keys() == {"UTC"}
    assert f"built {target}: aigre-baseline 1.0.0, {len(bundle.modules)} modules" in out
    assert not list(target.parent.glob(".*"))  # no temporary file left behind


def test_build_is_reproducible_byte_for_byte_wherever_the_pack_sits(cli, tmp_path, monkeypatch):
    copy = tmp_path / "elsewhere" / "deep" / "baseline"
    shutil.copytree(BASELINE, copy)
    first, second, third = tmp_path / "1.tar.gz", tmp_path / "2.tar.gz", tmp_path / "3.tar.gz"
    assert cli("build", str(BASELINE), "-o", str(first))[0] == 0
    assert cli("build", str(BASELINE), "-o", str(second))[0] == 0
    monkeypatch.chdir(copy.parent)
    assert cli("build", "baseline", "-o", str(third))[0] == 0
    assert first.read_bytes() == second.read_bytes() == third.read_bytes()


def test_build_bakes_envelope_overrides_into_the_data(cli, tmp_path):
    plain, raised = tmp_path / "plain.tar.gz", tmp_path / "raised.tar.gz"
    assert cli("build", str(BASELINE), "-o", str(plain))[0] == 0
    code, _, _ = cli("build", str(BASELINE), "-o", str(raised), "--set", "cost.max_action_usd=999")
    assert code == 0
    before, after = read_bundle(plain.read_bytes()), read_bundle(raised.read_bytes())
    assert after.data_at("aigre/aigre_baseline/envelopes/cost")["max_action_usd"] == 999
    assert before.revision != after.revision
    assert before.metadata["pack"]["digest"] != after.metadata["pack"]["digest"]


def test_a_pack_that_does_not_compile_exits_1_with_its_diagnostics(cli, new_pack, tmp_path):
    pack = new_pack('rule r { deny when action.environment == "prodution" }\n')
    target = tmp_path / "b.tar.gz"
    code, out, _ = cli("build", str(pack), "-o", str(target))
    assert code == 1
    assert "error[E202]: 'prodution' is never a value here" in out
    assert f"error: {pack} does not compile; run `aigre-policy check {pack}`" in out
    assert not target.exists()


def test_a_pack_with_remainder_and_division_builds(cli, new_pack, tmp_path):
    """`%` and `/` by a value that may be zero were refused by `build` (E601, E602,
    retired); the bundle holds them, failing closed where native fails."""
    pack = new_pack("rule odd { deny when action.change.lines % 2 == 1 and 1 / usage.n > 0 }\n")
    (pack / "policies" / "usage.aigre").write_text("usage n = count() over last 1h\n")
    assert cli("check", str(pack))[0] == 0
    target = tmp_path / "b.tar.gz"
    code, out, _ = cli("build", str(pack), "-o", str(target))
    assert code == 0, out
    assert "E601" not in out and "E602" not in out
    assert target.exists()


def test_build_misuse_exits_2(cli, tmp_path):
    code, _, err = cli("build", str(tmp_path / "nothing"), "-o", str(tmp_path / "b.tar.gz"))
    assert code == 2
    assert "no pack at" in err
    code, _, err = cli("build", str(BASELINE), "-o", str(tmp_path / "missing" / "b.tar.gz"))
    assert code == 2
    assert "cannot write" in err


# ---------------------------------------------------------------------------- regopy


FIXTURES = sorted((ROOT / "fixtures" / "actions").glob("*.yaml"))


@pytest.mark.parametrize("pack_dir", PACKS, ids=[p.name for p in PACKS])
def test_bundles_evaluate_in_regopy_as_the_native_engine_decides(pack_dir):
    built = build_pack_bundle(pack_dir)
    assert built.ok, built.diagnostics
    bundle = read_bundle(built.archive)  # only what the tarball holds
    rego = regopy.Interpreter()
    for module in bundle.modules:
        rego.add_module(module.path, module.source)
    rego.add_data(bundle.data)
    compiled = rego.build(None, [bundle.entrypoint])
    assert compiled.ok()
    pack = load_pack(pack_dir)
    declared = {usage.name for usage in pack.program.usages}
    documents = []
    for fixture in FIXTURES:
        document = fixture_input(fixture)
        # the usage values this pack declares: the fixtures carry the baseline's, which a pack
        # declaring others would reject before any rule runs
        document["usage"] = {k: v for k, v in document["usage"].items() if k in declared}
        documents.append((fixture.name, document))
    broken = json.loads(json.dumps(documents[0][1]))
    broken["action"]["environment"] = "prodution"
    del broken["action"]["cost"]
    documents.append(("an input that breaks the schema", broken))
    outcomes = set()
    for name, document in documents:
        native = pack.evaluate(document["action"], document["context"], document["usage"])
        rego.set_input(regopy.Input(document))
        output = json.loads(str(rego.query_bundle_entrypoint(compiled, bundle.entrypoint)))
        assert verdict_core(output["expressions"][0]) == verdict_core(native.to_dict()), name
        outcomes.add((native.decision, native.fail_closed))
    assert len(FIXTURES) >= 60
    assert (pack.fail_closed, True) in outcomes
    assert len(outcomes) >= 4  # the fixtures reach the pack's rules, not only its default


@pytest.mark.parametrize("member", [".manifest", "data.json", "aigre/t/data.yaml"])
def test_a_deeply_nested_document_is_a_bundle_error_not_a_crash(member):
    deep = b"[" * 100_000 + b"]" * 100_000
    members = {".manifest": MANIFEST, "aigre/t/x.rego": MODULE, member: deep}
    with pytest.raises(BundleError, match="nested too deeply"):
        read_bundle(tarball(list(members.items())), "b.tar.gz")


def test_yaml_aliases_in_data_are_refused():
    # nine lines of aliases can stand for a billion nodes that every engine would expand
    bomb = b'a: &a ["x", "x"]\nb: &b [*a, *a]\nc: [*b, *b]\n'
    members = [(".manifest", MANIFEST), ("aigre/t/x.rego", MODULE), ("aigre/t/data.yaml", bomb)]
    with pytest.raises(BundleError, match=r"aigre/t/data\.yaml is not valid YAML .*an alias"):
        read_bundle(tarball(members), "b.tar.gz")
