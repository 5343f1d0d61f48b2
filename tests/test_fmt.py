"""The formatter's layout, its comment handling, and the ``fmt`` command's exit codes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from aigre_policy.cli.main import main
from aigre_policy.fmt import format_source

MESSY = """\
# deploy-guard: what agents may do.
envelope autonomy {llm_may: ["rollback","restart"], max_age: 15m,   floor: -5
  budget: 1e3}


rule   llm-outside-its-remit{
  title:"LLM agents stay inside their remit"   # shown in the verdict
    severity :high
  # the actor reads the kind
  deny when action.actor.kind=="llm" and action.kind not in autonomy.llm_may
  because "LLM agents may {autonomy.llm_may}"
}
test "restart" { action { kind: "restart" } expect allow by   at    least llm-outside-its-remit }
"""

CANONICAL = """\
# deploy-guard: what agents may do.
envelope autonomy {
  llm_may: ["rollback", "restart"]
  max_age: 15m
  floor: -5
  budget: 1e3
}

rule llm-outside-its-remit {
  title: "LLM agents stay inside their remit"  # shown in the verdict
  severity: high
  # the actor reads the kind
  deny when action.actor.kind == "llm" and action.kind not in autonomy.llm_may
  because "LLM agents may {autonomy.llm_may}"
}

