"""The ``aigre-policy`` command line: ``check`` and ``eval``, their output and exit codes.

Most tests run ``main([...])`` in-process and read stdout/stderr with ``capsys``;
one runs the module in a subprocess, as a shell script or CI job would.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from aigre_policy.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
VERDICT_SCHEMA = json.loads((ROOT / "docs" / "schemas" / "verdict.schema.json").read_text())

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

rule big-patch {
  escalate to ["llm-judge"] when action.change.lines > 200
}
"""

BROKEN_POLICY = 'rule r { deny when action.environment == "prodution" }\n'

# action overrides -> (decision, exit code)
DECISIONS = {
    "allow": ({}, 0),
    "escalate": ({"change": {"type": "code", "lines": 400}}, 3),
    "require_approval": ({"reversible": False}, 4),
    "deny": ({"cost": {"estimated_usd": 30}}, 5),
}


@pytest.fixture
def cli(capsys, plain_console):
    """``cli(*args)`` -> (exit code, stdout, stderr), run in-process."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def pack_dir(new_pack) -> Path:
    return new_pack(POLICY, name="gate")


def write(path: Path, data: Any) -> Path:
    """JSON for ``.json`` files, else YAML-compatible JSON text (JSON is YAML)."""
    path.write_text(json.dumps(data, indent=2) if not isinstance(data, str) else data)
    return path


def flat(text: str) -> str:
    """Whitespace-insensitive text, whatever the console width."""
    return " ".join(text.split())


# ------------------------------------------------------------------------------ check


def test_check_clean_pack(cli, pack_dir):
    code, out, err = cli("check", pack_dir)
    assert code == 0, out + err
    assert re.search(
        rf"^ok {re.escape(str(pack_dir))}: t 1\.0\.0: 3 rules, 1 envelopes, 0 usages, "
        r"0 tests, 0 invariants$",
        out,
        re.M,
    ), out
    assert "error" not in out
    assert err == ""


def test_check_clean_pack_with_a_warning_still_passes(cli, new_pack):
    root = new_pack('rule r { deny when (action.kind ?? "scale") == "scale" }')
    code, out, _ = cli("check", root)
    assert code == 0
    assert "warning[W302]" in out
    assert re.search(r"^ok .*: 1 rules, .*, 1 warning$", out, re.M), out


def test_check_broken_pack_prints_rendered_diagnostics(cli, new_pack):
    root = new_pack(BROKEN_POLICY)
    code, out, _ = cli("check", root)
    assert code == 1
    file = root / "policies" / "main.aigre"
    assert f"{file}:1:42: error[E202]:" in out
    assert '1 | rule r { deny when action.environment == "prodution" }' in out
    assert "  | " + " " * 41 + "^" * 11 in out
    assert "= hint: did you mean 'production'?" in out
    assert re.search(rf"^failed {re.escape(str(root))}: 1 error, 0 warnings$", out, re.M)
    assert "Traceback" not in out


def test_check_several_packs_fails_if_any_fails(cli, new_pack, pack_dir):
    broken = new_pack(BROKEN_POLICY, name="broken")
    code, out, _ = cli("check", pack_dir, broken)
    assert code == 1
    assert re.search(r"^ok .*gate: ", out, re.M)
    assert re.search(r"^failed .*broken: 1 error", out, re.M)


def test_check_a_directory_of_packs(cli, new_pack, pack_dir):
    new_pack(BROKEN_POLICY, name="broken")
    code, out, _ = cli("check", pack_dir.parent)
    assert code == 1
    assert "gate" in out and "broken" in out


@pytest.mark.parametrize("broken", [False, True])
def test_check_json_output(cli, new_pack, pack_dir, broken):
    root = new_pack(BROKEN_POLICY, name="broken") if broken else pack_dir
    code, out, _ = cli("check", root, "--format", "json")
    document = json.loads(out)
    assert code == (1 if broken else 0)
    assert [entry["pack"] for entry in document] == [str(root)]
    (entry,) = document
    assert entry["ok"] is not broken
    if not broken:
        assert entry["diagnostics"] == []
        return
    (diagnostic,) = entry["diagnostics"]
    assert diagnostic["code"] == "E202"
    assert diagnostic["severity"] == "error"
    assert "'prodution' is never a value here" in diagnostic["message"]
    assert "production" in diagnostic["hint"]
    location = diagnostic["location"]
    assert location["file"] == str(root / "policies" / "main.aigre")
    assert (location["line"], location["column"]) == (1, 42)
    assert (location["end_line"], location["end_column"]) == (1, 53)


@pytest.mark.parametrize("command", ["check", "eval"])
def test_missing_pack_directory_is_a_clear_usage_error(cli, tmp_path, command):
    missing = tmp_path / "no-such-pack"
    code, out, err = cli(command, missing, *(["--emit", "python"] if command == "eval" else []))
    assert code == 2
    both = flat(out + err)
    assert str(missing) in both
    assert re.search(r"no pack|not a pack|no pack directory|does not compile", both)
    assert "Traceback" not in out + err


def test_check_a_directory_without_packs(cli, tmp_path):
    code, out, err = cli("check", tmp_path)
    assert code == 2
    assert "holds no pack" in flat(err)
    assert out == ""


def test_check_output_is_not_wrapped_when_piped(cli, new_pack, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    root = new_pack(BROKEN_POLICY)
    code, out, _ = cli("check", root)
    assert code == 1
    header = next(line for line in out.splitlines() if "error[E202]" in line)
    assert header.endswith('"development", "sandbox")')


# ------------------------------------------------------------------------------- eval


@pytest.fixture
def context_file(tmp_path, valid_context) -> Path:
    return write(tmp_path / "context.json", valid_context)


@pytest.mark.parametrize("decision", list(DECISIONS))
def test_eval_exit_code_per_decision(cli, tmp_path, pack_dir, make_action, context_file, decision):
    overrides, expected = DECISIONS[decision]
    action_file = write(tmp_path / "action.json", make_action(**overrides))
    code, out, _ = cli("eval", pack_dir, "--action", action_file, "--context", context_file)
    assert code == expected, out
    assert f"decision: {decision.upper()}" in out


def test_eval_invalid_action_fails_closed(cli, tmp_path, pack_dir, make_action, context_file):
    action = make_action()
    del action["id"]
    action_file = write(tmp_path / "action.json", action)
    code, out, _ = cli(
        "eval", pack_dir, "--action", action_file, "--context", context_file, "--format", "json"
    )
    assert code == 6
    verdict = json.loads(out)
    assert verdict["fail_closed"] is True
    assert verdict["decision"] == "deny"  # the pack's fail_closed
    assert any("id" in e["message"] for e in verdict["errors"])


def test_eval_fails_closed_without_context(cli, tmp_path, pack_dir, make_action):
    action_file = write(tmp_path / "action.json", make_action())
    code, out, _ = cli("eval", pack_dir, "--action", action_file)
    assert code == 6
    assert "failed closed" in out


def test_eval_pack_that_does_not_compile(cli, tmp_path, new_pack, make_action, context_file):
    root = new_pack(BROKEN_POLICY)
    action_file = write(tmp_path / "action.json", make_action())
    code, out, err = cli("eval", root, "--action", action_file, "--context", context_file)
    assert code == 2
    both = flat(out + err)
    assert "error[E202]" in both
    assert "does not compile" in both
    assert "decision" not in both


def test_eval_needs_an_action(cli, pack_dir):
    code, out, err = cli("eval", pack_dir)
    assert code == 2
    assert "needs --action" in flat(err)
    assert "Traceback" not in out + err


def test_eval_missing_action_file(cli, tmp_path, pack_dir):
    code, _, err = cli("eval", pack_dir, "--action", tmp_path / "nope.yaml")
    assert code == 2
    assert "nope.yaml" in flat(err)


def test_eval_action_that_is_not_a_mapping(cli, tmp_path, pack_dir):
    action_file = write(tmp_path / "action.yaml", "- just\n- a list\n")
    code, _, err = cli("eval", pack_dir, "--action", action_file)
    assert code == 2
    assert "expected a mapping" in flat(err)


def test_eval_malformed_yaml_action_is_a_usage_error(cli, tmp_path, pack_dir):
    action_file = write(tmp_path / "bad.yaml", "id: a1\nkind: [rollback\ntarget: x\n")
    code, out, err = cli("eval", pack_dir, "--action", action_file)
    assert code == 2
    assert "not valid YAML" in flat(err)
    assert "Traceback" not in out + err


def test_eval_malformed_yaml_action_names_file_and_line(cli, tmp_path, pack_dir):
    action_file = write(tmp_path / "bad.yaml", "id: a1\nkind: [rollback\ntarget: x\n")
    code, _, err = cli("eval", pack_dir, "--action", action_file)
    assert code == 2
    assert re.search(r"bad\.yaml:3:\d+|bad\.yaml.*line 3", flat(err)), err


def test_set_changes_the_decision(cli, tmp_path, pack_dir, make_action, context_file):
    action_file = write(tmp_path / "action.json", make_action(cost={"estimated_usd": 30}))
    base = ["eval", pack_dir, "--action", action_file, "--context", context_file]
    assert cli(*base)[0] == 5
    code, out, _ = cli(*base, "--set", "cost.max_action_usd=50")
    assert code == 0, out
    code, _, _ = cli(*base, "--set", "cost.max_action_usd=50", "--set", "cost.max_action_usd=29")
    assert code == 5, "the last --set wins"


def test_set_value_shows_in_the_evidence(cli, tmp_path, pack_dir, make_action, context_file):
    action_file = write(tmp_path / "action.json", make_action(cost={"estimated_usd": 30}))
    code, out, _ = cli(
        "eval",
        pack_dir,
        "--action",
        action_file,
        "--context",
        context_file,
        "--set",
        "cost.max_action_usd=12.5",
        "--format",
        "json",
    )
    assert code == 5
    fired = json.loads(out)["fired"][0]
    assert fired["bindings"]["cost.max_action_usd"] == 12.5
    assert fired["message"] == "costs 30 USD, over 12.5"


@pytest.mark.parametrize(
    ("assignment", "words"),
    [
        ("cots.max_action_usd=50", ("unknown envelope `cots`", "did you mean `cost`?")),
        ("cost.max_usd=50", ("envelope `cost` has no value `max_usd`",)),
        ("cost.max_action_usd=lots", ("`cost.max_action_usd` is a", "'lots'")),
        ("cost.max_action_usd=[1, 2]", ("`cost.max_action_usd` is a",)),
        ("cost.max_action_usd", ("ENVELOPE.NAME=VALUE",)),
        ("max_action_usd=50", ("ENVELOPE.NAME=VALUE",)),
        ("=50", ("ENVELOPE.NAME=VALUE",)),
    ],
)
def test_bad_set_is_a_usage_error(
    cli, tmp_path, pack_dir, make_action, context_file, assignment, words
):
    action_file = write(tmp_path / "action.json", make_action())
    code, out, err = cli(
        "eval", pack_dir, "--action", action_file, "--context", context_file, "--set", assignment
    )
    assert code == 2
    both = flat(out + err)
    for word in words:
        assert word in both, both
    assert "decision:" not in both
    assert "Traceback" not in out + err


def test_check_with_a_malformed_set_is_a_usage_error(cli, pack_dir):
    code, _, err = cli("check", pack_dir, "--set", "cost")
    assert code == 2
    assert "ENVELOPE.NAME=VALUE" in flat(err)


def test_check_with_a_set_of_the_wrong_type_fails(cli, pack_dir):
    code, out, _ = cli("check", pack_dir, "--set", "cost.max_action_usd=lots")
    assert code in (1, 2)
    assert "error[E504]" in out


@pytest.mark.parametrize("value", [".inf", ".nan"])
def test_non_finite_set_is_a_usage_error(cli, tmp_path, pack_dir, make_action, context_file, value):
    action_file = write(tmp_path / "action.json", make_action())
    code, out, err = cli(
        "eval",
        pack_dir,
        "--action",
        action_file,
        "--context",
        context_file,
        "--set",
        f"cost.max_action_usd={value}",
    )
    assert code == 2
    assert "max_action_usd" in flat(out + err)


def test_emit_python(cli, pack_dir):
    code, out, _ = cli("eval", pack_dir, "--emit", "python")
    assert code == 0
    assert "def evaluate(action, context, usage):" in out
    assert "def explain_0(" in out
    compile(out, "<emitted>", "exec")  # it is Python


def test_action_from_stdin(cli, pack_dir, make_action, context_file, monkeypatch):
    stdin = io.StringIO(json.dumps(make_action(reversible=False)))
    monkeypatch.setattr(sys, "stdin", stdin)
    code, out, _ = cli("eval", pack_dir, "--action", "-", "--context", context_file)
    assert code == 4, out
    assert "sre-oncall" in out


def test_case_file_and_plain_action_file_agree(
    cli, tmp_path, pack_dir, make_action, valid_context, context_file
):
    action = make_action(cost={"estimated_usd": 30})
    case_file = write(
        tmp_path / "case.yaml",
        json.dumps({"action": action, "context": valid_context, "usage": {}}),
    )
    plain_file = write(tmp_path / "action.yaml", json.dumps(action))
    from_case = cli("eval", pack_dir, "--action", case_file, "--format", "json")
    from_plain = cli(
        "eval", pack_dir, "--action", plain_file, "--context", context_file, "--format", "json"
    )
    assert from_case[0] == from_plain[0] == 5
    case_verdict, plain_verdict = json.loads(from_case[1]), json.loads(from_plain[1])
    assert case_verdict["fired"] == plain_verdict["fired"]
    assert case_verdict["input_digest"] == plain_verdict["input_digest"]


def test_context_option_overrides_a_case_files_context(
    cli, tmp_path, pack_dir, make_action, context_file
):
    case_file = write(
        tmp_path / "case.json",
        {"action": make_action(), "context": {"now": "not a time"}, "usage": {}},
    )
    assert cli("eval", pack_dir, "--action", case_file)[0] == 6
    assert cli("eval", pack_dir, "--action", case_file, "--context", context_file)[0] == 0


def test_usage_option(cli, tmp_path, new_pack, make_action, context_file):
    root = new_pack(
        "usage spent = sum(action.cost.estimated_usd) over calendar_month\n"
        "rule over { deny when usage.spent > 100 }\n"
    )
    action_file = write(tmp_path / "action.json", make_action())
    base = ["eval", root, "--action", action_file, "--context", context_file]
    assert cli(*base, "--usage", write(tmp_path / "u1.json", {"spent": 150}))[0] == 5
    assert cli(*base, "--usage", write(tmp_path / "u2.json", {"spent": 50}))[0] == 0
    assert cli(*base)[0] == 6, "a pack with usages needs them"


@pytest.mark.parametrize("decision", [*DECISIONS, "fail-closed"])
def test_json_verdict_matches_the_published_schema(
    cli, tmp_path, pack_dir, make_action, context_file, decision
):
    if decision == "fail-closed":
        action, expected = {"id": "x"}, 6
    else:
        overrides, expected = DECISIONS[decision]
        action = make_action(**overrides)
    action_file = write(tmp_path / "action.json", action)
    code, out, _ = cli(
        "eval", pack_dir, "--action", action_file, "--context", context_file, "--format", "json"
    )
    assert code == expected
    verdict = json.loads(out)
    jsonschema.validate(verdict, VERDICT_SCHEMA, cls=jsonschema.Draft202012Validator)
    if decision != "fail-closed":
        assert verdict["decision"] == decision
    if decision == "require_approval":
        assert verdict["approvers"] == ["sre-oncall"]
    if decision == "escalate":
        assert verdict["escalate_to"] == ["llm-judge"]


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("number", ["1e400", "-1e400"])
def test_overflowing_input_fails_closed_with_strict_json(
    cli, tmp_path, pack_dir, make_action, context_file, number
):
    """1e400 reads as inf: the verdict fails closed, and its JSON stays JSON (no Infinity)."""
    text = json.dumps(make_action(cost={"estimated_usd": 7})).replace(
        '"estimated_usd": 7', f'"estimated_usd": {number}'
    )
    action_file = write(tmp_path / "action.json", text)
    code, out, _ = cli(
        "eval", pack_dir, "--action", action_file, "--context", context_file, "--format", "json"
    )
    assert code == 6
    verdict = _strict_json(out)
    assert verdict["fail_closed"] is True
    jsonschema.validate(verdict, VERDICT_SCHEMA, cls=jsonschema.Draft202012Validator)


def test_fail_closed_verdict_says_why_for_overflowing_input(
    cli, tmp_path, pack_dir, make_action, context_file
):
    text = json.dumps(make_action(cost={"estimated_usd": 7})).replace(
        '"estimated_usd": 7', '"estimated_usd": 1e400'
    )
    action_file = write(tmp_path / "action.json", text)
    code, out, _ = cli(
        "eval", pack_dir, "--action", action_file, "--context", context_file, "--format", "json"
    )
    assert code == 6
    errors = json.loads(out)["errors"]
    assert errors, "a fail-closed verdict must list why"
    assert any(e["path"] == "action.cost.estimated_usd" for e in errors)


def test_action_with_a_5000_digit_number(cli, tmp_path, pack_dir, make_action, context_file):
    text = json.dumps(make_action(cost={"estimated_usd": 7})).replace(
        '"estimated_usd": 7', '"estimated_usd": ' + "9" * 5000
    )
    action_file = write(tmp_path / "action.json", text)
    code, _, err = cli("eval", pack_dir, "--action", action_file, "--context", context_file)
    assert code == 2
    assert "action.json" in flat(err)


# ------------------------------------------------------------------------- subprocess


def test_subprocess_eval_json(tmp_path, pack_dir, make_action, context_file):
    action_file = write(tmp_path / "action.json", make_action(cost={"estimated_usd": 30}))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "aigre_policy.cli.main",
            "eval",
            str(pack_dir),
            "--action",
            str(action_file),
            "--context",
            str(context_file),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 5, done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["decision"] == "deny"
    assert [f["id"] for f in verdict["fired"]] == ["too-costly"]
    assert "Traceback" not in done.stderr
