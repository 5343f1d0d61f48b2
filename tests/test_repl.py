"""``aigre-policy repl``: an expression's value and type against a pack and one input."""

from __future__ import annotations

import io
import json
import os
import re
import selectors
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CONTEXT, _action, write_pack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigre_policy.cli.main import main
from aigre_policy.compiler import compile_pack
from aigre_policy.repl import ExpressionError, Session

ROOT = Path(__file__).resolve().parents[1]

POLICY = """\
envelope autonomy {
  llm_may: ["rollback", "restart"]
  max_age: 15m
}
usage spend_usd = sum(action.cost.estimated_usd) over calendar_month

rule llm-outside {
  deny when action.actor.kind == "llm" and action.kind not in autonomy.llm_may
}
"""


@pytest.fixture
def pack(new_pack) -> Path:
    return new_pack(POLICY)


@pytest.fixture
def case(tmp_path, make_action, valid_context) -> Path:
    path = tmp_path / "case.json"
    document = {
        "action": make_action(kind="deploy", cost={"estimated_usd": 12.5}),
        "context": valid_context,
        "usage": {"spend_usd": 40},
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["repl", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_expression_prints_its_value_and_type(capsys, pack, case):
    code, out, err = _run(
        capsys,
        str(pack),
        "--action",
        str(case),
        "-e",
        "action.cost.estimated_usd * 2",
        "-e",
        "action.kind not in autonomy.llm_may",
        "-e",
        "context.now - action.requested_at + autonomy.max_age",
        "-e",
        "usage.spend_usd / 4",
    )
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "25 : number",
        "true : boolean",
        "15m : duration",
        "10 : number",
    ]


def test_an_enum_value_shows_the_fields_type(capsys, pack, case):
    code, out, _ = _run(capsys, str(pack), "--action", str(case), "-e", "action.environment")
    assert code == 0
    assert out.startswith('"production" : string (one of ')


def test_json_output_for_scripts(capsys, pack, case):
    code, out, _ = _run(
        capsys, str(pack), "--action", str(case), "--format", "json", "-e", "autonomy.llm_may"
    )
    assert code == 0
    assert json.loads(out) == {
        "expression": "autonomy.llm_may",
        "value": ["rollback", "restart"],
        "type": "list of string",
        "text": '["rollback", "restart"]',
    }


def test_a_type_error_is_one_line_with_its_column(capsys, pack, case):
    code, out, err = _run(
        capsys, str(pack), "--action", str(case), "-e", 'action.environment == "prodution"'
    )
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: 1:23: error[E202]: 'prodution' is never a value here")
    assert "did you mean 'production'?" in err


def test_an_unguarded_optional_field_is_refused_as_check_would(capsys, pack, case):
    code, _, err = _run(capsys, str(pack), "--action", str(case), "-e", "action.rollback.plan")
    assert code == 1
    assert "error[E301]: `action.rollback` is optional" in err
    code, out, _ = _run(
        capsys, str(pack), "--action", str(case), "-e", 'action.rollback.plan ?? "none"'
    )
    assert (code, out) == (0, '"none" : string\n')


def test_a_syntax_error_and_a_fault_are_one_line_each(capsys, pack, case):
    code, _, err = _run(
        capsys, str(pack), "--action", str(case), "-e", "action.cost.", "-e", "1 / 0"
    )
    assert code == 1
    first, second = err.splitlines()
    assert first.startswith("error: 1:13: error[E001]:")
    assert second == "error: evaluation failed: ZeroDivisionError: division by zero"


def test_envelope_overrides_apply(capsys, pack):
    code, out, _ = _run(
        capsys, str(pack), "--set", "autonomy.max_age=1h", "-e", "autonomy.max_age * 2"
    )
    assert (code, out) == (0, "2h : duration\n")


def test_without_an_action_reading_the_input_says_what_to_pass(capsys, pack):
    code, out, err = _run(capsys, str(pack), "-e", "len(autonomy.llm_may)", "-e", "action.kind")
    assert code == 1
    assert out == "2 : integer\n"
    assert "reads `action`, which was not given: pass --action FILE" in err


def test_an_input_that_breaks_the_schema_is_warned_about(capsys, pack, tmp_path, make_action):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(make_action(kind="deplo")), encoding="utf-8")
    code, out, err = _run(capsys, str(pack), "--action", str(path), "-e", "action.target")
    assert code == 0 and out == '"checkout" : string\n'
    assert "warning: the input breaks the schema: action.kind: 'deplo' is not one of" in err


def test_a_pack_that_does_not_compile_exits_2(capsys, new_pack):
    broken = new_pack("rule r { deny when action.kindd == 1 }\n")
    code, _, err = _run(capsys, str(broken), "-e", "1")
    assert code == 2
    assert "E102" in err and "does not compile" in err


