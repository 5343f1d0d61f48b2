"""Every syntax error of a file in one run, and curated messages for the common mistakes."""

from __future__ import annotations

import pytest
from conftest import write_pack
from lark.exceptions import UnexpectedInput

from aigre_policy.cli.main import main
from aigre_policy.parser import _CURATED, parse_module

# (curated key, a file with the mistake, line:col, the message expected)
MISTAKES = [
    (
        "approver-list",
        'rule r {\n  require_approval by finops when action.kind == "x"\n}\n',
        (2, 23),
        'approver groups are a list: `by ["finops"]`',
    ),
    (
        "escalate-list",
        "rule r {\n  escalate to reviewers when true\n}\n",
        (2, 15),
        'escalation groups are a list: `to ["reviewers"]`',
    ),
    (
        "rule-id-string",
        'rule "quoted" {\n  deny when true\n}\n',
        (1, 6),
        "a rule id is a name, not a string: `rule quoted {`",
    ),
    (
        "test-name-word",
        "test t {\n  expect allow\n}\n",
        (1, 6),
        'a test\'s name is a string: `test "t" {`',
    ),
    (
        "envelope-equals",
        "envelope cost { cap = 3 }\n",
        (1, 21),
        "envelope values are written `name: value`, not `name = value`",
    ),
    (
        "because-word",
        "rule r {\n  deny when true because nope\n}\n",
        (2, 26),
        'a `because` message is a string: `because "..."`',
    ),
    (
        "expect-by-nothing",
        'test "t" {\n  expect allow by\n}\n',
        (3, 1),
        "`expect ... by` names the rules that fire",
    ),
]


def test_every_curated_message_has_a_case_here() -> None:
    assert {key for key, *_ in MISTAKES} == set(_CURATED)


@pytest.mark.parametrize("key,text,where,message", MISTAKES, ids=[m[0] for m in MISTAKES])
@pytest.mark.parametrize("after_another", [False, True], ids=["first", "after-another"])
def test_a_common_mistake_gets_its_curated_message(
    key, text, where, message, after_another
) -> None:
    prefix = "envelope cost {\n  cap: 1\n}\n\n" if after_another else ""
    result = parse_module(prefix + text, "p.aigre")
    assert result.module is None
    (diagnostic,) = result.diagnostics
    assert diagnostic.code == "E001"
    assert diagnostic.message == message
    assert diagnostic.hint
    shift = prefix.count("\n")
    assert (diagnostic.span.line, diagnostic.span.column) == (where[0] + shift, where[1])


def test_every_syntax_error_of_a_file_is_reported_in_one_run() -> None:
    text = "\n".join(text for _, text, _, _ in MISTAKES) + (
        '\nrule ok {\n  deny when action.kind = "x"\n}\n'
    )
    result = parse_module(text, "p.aigre")
    assert result.module is None
    assert len(result.diagnostics) == len(MISTAKES) + 1
    assert [d.message for d in result.diagnostics[:-1]] == [m for *_, m in MISTAKES]
    lines = [d.span.line for d in result.diagnostics]
    assert lines == sorted(lines)


def test_a_missing_closing_brace_does_not_hide_the_next_declaration_s_error() -> None:
    text = (
        'rule a {\n  deny when action.kind == "x"\n\n'  # no `}`
        'rule b {\n  deny when action.kind = "y"\n}\n'
    )
    result = parse_module(text, "p.aigre")
    assert [(d.span.line, d.code) for d in result.diagnostics] == [(4, "E001"), (5, "E001")]


def test_a_clean_file_still_parses() -> None:
    assert parse_module("rule r {\n  deny when true\n}\n", "p.aigre").module is not None


def test_check_prints_every_syntax_error_with_file_line_col(
    tmp_path, capsys, plain_console
) -> None:
    root = write_pack(
        tmp_path / "pack",
        "rule a {\n  require_approval by finops when true\n}\n\n"
        'rule b {\n  deny when action.kind = "y"\n}\n',
    )
    assert main(["check", str(root)]) == 1
    out = capsys.readouterr().out
    assert 'main.aigre:2:23: error[E001]: approver groups are a list: `by ["finops"]`' in out
    assert "main.aigre:6:25: error[E001]: unexpected `=`" in out
    assert "2 errors" in out


def test_finding_every_error_reads_the_file_about_once(monkeypatch) -> None:
    """Each new parse starts past the declarations already read: the text parsed again, all
    errors together, stays within about one file (not one file per error)."""
    import aigre_policy.parser as parser_module

    real = parser_module.lark_parser()
    read: list[int] = []

    class Counting:
        def parse(self, text: str, start: str):
            begin = len(text) - len(text.lstrip())  # blanked text costs a whitespace skip
            try:
                tree = real.parse(text, start=start)
            except UnexpectedInput as exc:  # the parse read up to the error
                read.append((exc.pos_in_stream or len(text)) - begin)
                raise
            read.append(len(text) - begin)
            return tree

        def __getattr__(self, name: str):
            return getattr(real, name)

    def bad(i: int) -> str:
        return f'rule r{i} {{\n  deny when action.kind = "x"\n}}\n'

    def good(i: int) -> str:
        return f'rule r{i} {{\n  deny when action.kind == "x"\n}}\n'

    text = "".join(bad(i) if i % 10 == 0 else good(i) for i in range(300))
    monkeypatch.setattr(parser_module, "lark_parser", lambda: Counting())
    result = parse_module(text, "p.aigre")
    assert len(result.diagnostics) == 30
    assert sum(read[-29:]) <= 1.1 * len(text)  # the 29 parses after the first error
