"""The compile cache: used when the pack is unchanged, missed on any change, and never
trusting an entry it cannot verify (whoever can write the cache directory is an attacker)."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from aigre_policy.cache import CompileCache
from aigre_policy.cli.main import main
from aigre_policy.pack import load_pack
from aigre_policy.sandbox import UnsafeCode

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "policy_packs" / "aigre-baseline"
ACTION = REPO / "fixtures" / "actions" / "llm-patch-401-lines.yaml"


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    copy = tmp_path / "pack"
    shutil.copytree(BASELINE, copy)
    return copy


@pytest.fixture
def cache(tmp_path: Path) -> CompileCache:
    return CompileCache(tmp_path / "cache", tmp_path / "config" / "cache-key")


def _entries(cache: CompileCache) -> list[Path]:
    return sorted(cache.directory.glob("*.pack"))


def test_a_second_load_of_an_unchanged_pack_comes_from_the_cache(pack, cache) -> None:
    first = cache.compile(pack)
    second = cache.compile(pack)
    assert (cache.misses, cache.hits) == (1, 1)
    assert len(_entries(cache)) == 1
    assert second.ok and second.compiled.digest == first.compiled.digest
    assert second.compiled.python.source == first.compiled.python.source
    action = {"kind": "rollback"}
    assert (
        load_pack(pack, cache=cache).evaluate(action).to_dict()["decision"]
        == load_pack(pack).evaluate(action).to_dict()["decision"]
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda p: (p / "policies" / "envelopes.aigre").write_text(
            (p / "policies" / "envelopes.aigre").read_text() + "\n# a comment\n"
        ),
        lambda p: (p / "pack.yaml").write_text((p / "pack.yaml").read_text() + "\n"),
        lambda p: (p / "policies" / "extra.aigre").write_text(
            'rule extra-rule {\n  category: risk\n  warn when action.kind == "rollback"\n'
            '  because "extra"\n}\n'
        ),
    ],
    ids=["policy edited", "manifest edited", "policy added"],
)
def test_any_change_to_the_pack_misses(pack, cache, change) -> None:
    cache.compile(pack)
    change(pack)
    report = cache.compile(pack)
    assert (cache.misses, cache.hits) == (2, 0)
    assert report.ok


def test_envelope_overrides_are_part_of_the_key(pack, cache) -> None:
    cache.compile(pack)
    report = cache.compile(pack, {"cost": {"monthly_budget_usd": 1}})
    assert cache.hits == 0
    assert report.compiled.envelopes["cost"]["monthly_budget_usd"] == 1


def test_a_tampered_entry_is_ignored_and_rebuilt(pack, cache) -> None:
    cache.compile(pack)
    (entry,) = _entries(cache)
    blob = bytearray(entry.read_bytes())
    blob[-10] ^= 0xFF
    entry.write_bytes(bytes(blob))
    report = cache.compile(pack)
    assert (cache.misses, cache.hits) == (2, 0)
    assert report.ok
    cache.compile(pack)  # the rebuilt entry is good again
    assert cache.hits == 1


def test_an_entry_forged_without_the_key_is_never_unpickled(pack, cache, tmp_path) -> None:
    """An attacker who writes the directory but cannot read the key: a pickle that would
    run code, sealed under a key of its own, is rejected before it is read."""
    cache.compile(pack)
    (entry,) = _entries(cache)
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps(Exploit())
    entry.write_bytes(b"\0" * 32 + payload)
    report = cache.compile(pack)
    assert not marker.exists()
    assert report.ok and cache.hits == 0


def test_an_entry_sealed_with_the_key_still_builds_no_function(pack, cache, tmp_path) -> None:
    """Defence in depth: even a correctly sealed entry may only hold the compiler's data."""
    from aigre_policy.cache import _seal

    cache.compile(pack)
    (entry,) = _entries(cache)
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps(Exploit())
    name = entry.name.removesuffix(".pack")
    entry.write_bytes(_seal(cache.key_path.read_bytes(), name, payload) + payload)
    report = cache.compile(pack)
    assert not marker.exists()
    assert report.ok and cache.hits == 0


