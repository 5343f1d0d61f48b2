"""The command starts fast: each run imports only what its command needs (no timing here:
which modules load is what decides the time; benchmarks/bench_cli.py measures it)."""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from aigre_policy.cli import eval as eval_command
from aigre_policy.cli import keys
from aigre_policy.cli.main import COMMANDS, build_parser

REPO = Path(__file__).resolve().parent.parent
PACK = "policy_packs/aigre-baseline"
ACTION = "fixtures/actions/llm-patch-401-lines.yaml"
HEAVY = ("aiohttp", "hypothesis", "opa_client", "jwt", "regopy", "requests")


def _loaded(code: str) -> set[str]:
    """The top-level packages and aigre_policy modules loaded after running ``code``."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "AIGRE_NO_CACHE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.stdout, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _cli(*argv: str) -> str:
    return (
        "import sys\nfrom aigre_policy.cli.main import main\n"
        f"try:\n    main({list(argv)!r})\nexcept SystemExit:\n    pass\n"
    )


def test_importing_the_package_does_not_load_the_gate() -> None:
    loaded = _loaded("import aigre_policy")
    assert "aigre_policy.gate" not in loaded
    assert "aigre_policy.compiler" not in loaded


def test_the_package_still_exports_its_names_on_use() -> None:
    import aigre_policy

    for name in aigre_policy.__all__:
        assert getattr(aigre_policy, name) is not None
    assert sorted(aigre_policy._EXPORTS) == sorted(aigre_policy.__all__)


def test_help_loads_no_command_and_no_library() -> None:
    loaded = _loaded(_cli("--help"))
    assert not {m for m, _, _ in COMMANDS} & loaded
    assert not {"rich", "lark", "yaml", "pydantic", "aigre_policy.compiler"} & loaded


@pytest.mark.parametrize("argv", [("eval", PACK, "--action", ACTION), ("check", PACK)])
def test_eval_and_check_load_no_network_test_or_signing_library(argv) -> None:
    loaded = _loaded(_cli(*argv))
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    assert "aigre_policy.gate" not in loaded


def test_every_command_in_the_table_defines_the_parser_it_names() -> None:
    for name, _module, summary in COMMANDS:
        parser = build_parser([name])
        (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = commands.choices[name]
        assert chosen.description or chosen.format_help(), name
        assert summary
        # the module's own help line is the table's: `--help` shows what the command says
        helps = {c.dest: c.help for c in commands._choices_actions}
        assert helps[name] == summary, name


def test_a_command_gets_its_real_arguments_only_when_chosen() -> None:
    parser = build_parser(["eval", PACK])
    args = parser.parse_args(["eval", PACK, "--format", "json"])
    assert args.format == "json"


def test_the_names_the_cli_keeps_for_its_help_match_the_library() -> None:
    from aigre_policy.rego import engine, opa_server, signing

    assert keys.ALGORITHMS == signing.ALGORITHMS
    assert keys.DEFAULT_KEY_ID == signing.DEFAULT_KEY_ID
    assert eval_command.DEFAULT_URL == opa_server.DEFAULT_URL
    assert eval_command.DEFAULT_TIMEOUT == opa_server.DEFAULT_TIMEOUT
    assert set(engine.engine_names()) <= set(eval_command.ENGINES)


def test_eval_from_the_cache_loads_neither_lark_nor_pydantic(tmp_path) -> None:
    env = {
        "PYTHONPATH": str(REPO),
        "PATH": "/usr/bin:/bin",
        "AIGRE_CACHE_DIR": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    code = _cli("eval", PACK, "--action", ACTION)
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    runs = [
        subprocess.run(
            [sys.executable, "-c", probe],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        for _ in range(2)
    ]
    first, second = (set(json.loads(r.stdout.strip().splitlines()[-1])) for r in runs)
    assert "lark" in first  # the first run compiles
    assert not {"lark", "pydantic", "aigre_policy.parser"} & second


def test_check_without_strict_does_not_load_the_linter() -> None:
    loaded = _loaded(_cli("check", PACK))
    assert "aigre_policy.lint" not in loaded


# what a pack served from the compile cache must not load: the parser (and Lark), the
# checker, the code generator, the compiler driver and the complete validator (jsonschema)
COMPILER = (
    "lark",
    "jsonschema",
    "aigre_policy.parser",
    "aigre_policy.grammar",
    "aigre_policy.typecheck",
    "aigre_policy.check",
    "aigre_policy.codegen",
    "aigre_policy.compiler",
)


def _cached_runs(tmp_path: Path, *argv: str) -> tuple[set[str], set[str], str]:
    """The modules loaded by a first (compiling) and a second (cached) run, and the
    second run's output."""
    env = {
        "PYTHONPATH": str(REPO),
        "PATH": "/usr/bin:/bin",
        "AIGRE_CACHE_DIR": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    marker = "--- modules ---"
    probe = (
        f"{_cli(*argv)}\nimport sys, json\nprint({marker!r})\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", probe],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        for _ in range(2)
    ]
    first, second = (set(json.loads(r.stdout.strip().splitlines()[-1])) for r in runs)
    return first, second, runs[1].stdout.split(marker)[0]