def test_expressions_from_standard_input_one_a_line(capsys, monkeypatch, pack, case):
    monkeypatch.setattr(sys, "stdin", io.StringIO("# a comment\naction.kind\n\nlen(action.id)\n"))
    code, out, _ = _run(capsys, str(pack), "--action", str(case))
    assert code == 0
    assert out.splitlines()[0].startswith('"deploy" : string')
    assert out.splitlines()[1] == "5 : integer"


def test_completion_of_names_and_field_paths(pack):
    report = compile_pack(pack)
    assert report.compiled is not None
    session = Session(report.compiled)
    assert session.completions("aut") == ["autonomy"]
    assert session.completions("autonomy.m") == ["autonomy.max_age"]
    assert session.completions("action.actor.t") == ["action.actor.trust"]
    assert "usage.spend_usd" in session.completions("usage.")
    with pytest.raises(ExpressionError, match="not given"):
        session.evaluate("context.now")


def test_an_interactive_session_on_a_terminal(pack, case):
    """A real terminal: the prompt, a value, an error, then :quit."""
    leader, follower = os.openpty()
    env = {"PYTHONPATH": str(ROOT), "NO_COLOR": "1", "TERM": "dumb", "PATH": os.environ["PATH"]}
    process = subprocess.Popen(
        [sys.executable, "-m", "aigre_policy.cli.main", "repl", str(pack), "--action", str(case)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    seen = b""

    def read_until(marker: bytes, timeout: float = 60) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen:
            # a selector, not select(): a long test run may hold descriptors past 1024
            with selectors.DefaultSelector() as waiting:
                waiting.register(leader, selectors.EVENT_READ)
                ready = waiting.select(max(deadline - time.monotonic(), 0))
            if not ready:
                raise AssertionError(f"no {marker!r} in {seen!r}")
            try:
                seen += os.read(leader, 4096)
            except OSError:  # the other side closed
                raise AssertionError(f"no {marker!r} in {seen!r}") from None

    try:
        read_until(b"aigre> ")
        os.write(leader, b"action.cost.estimated_usd + 1\n")
        read_until(b"13.5 : number")
        os.write(leader, b"action.nope\n")
        read_until(b"error[E102]")
        os.write(leader, b"action.actor.tr\t\n")  # Tab completes the field path
        read_until(b"3 : integer")
        os.write(leader, b":quit\n")
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)


def test_the_examples_in_the_cli_reference_print_what_they_say(capsys, monkeypatch):
    """Each ``$ aigre-policy repl ...`` of docs/cli.md, run from the repository root."""
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = text[text.index("## `aigre-policy repl`") : text.index("## `aigre-policy lsp`")]
    monkeypatch.chdir(ROOT)
    examples = 0
    for block in re.findall(r"```\n(\$ aigre-policy repl .*?)```", section, re.S):
        command, _, expected = block.replace("\\\n", " ").partition("\n")
        expected = expected.split("$ echo $?")[0]
        code = main(shlex.split(command.removeprefix("$ aigre-policy ")))
        out, err = capsys.readouterr()
        assert (out + err).splitlines() == expected.splitlines(), command
        if "$ echo $?" in block:
            assert str(code) == block.rstrip().splitlines()[-1]
        examples += 1
    assert examples == 2


def test_an_action_from_standard_input_needs_the_expressions_as_arguments(
    capsys, monkeypatch, pack, case
):
    monkeypatch.setattr(sys, "stdin", io.StringIO(case.read_text(encoding="utf-8")))
    code, out, _ = _run(capsys, str(pack), "--action", "-", "-e", "action.kind")
    assert code == 0 and out.startswith('"deploy"')
    code, _, err = _run(capsys, str(pack), "--action", "-")
    assert code == 2 and "give the expressions with -e" in err


def test_a_pack_path_with_brackets_is_printed_as_is(capsys, new_pack):
    broken = new_pack("rule r { deny when action.kindd == 1 }\n", name="[red]pack")
    code, _, err = _run(capsys, str(broken), "-e", "1")
    assert code == 2 and "[red]pack does not compile" in err


_PIECES = [
    "action", "context", "usage", "autonomy", ".", "kind", "cost", "estimated_usd", "llm_may",
    "max_age", " ", "(", ")", "[", "]", '"', "1", "0", "15m", "/", "%", "*", "+", "-", "??",
    "==", "<", " in ", " not ", " and ", "has ", "any(", "x in ", ":", "x", ",", "len(",
    "weekday(", "now", "requested_at", "1e308", "#", "\\", "{", "}",
]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_text_gives_a_value_or_one_line(data, compiled_session):
    text = "".join(data.draw(st.lists(st.sampled_from(_PIECES), max_size=25)))
    try:
        result = compiled_session.evaluate(text)
    except ExpressionError as exc:
        assert "\n" not in str(exc)
    else:
        assert result.text()


@pytest.fixture(scope="module")
def compiled_session(tmp_path_factory) -> Session:
    root = write_pack(tmp_path_factory.mktemp("repl") / "pack", POLICY)
    report = compile_pack(root)
    assert report.compiled is not None
    return Session(report.compiled, _action(), dict(CONTEXT), {"spend_usd": 3})