def test_generated_python_is_rechecked_against_the_allowlist(pack, cache) -> None:
    """A sealed entry whose Python escapes the allowlist is not run: the verify step of a
    fresh compile runs on every load (each ``explain_N`` on its first call, see below)."""
    from aigre_policy.cache import _DataUnpickler, _seal

    cache.compile(pack)
    (entry,) = _entries(cache)
    name = entry.name.removesuffix(".pack")
    import hashlib
    import io
    from dataclasses import replace

    stored = _DataUnpickler(io.BytesIO(entry.read_bytes()[32:])).load()
    evil = stored["python"].source + "\n__import__('os').system('true')\n"
    stored["python"] = replace(stored["python"], source=evil)
    stored["python_sha256"] = hashlib.sha256(evil.encode()).hexdigest()
    payload = pickle.dumps(stored)
    entry.write_bytes(_seal(cache.key_path.read_bytes(), name, payload) + payload)
    report = cache.compile(pack)
    assert report.ok and cache.hits == 0
    assert "__import__" not in report.compiled.python.source


def test_a_key_others_can_read_turns_the_cache_off(pack, cache) -> None:
    cache.compile(pack)
    cache.key_path.chmod(0o644)
    cache.compile(pack)
    cache.compile(pack)
    assert cache.hits == 0


