"""Output that pipes: nothing wraps when standard output or error is not a terminal, colour
only on request, and what is meant to be pasted (YAML skeletons) loads as YAML."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import write_pack

from aigre_policy.gate.log import DecisionLog

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "policy_packs" / "aigre-baseline"
ACTION = REPO / "fixtures" / "actions" / "llm-patch-401-lines.yaml"
CLI = [sys.executable, "-m", "aigre_policy.cli.main"]


def run(*argv: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user's pipe sees it: stdout and stderr are pipes, COLUMNS unset."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TERM")
    }
    environ.update(PYTHONPATH=str(REPO), AIGRE_NO_CACHE="1", **env)
    return subprocess.run(
        [*CLI, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=environ,
    )


def test_the_eval_panel_keeps_every_identifier_and_value_on_its_line() -> None:
    done = run("eval", str(BASELINE), "--action", str(ACTION))
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    for whole in (
        "(action.change.lines ?? 0) > autonomy.max_llm_patch_lines",
        'action.environment in ["production", "staging"]',
        "a 401-line patch from agent-coder is past the 400 lines rules alone should judge",
        str(ACTION),
    ):
        assert any(whole in line for line in lines), whole
    assert "\x1b[" not in done.stdout  # no colour in a pipe


def test_rule_locations_read_from_the_current_directory_like_diagnostics() -> None:
    done = run("eval", "policy_packs/aigre-baseline", "--action", str(ACTION))
    assert "policy_packs/aigre-baseline/policies/autonomy.aigre:" in done.stdout


def test_a_long_error_stays_on_one_line(tmp_path: Path) -> None:
    deep = tmp_path / ("a-directory-with-a-long-name-" * 4) / "missing-action-file.yaml"
    done = run("eval", str(BASELINE), "--action", str(deep))
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("error:") and str(deep) in line


def test_log_verify_prints_the_hash_whole(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with DecisionLog(path, fsync="none") as log:
        entries = [
            log.append(
                "decision",
                {
                    "verdict": {"decision": "allow", "decision_id": f"d-{i}", "fired": []},
                    "input": {"action": {"id": f"a-{i}", "kind": "scale"}, "context": {}},
                },
            )
            for i in range(3)
        ]
    done = run("log", "verify", str(path))
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if "last hash" in line]
    assert line.endswith(entries[-1].hash)


def test_bright_line_skeletons_piped_to_a_file_are_yaml(tmp_path: Path) -> None:
    root = write_pack(
        tmp_path / "pack-with-a-very-long-name-so-the-comment-line-passes-eighty-columns",
        """
        rule spend-over-cap {
          category: cost
          deny when action.cost.estimated_usd > 100
          because "too much"
        }
        """,
    )
    out = tmp_path / "skeletons.txt"
    with out.open("w") as handle:
        done = subprocess.run(
            [*CLI, "test", str(root), "--require-bright-lines"],
            cwd=REPO,
            stdout=handle,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": str(REPO), "AIGRE_NO_CACHE": "1"},
        )
    assert done.returncode == 1, done.stderr
    text = out.read_text()
    start = text.index("# checked skeletons")
    loaded = yaml.safe_load(text[start:])
    assert loaded["tests"], text
    assert all("expect" in test for test in loaded["tests"])


def test_colour_on_request_and_never_with_no_color() -> None:
    forced = run("--color", "eval", str(BASELINE), "--action", str(ACTION))
    assert "\x1b[" in forced.stdout
    after = run("eval", str(BASELINE), "--action", str(ACTION), "--color")
    assert "\x1b[" in after.stdout
    off = run("eval", str(BASELINE), "--action", str(ACTION), "--no-color")
    assert "\x1b[" not in off.stdout
    env_off = run("eval", str(BASELINE), "--action", str(ACTION), NO_COLOR="1")
    assert "\x1b[" not in env_off.stdout


def test_ci_names_a_long_pack_path_whole(tmp_path: Path) -> None:
    pack = tmp_path / ("packs-kept-in-a-directory-with-a-long-name-" * 2) / "new-pack"
    pack.parent.mkdir(parents=True)
    assert run("init", "new-pack", cwd=pack.parent).returncode == 0
    done = run("ci", str(pack))
    assert done.returncode == 0, done.stdout + done.stderr
    assert any(str(pack) in line for line in done.stdout.splitlines()), done.stdout


def test_a_counterexample_piped_to_a_file_is_yaml(tmp_path: Path) -> None:
    root = write_pack(
        tmp_path / "pack-with-a-very-long-name-so-the-comment-line-passes-eighty-columns",
        """
        rule spend-over-cap {
          category: cost
          deny when action.cost.estimated_usd > 100
          because "too much"
        }

        invariant "nothing is ever denied, which this pack breaks on purpose" {
          expect not deny
        }
        """,
    )
    out = tmp_path / "report.txt"
    with out.open("w") as handle:
        done = subprocess.run(
            [*CLI, "test", str(root), "--examples", "60"],
            cwd=REPO,
            stdout=handle,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": str(REPO), "AIGRE_NO_CACHE": "1"},
        )
    assert done.returncode == 1, done.stderr
    text = out.read_text()
    start = text.index("# minimal counterexample")
    loaded = yaml.safe_load(text[start:])
    assert loaded, text
    (test,) = loaded if isinstance(loaded, list) else loaded["tests"]
    assert test["action"]["cost"]["estimated_usd"] > 100


def test_help_in_a_pipe_keeps_each_option_on_one_line() -> None:
    done = run("eval", "--help")
    assert done.returncode == 0
    (line,) = [line for line in done.stdout.splitlines() if "--action FILE " in line]
    assert line.rstrip().endswith("repeat it to judge several")
