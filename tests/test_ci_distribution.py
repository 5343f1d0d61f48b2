"""The pre-commit hooks and the GitHub Action name real commands with real flags."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from aigre_policy.cli.main import build_parser

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "policy_packs" / "aigre-baseline"


def _hooks() -> dict[str, dict]:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    return {hook["id"]: hook for hook in hooks}


def _argv(entry: str, args: list[str], files: list[str]) -> list[str]:
    program, *rest = shlex.split(entry)
    assert program == "aigre-policy"
    return [*rest, *args, *files]


def test_the_hooks_are_check_fmt_and_test() -> None:
    hooks = _hooks()
    assert set(hooks) == {"aigre-check", "aigre-fmt", "aigre-test"}
    for hook in hooks.values():
        assert hook["language"] == "python"
        assert {"id", "name", "entry"} <= set(hook)


def test_each_hook_runs_successfully_on_the_default_pack() -> None:
    """As pre-commit runs them: the entry, then args, then the changed files if it takes them."""
    files = [str(p) for p in sorted((BASELINE / "policies").glob("*.aigre"))]
    for hook_id, hook in _hooks().items():
        args = [str(BASELINE) if a == "policy_packs" else a for a in hook.get("args", [])]
        passed = files if hook.get("pass_filenames", True) else []
        if hook_id == "aigre-fmt":
            args = ["--check", *args]  # the test must not rewrite the repository's files
        argv = _argv(hook["entry"], args, passed)
        build_parser().parse_args(argv)  # every flag is a real one
        done = subprocess.run(
            [sys.executable, "-m", "aigre_policy.cli.main", *argv],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (hook_id, done.stdout[-2000:], done.stderr[-2000:])


def test_the_action_installs_runs_ci_with_sarif_and_uploads_it() -> None:
    action = yaml.safe_load((REPO / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) == {"paths", "python-version", "version", "sarif", "upload-sarif"}
    steps = action["runs"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert 'python -m pip install "aigre-policy==$VERSION"' in runs
    (command,) = [s.strip() for s in runs.splitlines() if s.strip().startswith("aigre-policy ci")]
    argv = shlex.split(command.replace("$PACKS", str(BASELINE)).replace('"$SARIF"', "out.sarif"))
    assert argv[:2] == ["aigre-policy", "ci"]
    parsed = build_parser().parse_args(argv[1:])
    assert (parsed.format, parsed.output) == ("sarif", "out.sarif")
    upload = [s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif")]
    assert upload and upload[0]["with"]["sarif_file"] == "${{ inputs.sarif }}"
    assert "inputs.upload-sarif == 'true'" in upload[0]["if"]