def test_the_cli_uses_the_cache_and_no_cache_bypasses_it(pack, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AIGRE_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("AIGRE_NO_CACHE", raising=False)
    assert main(["eval", str(pack), "--action", str(ACTION), "--no-cache"]) == 3
    assert not (tmp_path / "c").exists()
    assert main(["eval", str(pack), "--action", str(ACTION)]) == 3
    assert len(list((tmp_path / "c").glob("*.pack"))) == 1
    assert main(["check", str(pack)]) == 0  # check reads the same entry
    assert len(list((tmp_path / "c").glob("*.pack"))) == 1


def test_an_unwritable_cache_directory_only_costs_a_compile(pack, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = CompileCache(blocker / "cache", tmp_path / "config" / "cache-key")
    assert cache.compile(pack).ok
    assert cache.compile(pack).ok
    assert cache.hits == 0


def test_another_python_misses(pack, cache, monkeypatch) -> None:
    """An entry written under one interpreter is not revived by another."""
    import sys

    cache.compile(pack)
    monkeypatch.setattr(sys, "version", sys.version + " (another build)")
    report = cache.compile(pack)
    assert (cache.misses, cache.hits) == (2, 0)
    assert report.ok


def test_a_revived_pack_holds_the_same_nodes_as_a_fresh_compile(pack, cache) -> None:
    """Entries store nodes as calls of their classes: what comes back equals what went in."""
    from aigre_policy.compiler import compile_pack

    cache.compile(pack)
    revived = cache.compile(pack).compiled.checked
    fresh = compile_pack(pack).compiled.checked
    assert cache.hits == 1
    assert revived.modules == fresh.modules
    assert revived.program == fresh.program
    assert revived.manifest == fresh.manifest and revived.policy == fresh.policy
    assert revived.input_schema == fresh.input_schema


def test_a_cache_load_leaves_the_garbage_collector_as_it_found_it(pack, cache) -> None:
    """The collector is paused while an entry loads (it would only walk the new nodes)."""
    import gc

    cache.compile(pack)
    enabled = gc.isenabled()
    try:
        for before in (True, False):
            (gc.enable if before else gc.disable)()
            assert cache.compile(pack).ok
            assert gc.isenabled() is before
    finally:
        (gc.enable if enabled else gc.disable)()
    assert cache.hits == 2


def _fixture_cases() -> list[tuple[Any, Any, Any]]:
    cases = []
    for path in sorted((REPO / "fixtures" / "actions").glob("*.yaml")):
        case = yaml.safe_load(path.read_text())
        cases.append((case["action"], case.get("context"), case.get("usage")))
    return cases


def _published(verdict: Any) -> dict[str, Any]:
    published = verdict.to_dict()
    for varying in ("elapsed_us", "decision_id", "evaluated_at"):
        published.pop(varying, None)
    return published


def test_a_revived_pack_judges_every_fixture_as_a_fresh_compile(pack, cache) -> None:
    """Its explain functions are compiled on first call: the same decisions and the same
    evidence, read in any order."""
    cache.compile(pack)
    revived = load_pack(pack, cache=cache)
    fresh = load_pack(pack)
    assert cache.hits == 1
    cases = _fixture_cases()
    assert len(cases) > 50
    for case in reversed(cases):
        assert _published(revived.evaluate(*case)) == _published(fresh.evaluate(*case))


@pytest.mark.parametrize(
    ("fixture", "deferred"),
    [("llm-patch-401-lines.yaml", True), ("architectural-change.yaml", False)],
)
def test_an_explain_function_of_a_sealed_entry_is_verified_before_it_runs(
    pack, cache, fixture, deferred
) -> None:
    """An entry sealed with the key whose ``explain_N`` escapes the allowlist: the pack
    loads (the rest of its code verified), and nothing of that function ever runs. A rule
    that records its comparisons as it runs calls it while deciding: the decision fails
    closed. A deferred record calls it when the evidence is first read: that read fails."""
    import hashlib
    import io
    from dataclasses import replace

    from aigre_policy.cache import _DataUnpickler, _seal

    case = yaml.safe_load((REPO / "fixtures" / "actions" / fixture).read_text())
    inputs = (case["action"], case.get("context"), case.get("usage"))
    fresh_pack = load_pack(pack)
    (fired,) = [r["id"] for r in fresh_pack.evaluate(*inputs).fired]
    index = next(r.index for r in fresh_pack.rules if r.id == fired)
    assert (index in fresh_pack.evaluator.python.deferred) is deferred
    cache.compile(pack)
    (entry,) = _entries(cache)
    name = entry.name.removesuffix(".pack")
    stored = _DataUnpickler(io.BytesIO(entry.read_bytes()[32:])).load()
    source = stored["python"].source
    marker = pack / "ran"
    body = source.index("\n", source.index(f"def explain_{index}(")) + 1
    tampered = source[:body] + f"    __import__('os').system('touch {marker}')\n" + source[body:]
    stored["python"] = replace(stored["python"], source=tampered)
    stored["python_sha256"] = hashlib.sha256(tampered.encode()).hexdigest()
    payload = pickle.dumps(stored)
    entry.write_bytes(_seal(cache.key_path.read_bytes(), name, payload) + payload)
    revived = load_pack(pack, cache=cache)
    assert cache.hits == 1
    verdict = revived.evaluate(*inputs)
    if deferred:
        assert verdict.decision == "escalate" and not verdict.fail_closed
        with pytest.raises(UnsafeCode):
            verdict.to_dict()
    else:
        assert verdict.fail_closed and verdict.decision == revived.fail_closed
        assert "UnsafeCode" in verdict.to_dict()["errors"][0]["message"]
    assert not marker.exists()


def test_the_compiler_version_follows_every_module_the_grammar_and_the_schemas() -> None:
    """A development checkout that edits the compiler misses the cache without a new
    version: any module at any depth, the grammar, a built-in schema; bytecode does not."""
    from aigre_policy import cache as cache_module

    package = Path(cache_module.__file__).resolve().parent
    watched = [
        package / "zones.py",
        package / "solver" / "encode.py",
        *(package.parent / "grammar").glob("*.lark"),
        *(package / "grammar").glob("*.lark"),
        next((package / "schemas").glob("*.json")),
    ]
    assert len(watched) >= 4
    before = cache_module.compiler_version()
    bytecode = next(package.rglob("__pycache__/*.pyc"), None)
    for path in [*watched, bytecode]:
        if path is None:
            continue
        info = path.stat()
        try:
            os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))
            changed = cache_module.compiler_version() != before
        finally:
            os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
        assert changed is (path != bytecode), path
    assert cache_module.compiler_version() == before


def test_a_hit_without_the_evaluator_loads_none_of_the_generated_code(
    pack, cache, monkeypatch
) -> None:
    """What ``check`` asks for: the sealed pack as a full load gives it, no code verified,
    compiled or run; the next full load still verifies and builds the evaluator."""
    from aigre_policy import sandbox

    cache.compile(pack)
    verified: list[str] = []
    real = sandbox.verify
    monkeypatch.setattr(sandbox, "verify", lambda source: verified.append(source) or real(source))
    checked_only = cache.compile(pack, evaluator=False)
    assert cache.hits == 1 and verified == []
    assert checked_only.ok and checked_only.compiled is None
    full = cache.compile(pack)
    assert cache.hits == 2 and verified and full.compiled is not None
    assert checked_only.checked.program == full.checked.program
    assert checked_only.checked.digest == full.checked.digest
    assert checked_only.diagnostics == full.diagnostics
    assert checked_only.checked.validator is not None  # sealed, as every CheckedPack is