def _compiler_modules(loaded: set[str]) -> set[str]:
    return {m for m in loaded if m in COMPILER or m.split(".")[0] in COMPILER}


@pytest.mark.parametrize(
    "argv",
    [("eval", PACK, "--action", ACTION), ("check", PACK)],
    ids=["eval", "check"],
)
def test_a_cached_pack_loads_no_compiler_stage_and_no_jsonschema(tmp_path, argv) -> None:
    first, second, _ = _cached_runs(tmp_path, *argv)
    assert {"lark", "aigre_policy.compiler"} <= first  # the first run compiles
    assert not _compiler_modules(second)


def test_a_cached_pack_still_refuses_an_invalid_action_with_every_reason(tmp_path) -> None:
    """The complete validator loads when an input is rejected: the verdict fails closed
    with the same errors as a fresh compile gives."""
    bad = tmp_path / "bad.yaml"
    text = (REPO / ACTION).read_text()
    text = text.replace("kind: code_patch", "kind: 17")
    text = text.replace("at: '2025-03-12T13:40:00Z'", "at: '2025-02-30T13:40:00Z'")
    bad.write_text(text)
    argv = ("eval", PACK, "--action", str(bad), "--format", "json")
    _, second, cached = _cached_runs(tmp_path, *argv)
    fresh = subprocess.run(
        [sys.executable, "-m", "aigre_policy.cli.main", *argv, "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    cached_verdict, fresh_verdict = json.loads(cached), json.loads(fresh.stdout)
    assert cached_verdict["decision"] == fresh_verdict["decision"] != "allow"
    assert cached_verdict["fail_closed"] is True
    assert cached_verdict["errors"] == fresh_verdict["errors"]
    assert {e["path"] for e in cached_verdict["errors"]} == {"action.kind", "action.requested_at"}
    assert "jsonschema" in second  # loaded to say why, once the input was refused


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (("eval", PACK, "--action", ACTION), "ESCALATE"),
        (("check", PACK), "48 RULES, 12 ENVELOPES, 3 USAGES, 42 TESTS, 11 INVARIANTS"),
    ],
)
def test_a_cached_start_does_not_read_the_syntax_trees(tmp_path, command, says) -> None:
    """Most of a cache entry is the source's syntax trees, which judging an action never
    reads, nor check's summary (it counts declarations from the checked pack): they are
    unpickled (and their classes loaded) only when asked for."""
    first, second, out = _cached_runs(tmp_path, *command)
    assert "aigre_policy.nodes" in first
    assert "aigre_policy.nodes" not in second
    assert says in out.upper()
    # check judges no action: its generated code is not even loaded
    assert ("aigre_policy.sandbox" in second) is (command[0] == "eval")


def test_the_syntax_trees_of_a_cached_pack_read_as_a_fresh_compile_gives(tmp_path) -> None:
    from aigre_policy.cache import CompileCache
    from aigre_policy.compiler import compile_pack

    cache = CompileCache(tmp_path / "cache", tmp_path / "key")
    cache.compile(REPO / PACK)
    revived = cache.compile(REPO / PACK)
    fresh = compile_pack(REPO / PACK)
    assert cache.hits == 1
    assert tuple(revived.compiled.modules) == tuple(fresh.compiled.modules)
    assert revived.compiled.modules == fresh.compiled.modules
    assert len(revived.compiled.modules) == len(fresh.compiled.modules) > 1
    assert [len(m.declarations) for m in revived.compiled.modules] == [
        len(m.declarations) for m in fresh.compiled.modules
    ]


@pytest.mark.parametrize(
    "words", [["--version"], ["check", str(REPO / PACK)], ["eval", "--nonsense"]]
)
def test_a_command_leaves_the_garbage_collector_as_it_found_it(words, capsys) -> None:
    """Start-up runs with the collector paused (it would only walk new modules and
    classes); however the command ends, even by a usage error, the collector is back."""
    import gc

    from aigre_policy.cli.main import main

    enabled = gc.isenabled()
    try:
        for before in (True, False):
            (gc.enable if before else gc.disable)()
            with contextlib.suppress(SystemExit):
                main(["--no-color", *words] if words[0] != "--version" else words)
            assert gc.isenabled() is before
    finally:
        (gc.enable if enabled else gc.disable)()
    capsys.readouterr()


def test_the_program_freezes_what_start_up_built_and_a_call_does_not() -> None:
    """As its own process the command moves what start-up built (modules, classes, the
    parser) out of the collector's reach; ``main(argv)`` called by a program leaves that
    program's objects alone."""
    import gc

    from aigre_policy.cli.main import main

    probe = (
        "import gc, sys\n"
        "from aigre_policy.cli.main import main\n"
        "sys.argv = ['aigre-policy', 'check', sys.argv[1]]\n"
        "code = main()\n"
        "print('frozen', code, gc.get_freeze_count())\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe, str(REPO / PACK)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout.split()
    assert shown[-3:-1] == ["frozen", "0"] and int(shown[-1]) > 10_000
    frozen = gc.get_freeze_count()
    with contextlib.suppress(SystemExit):
        main(["--no-color", "check", str(REPO / PACK)])
    assert gc.get_freeze_count() == frozen
