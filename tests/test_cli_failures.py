"""The command never shows a traceback: every failure is one line and a documented exit code.

Each case runs the real command in a new process (``python -m aigre_policy.cli.main``), so
standard streams, the interpreter's exit and the recursion limit are the user's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_pack

from aigre_policy.cli.common import EXIT_FAILURES, EXIT_INTERNAL, EXIT_IO, EXIT_USAGE
from aigre_policy.parser import MAX_NESTING

REPO = Path(__file__).resolve().parent.parent
BASELINE = str(REPO / "policy_packs" / "aigre-baseline")
ROLLBACK = str(REPO / "fixtures" / "actions" / "llm-rollback.yaml")


def aigre(*args: str, env: dict[str, str] | None = None, **options) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "aigre_policy.cli.main", *args],
        stdout=options.pop("stdout", subprocess.PIPE),
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        timeout=120,
        **options,
    )


def one_line(stderr: str) -> str:
    """The single line a failure prints; fails on a trace or on more lines."""
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-2000:]
    return lines[0]


def test_a_default_chain_500_long_is_a_nesting_diagnostic_with_its_place(tmp_path: Path) -> None:
    chain = " ?? ".join(["action.change.lines"] * 500)
    root = write_pack(tmp_path / "deep", f"rule r {{\n  deny when ({chain} ?? 0) > 5\n}}\n")
    done = aigre("check", "--format", "json", str(root))
    assert done.returncode == EXIT_FAILURES
    assert "Traceback" not in done.stderr and done.stderr == ""
    assert '"code": "E004"' in done.stdout
    assert f"more than {MAX_NESTING} levels" in done.stdout
    assert '"line": 2' in done.stdout


def test_nesting_just_under_the_limit_still_compiles(tmp_path: Path) -> None:
    chain = " ?? ".join(["action.change.lines"] * (MAX_NESTING - 10))
    root = write_pack(tmp_path / "deep", f"rule r {{\n  deny when ({chain} ?? 0) > 5\n}}\n")
    done = aigre("check", str(root))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_lone_surrogate_in_pack_yaml_is_a_diagnostic(tmp_path: Path) -> None:
    root = write_pack(
        tmp_path / "s",
        'envelope names { bad: "xy" }\nrule r { deny when action.target == names.bad }\n',
        manifest="name: s\nversion: 1.0.0\ninput_schema: builtin:proposed-action/v1\n"
        "default: allow\nfail_closed: deny\n"
        'envelopes: {names: {bad: "x\\ud800y"}}\n',
    )
    done = aigre("check", str(root))
    assert done.returncode == EXIT_FAILURES
    assert "Traceback" not in done.stderr
    assert f"{root / 'pack.yaml'}:6:" in done.stdout
    assert "error[E501]: a string holds a lone surrogate" in done.stdout


def test_a_lone_surrogate_in_an_override_is_a_diagnostic(tmp_path: Path) -> None:
    root = write_pack(
        tmp_path / "s",
        'envelope names { bad: "xy" }\nrule r { deny when action.target == names.bad }\n',
    )
    done = aigre("check", str(root), "--set", 'names.bad="\\ud800"')
    assert done.returncode == EXIT_FAILURES
    assert "Traceback" not in done.stderr
    assert "error[E504]: override: `names.bad` holds a string with a lone surrogate" in done.stdout


def test_a_lone_surrogate_in_the_action_is_refused(tmp_path: Path) -> None:
    action = tmp_path / "action.json"
    action.write_text('{"id": "\\udfff"}', encoding="utf-8")
    done = aigre("eval", BASELINE, "--action", str(action))
    assert done.returncode == EXIT_USAGE
    assert "lone surrogate" in one_line(done.stderr)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_an_action_1000_deep_is_refused_in_one_line(tmp_path: Path, suffix: str) -> None:
    action = tmp_path / f"deep{suffix}"
    action.write_text('{"a": ' * 1000 + "1" + "}" * 1000, encoding="utf-8")
    done = aigre("eval", BASELINE, "--action", str(action))
    assert done.returncode == EXIT_USAGE
    line = one_line(done.stderr)
    assert line.startswith(f"error: {action}:1:1: ") and "nests too deeply" in line


def test_an_action_from_closed_standard_input_is_refused_in_one_line() -> None:
    done = aigre("eval", BASELINE, "--action", "-", preexec_fn=lambda: os.close(0))
    assert done.returncode == EXIT_USAGE
    assert one_line(done.stderr) == "error: --action -: standard input is closed"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("form", ["text", "json"])
def test_a_verdict_written_to_a_full_disk_fails_in_one_line(form: str) -> None:
    with open("/dev/full", "w") as full:
        done = aigre("eval", BASELINE, "--action", ROLLBACK, "--format", form, stdout=full)
    assert done.returncode == EXIT_IO
    assert one_line(done.stderr) == "error: input/output failed: No space left on device"


def test_a_closed_standard_output_still_gives_the_decision_as_exit_code() -> None:
    done = aigre("eval", BASELINE, "--action", ROLLBACK, preexec_fn=lambda: os.close(1))
    assert done.returncode == 0  # llm-rollback is allowed
    assert done.stderr == ""


# An unexpected fault inside a command, planted at interpreter start.
PLANTED_FAULT = """
import aigre_policy.compiler as compiler

def broken(*args, **kwargs):
    raise RuntimeError("planted fault\\nwith a second line")

compiler.compile_pack = broken  # check imports it when it runs
"""


@pytest.fixture
def faulty(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "sitecustomize.py").write_text(PLANTED_FAULT, encoding="utf-8")
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}


def test_an_internal_fault_is_one_line_with_its_own_exit_code(faulty: dict[str, str]) -> None:
    done = aigre("check", BASELINE, env=faulty)
    assert done.returncode == EXIT_INTERNAL
    assert one_line(done.stderr) == (
        "internal error: RuntimeError: planted fault with a second line "
        "(run with --debug for the trace)"
    )


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_trace_of_an_internal_fault(faulty: dict[str, str], where: str) -> None:
    args = ["--debug", "check", BASELINE] if where == "before" else ["check", "--debug", BASELINE]
    done = aigre(*args, env=faulty)
    assert done.returncode != 0
    assert "Traceback (most recent call last)" in done.stderr
    assert "RuntimeError: planted fault" in done.stderr


def test_a_usage_error_with_brackets_prints_them(tmp_path: Path) -> None:
    done = aigre("check", str(tmp_path / "[red]missing"))
    assert done.returncode == EXIT_USAGE
    assert one_line(done.stderr) == f"error: no pack at {tmp_path / '[red]missing'}"
