"""Comments collected by a lexer pass over the language's own grammar."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from aigre_policy.comments import Comment, collect_comments

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "policy_packs" / "aigre-baseline" / "policies"


def test_standalone_and_trailing_comments_with_positions():
    text = '# heading\nrule r { # after the brace\n  deny when action.kind == "deploy"\n}\n'
    assert collect_comments(text) == [
        Comment(1, 1, 10, "# heading", True),
        Comment(2, 10, 27, "# after the brace", False),
    ]


def test_hash_inside_a_string_is_not_a_comment():
    text = 'rule r { deny when action.target == "a # b" } # real\n'
    (comment,) = collect_comments(text)
    assert comment.text == "# real"
    assert (comment.line, comment.column) == (1, 47)
    assert comment.body == "real"


def test_indented_comment_stands_alone():
    (comment,) = collect_comments("envelope e {\n    # why\n  x: 1\n}\n")
    assert comment.standalone
    assert (comment.line, comment.column, comment.end_column) == (2, 5, 10)


def test_comments_survive_characters_the_lexer_rejects():
    text = "rule r { deny when 'x' } # after a bad quote\n# next line\n"
    assert [c.text for c in collect_comments(text)] == ["# after a bad quote", "# next line"]


def test_empty_and_comment_free_text():
    assert collect_comments("") == []
    assert collect_comments('rule r { deny when action.kind == "deploy" }') == []


def test_every_comment_line_of_the_default_pack_is_found():
    for path in sorted(BASELINE.glob("*.aigre")):
        text = path.read_text(encoding="utf-8")
        found = {c.line for c in collect_comments(text) if c.standalone}
        expected = {
            i for i, line in enumerate(text.split("\n"), start=1) if line.lstrip().startswith("#")
        }
        assert found == expected, path.name


_WORDS = st.sampled_from(["rule", "r", "{", "}", "deny", "when", "action.kind", "==", "1", "x"])
_STRINGS = st.text(alphabet="ab #{}", max_size=6).map(lambda s: f'"{s}"')
_COMMENT_TEXT = st.text(alphabet="ab #\"'{}", max_size=10).map(lambda s: "#" + s)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.one_of(_WORDS, _STRINGS), max_size=4),
            st.one_of(st.none(), _COMMENT_TEXT),
            st.integers(min_value=0, max_value=3),
        ),
        max_size=6,
    )
)
def test_collected_comments_are_exactly_the_ones_written(lines):
    text_lines: list[str] = []
    expected: list[Comment] = []
    for number, (words, comment, indent) in enumerate(lines, start=1):
        code = " " * indent + " ".join(words)
        if comment is None:
            text_lines.append(code)
            continue
        prefix = code + " " if code.strip() else code
        column = len(prefix) + 1
        expected.append(Comment(number, column, column + len(comment), comment, not code.strip()))
        text_lines.append(prefix + comment)
    assert collect_comments("\n".join(text_lines)) == expected