test "restart" {
  action { kind: "restart" }
  expect allow by at least llm-outside-its-remit
}
"""


def test_a_messy_file_gets_the_canonical_layout_with_tokens_spelled_as_written() -> None:
    result = format_source(MESSY, "guard.aigre")
    assert result.diagnostics == ()
    assert result.formatted == CANONICAL
    assert result.changed


def test_canonical_text_is_left_as_it_is() -> None:
    result = format_source(CANONICAL, "guard.aigre")
    assert result.formatted == CANONICAL
    assert not result.changed


def test_a_long_condition_breaks_before_each_and_and_inside_parentheses() -> None:
    source = (
        'rule r { require_approval by ["sre-oncall"] when action.environment == "production" '
        "and not action.reversible "
        'and (action.cost.estimated_usd > 250 or action.kind == "deploy") '
        'and any(a in action.approvals ?? []: a.group == "sre" and a.by != action.actor.id '
        'and a.by != "someone-with-a-rather-long-name-that-does-not-fit") }\n'
    )
    assert format_source(source, "r.aigre").formatted == (
        "rule r {\n"
        '  require_approval by ["sre-oncall"] when\n'
        '    action.environment == "production"\n'
        "    and not action.reversible\n"
        '    and (action.cost.estimated_usd > 250 or action.kind == "deploy")\n'
        "    and any(a in action.approvals ?? []:\n"
        '            a.group == "sre"\n'
        "            and a.by != action.actor.id\n"
        '            and a.by != "someone-with-a-rather-long-name-that-does-not-fit")\n'
        "}\n"
    )


def test_long_lists_of_constants_hold_as_many_items_a_line_as_fit() -> None:
    kinds = ", ".join(f'"kind_number_{i}"' for i in range(8))
    result = format_source(f"envelope e {{ kinds: [{kinds}] }}", "e.aigre")
    assert result.formatted == (
        "envelope e {\n"
        "  kinds: [\n"
        '    "kind_number_0", "kind_number_1", "kind_number_2", "kind_number_3", "kind_number_4",\n'
        '    "kind_number_5", "kind_number_6", "kind_number_7"\n'
        "  ]\n"
        "}\n"
    )


def test_comments_stay_in_place_leading_trailing_and_standalone() -> None:
    source = (
        "# header\n\n"
        "envelope e {  # after the brace\n"
        "  # before a\n"
        "  a: 1 ,  # after the dropped comma\n"
        "  b: [1,  # inside a list\n"
        "    2]\n"
        "  # before the closing brace\n"
        "}\n"
        "# between declarations\n"
        "rule r { deny when e.a > 0  # ends the condition\n"
        "  and e.b == [1, 2] }\n"
        "# the end\n"
    )
    assert format_source(source, "e.aigre").formatted == (
        "# header\n\n"
        "envelope e {  # after the brace\n"
        "  # before a\n"
        "  a: 1  # after the dropped comma\n"
        "  b: [\n"
        "    1,  # inside a list\n"
        "    2\n"
        "  ]\n"
        "  # before the closing brace\n"
        "}\n\n"
        "# between declarations\n"
        "rule r {\n"
        "  deny when\n"
        "    e.a > 0  # ends the condition\n"
        "    and e.b == [1, 2]\n"
        "}\n"
        "# the end\n"
    )


def test_a_hash_inside_a_string_is_not_a_comment() -> None:
    source = 'rule r { deny when action.kind == "a#b" because "# {action.kind}" }\n'
    result = format_source(source, "r.aigre")
    assert result.formatted == (
        'rule r {\n  deny when action.kind == "a#b"\n  because "# {action.kind}"\n}\n'
    )


def test_blank_lines_between_items_are_kept_once_and_dropped_after_a_brace() -> None:
    source = "envelope e {\n\n\n  a: 1\n\n\n\n  b: 2\n  c: 3\n\n}\n"
    assert format_source(source, "e.aigre").formatted == (
        "envelope e {\n  a: 1\n\n  b: 2\n  c: 3\n}\n"
    )


def test_a_file_that_does_not_parse_is_reported_with_its_position_and_not_formatted() -> None:
    result = format_source("rule r {\n  deny when action.kind = 1\n}\n", "bad.aigre")
    assert result.formatted is None
    (diagnostic,) = result.diagnostics
    assert diagnostic.code == "E001"
    assert (diagnostic.span.line, diagnostic.span.column) == (2, 25)


def test_a_layout_that_would_change_the_meaning_is_refused(monkeypatch) -> None:
    from aigre_policy import fmt

    monkeypatch.setattr(fmt, "render", lambda doc, width: "rule other { deny when true }\n")
    result = fmt.format_source("rule r { deny when true }\n", "r.aigre")
    assert result.formatted is None
    assert [d.code for d in result.diagnostics] == ["F003"]


def test_comparisons_keep_their_text_for_the_evidence() -> None:
    """A comparison is never split across lines: the verdict quotes its source text."""
    condition = " and ".join(f"action.cost.estimated_usd > {i}00000000000" for i in range(1, 9))
    result = format_source(f"rule r {{ deny when {condition} }}", "r.aigre")
    lines = result.formatted.splitlines()[2:-1]
    assert [line.strip().removeprefix("and ") for line in lines] == condition.split(" and ")


# ------------------------------------------------------------------ the command


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    policies = tmp_path / "pack" / "policies"
    policies.mkdir(parents=True)
    messy = policies / "messy.aigre"
    messy.write_text(MESSY)
    messy.chmod(0o640)
    tidy = policies / "tidy.aigre"
    tidy.write_text(CANONICAL)
    return {"root": tmp_path / "pack", "messy": messy, "tidy": tidy}


def test_fmt_rewrites_files_in_place_and_keeps_their_mode(files, capsys, plain_console) -> None:
    assert main(["fmt", str(files["root"])]) == 0
    assert files["messy"].read_text() == CANONICAL
    assert stat.S_IMODE(files["messy"].stat().st_mode) == 0o640
    assert sorted(os.listdir(files["messy"].parent)) == ["messy.aigre", "tidy.aigre"]
    out, err = capsys.readouterr()
    assert f"reformatted {files['messy']}" in out
    assert "1 file reformatted, 1 file left unchanged" in err
    assert main(["fmt", "--check", str(files["root"])]) == 0


def test_fmt_check_lists_the_files_that_would_change_and_exits_1(files, capsys, plain_console):
    assert main(["fmt", "--check", str(files["root"])]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"would reformat {files['messy']}"]
    assert "1 file would be reformatted, 1 file already formatted" in err
    assert files["messy"].read_text() == MESSY


def test_fmt_diff_prints_a_unified_diff_and_writes_nothing(files, capsys, plain_console) -> None:
    assert main(["fmt", "--diff", str(files["messy"])]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"--- {files['messy']}\t(original)\n+++ {files['messy']}\t(formatted)\n")
    assert "\n-rule   llm-outside-its-remit{\n" in out
    assert "\n+rule llm-outside-its-remit {\n" in out
    assert files["messy"].read_text() == MESSY


def test_fmt_leaves_a_file_that_does_not_parse_untouched_and_exits_2(files, capsys, plain_console):
    broken = files["root"] / "policies" / "broken.aigre"
    broken.write_text("rule r {\n  deny when action.kind = 1\n}\n")
    assert main(["fmt", str(files["root"])]) == 2
    err = capsys.readouterr().err
    assert f"{broken}:2:25: error[E001]" in err
    assert f"error: cannot format {broken}; it was left untouched" in err
    assert broken.read_text() == "rule r {\n  deny when action.kind = 1\n}\n"
    assert files["messy"].read_text() == CANONICAL  # the others are still formatted


def test_fmt_reports_a_file_that_is_not_utf8(tmp_path, capsys, plain_console) -> None:
    bad = tmp_path / "latin.aigre"
    bad.write_bytes(b"# caf\xe9\n")
    assert main(["fmt", "--check", str(bad)]) == 2
    assert "error[E500]: cannot read" in capsys.readouterr().err


def test_fmt_refuses_a_path_without_policy_files(tmp_path, capsys, plain_console) -> None:
    assert main(["fmt", str(tmp_path / "missing")]) == 2
    assert "no file or directory at" in capsys.readouterr().err
    assert main(["fmt", str(tmp_path)]) == 2
    assert "holds no .aigre files" in capsys.readouterr().err
