"""Properties of the formatter over generated packs and every pack in the repository.

Packs are drawn from a grammar-driven strategy: envelopes, rules with typed
conditions, usages, tests and invariants, written out token by token with a
random layout between the tokens (spaces, line breaks, blank lines, optional
commas and comments wherever the grammar allows them). Formatting must be
idempotent and must not change what the pack compiles to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from aigre_policy.comments import collect_comments
from aigre_policy.compiler import compile_pack
from aigre_policy.fmt import format_source
from aigre_policy.parser import parse_module

REPO = Path(__file__).resolve().parent.parent
MANIFEST = "name: generated\nversion: 0.1.0\ndefault: allow\nfail_closed: deny\n"

# ------------------------------------------------------------------ tokens with their gaps


@dataclass(frozen=True)
class Tok:
    """A token; ``space`` when the canonical layout puts a space before it, ``tight`` when
    it sits inside a comparison (whose text the evidence quotes)."""

    text: str
    space: bool = True
    tight: bool = False


def toks(text: str, tight: bool = False) -> list[Tok]:
    """Split a canonical one-line snippet into tokens, remembering where the spaces were."""
    out: list[Tok] = []
    pattern = (
        r'any\(|"(?:[^"\\]|\\.)*"|at\s+least|\?\?|[=!<>]=|[0-9]+(?:\.[0-9]+)?(?:e[0-9]+)?[a-z]*'
        r"|[A-Za-z_][A-Za-z0-9_-]*|\S"
    )
    position = 0
    for match in re.finditer(pattern, text):
        space = match.start() > position and text[position : match.start()].strip() == ""
        out.append(Tok(match.group(), space or not out, tight))
        position = match.end()
    return out


# ------------------------------------------------------------------ grammar-driven strategies

ENUMS = {
    "action.environment": ["production", "staging", "development", "sandbox"],
    "action.actor.kind": ["human", "llm", "automation"],
    "action.kind": ["rollback", "scale", "restart", "deploy", "config_change"],
}
NUMBERS = ["action.cost.estimated_usd", "action.actor.trust", "action.blast_radius.users_share"]
number_literal = st.sampled_from(["0", "3", "0.25", "1e3", "250", "12.5"])


@st.composite
def comparison(draw) -> str:
    kind = draw(st.sampled_from(["enum", "number", "member", "envelope", "optional", "bool"]))
    if kind == "enum":
        field = draw(st.sampled_from(sorted(ENUMS)))
        op = draw(st.sampled_from(["==", "!="]))
        return f'{field} {op} "{draw(st.sampled_from(ENUMS[field]))}"'
    if kind == "number":
        field = draw(st.sampled_from(NUMBERS))
        op = draw(st.sampled_from(["<", "<=", ">", ">="]))
        return f"{field} {op} {draw(number_literal)}"
    if kind == "member":
        kinds = draw(st.lists(st.sampled_from(ENUMS["action.kind"]), min_size=1, max_size=3))
        neg = draw(st.sampled_from(["in", "not in"]))
        return f"action.kind {neg} [" + ", ".join(f'"{k}"' for k in kinds) + "]"
    if kind == "envelope":
        return "action.cost.estimated_usd * 2 > limits.max_usd"
    if kind == "optional":
        return f"(action.change.lines ?? 0) > {draw(st.sampled_from(['10', '200']))}"
    return "action.reversible == false"


def _glued(tokens: list[Tok]) -> list[Tok]:
    """The tokens of a condition right after ``(``: no space before the first."""
    first = tokens[0]
    return [Tok(first.text, False, first.tight), *tokens[1:]]


def condition(depth: int = 2) -> st.SearchStrategy[list[Tok]]:
    leaf = st.one_of(
        comparison().map(lambda text: toks(text, tight=True)),
        st.just(toks("has action.rollback")),
        st.just(toks("not action.reversible")),
        comparison().map(
            lambda text: (
                toks("any(a in action.approvals ?? []:") + toks(text, True) + [Tok(")", False)]
            )
        ),
    )
    if depth == 0:
        return leaf
    inner = condition(depth - 1)
    return st.one_of(
        leaf,
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: [*t[0], Tok(t[1]), *t[2]]
        ),
        inner.map(lambda t: [Tok("("), *_glued(t), Tok(")", False)]),
        inner.map(lambda t: [Tok("not"), Tok("("), *_glued(t), Tok(")", False)]),
    )


words = st.sampled_from(["alpha", "beta", "gamma", "delta"])
constant = st.one_of(
    number_literal,
    st.sampled_from(["-5", "15m", "-2h", "true", "false", '"text"', '"a \\"quoted\\" word"']),
    st.lists(words, max_size=4).map(lambda ws: "[" + ", ".join(f'"{w}"' for w in ws) + "]"),
)


@st.composite
def envelope(draw, name: str) -> list[Tok]:
    out = toks(f"envelope {name} {{")
    fields = draw(st.lists(st.tuples(words, constant), max_size=4, unique_by=lambda f: f[0]))
    if name == "limits":
        fields = [("max_usd", "250"), *[f for f in fields if f[0] != "max_usd"]]
    for key, value in fields:
        out += toks(f"{key}: {value}")
        if draw(st.booleans()):
            out.append(Tok(",", False))
    return [*out, Tok("}")]


@st.composite
def rule(draw, rule_id: str) -> list[Tok]:
    out = toks(f"rule {rule_id} {{")
    if draw(st.booleans()):
        out += toks(f'title: "{draw(words)} things"')
    if draw(st.booleans()):
        out += toks(f"severity: {draw(st.sampled_from(['low', 'high']))}")
    if draw(st.booleans()):
        out += toks('tags: ["cost", "finops",]')
    verdict = draw(
        st.sampled_from(
            ["deny", 'require_approval by ["sre-oncall"]', 'escalate to ["finops"]', "warn"]
        )
    )
    out += toks(f"{verdict} when") + draw(condition())
    if draw(st.booleans()):
        out += toks('because "{action.kind} on {action.target} # not a comment"')
    return [*out, Tok("}")]


@st.composite
def bright_line_test(draw, rule_ids: list[str]) -> list[Tok]:
    kind = draw(st.sampled_from(ENUMS["action.kind"]))
    out = toks(f'test "case {draw(words)}" {{')
    out += toks(f'action {{ kind: "{kind}", cost: {{ estimated_usd: 3 }}, approvals: [] }}')
    out += toks('context { now: "2025-03-11T14:02:40Z" }')
    out += toks("with limits.max_usd = 10")
    out += toks(f"expect deny by at least {', '.join(rule_ids[:2])}")
    out += toks(f"expect silent {rule_ids[-1]}")
    return [*out, Tok("}")]


@st.composite
def pack_tokens(draw) -> list[Tok]:
    count = draw(st.integers(1, 3))
    rule_ids = [f"rule-{i}" for i in range(count)]
    items = [draw(envelope("limits"))]
    items += [draw(rule(rule_id)) for rule_id in rule_ids]
    if draw(st.booleans()):
        usage = "usage spent = sum(action.cost.estimated_usd) over last 30d where"
        items.append(toks(usage) + toks('action.environment == "production"', tight=True))
    if draw(st.booleans()):
        items.append(draw(bright_line_test(rule_ids)))
    if draw(st.booleans()):
        items.append(
            toks('invariant "bounded" { when') + draw(condition(1)) + toks("expect at most deny }")
        )
    order = draw(st.permutations(items))
    return [tok for item in order for tok in item]


# ------------------------------------------------------------------ random layout


comment = st.sampled_from(["# why", "#", "# a # b", "#  indented note"])


@st.composite
def gap(draw, tok: Tok, free: bool) -> str:
    """The text before ``tok``: canonical spacing inside comparisons, anything elsewhere."""
    indent = " " * draw(st.integers(0, 6))
    if tok.tight and not free:
        return draw(st.sampled_from([" ", "\n" + indent])) if tok.space else ""
    options = [
        " " if tok.space else "",
        "\n" + indent,
        "\n\n" + indent,
        "   ",
        "  " + draw(comment) + "\n" + indent,
        "\n" + indent + draw(comment) + "\n" + indent,
        "\n\n" + draw(comment) + "\n\n" + indent,
    ]
    return draw(st.sampled_from(options))


@st.composite
def laid_out(draw, free: bool = False) -> str:
    """A generated pack written with a random layout; ``free`` lets comparisons vary too."""
    tokens = draw(pack_tokens())
    parts = [draw(st.sampled_from(["", "# header\n\n", "\n"]))]
    for index, tok in enumerate(tokens):
        if index:
            parts.append(draw(gap(tok, free)))
        text = tok.text
        if text.startswith("at") and "least" in text:
            text = "at" + draw(st.sampled_from([" ", "  ", "\n"])) + "least"
        parts.append(text)
    parts.append(draw(st.sampled_from(["", "\n", "\n# trailing\n"])))
    return "".join(parts)


def _program(tmp: Path, source: str):
    (tmp / "policies").mkdir(parents=True, exist_ok=True)
    (tmp / "pack.yaml").write_text(MANIFEST)
    (tmp / "policies" / "main.aigre").write_text(source)
    report = compile_pack(tmp)
    assert report.ok, [str(d.message) for d in report.diagnostics]
    return report.compiled.program


# ------------------------------------------------------------------ properties


@settings(max_examples=40, deadline=None)
@given(source=laid_out())
def test_formatting_twice_equals_formatting_once(source: str) -> None:
    once = format_source(source, "main.aigre")
    assert once.ok, once.diagnostics
    twice = format_source(once.formatted, "main.aigre")
    assert twice.formatted == once.formatted


@settings(max_examples=25, deadline=None)
@given(source=laid_out())
def test_a_formatted_pack_compiles_to_the_same_program(source: str, tmp_path_factory) -> None:
    formatted = format_source(source, "main.aigre").formatted
    assert formatted is not None
    before = _program(tmp_path_factory.mktemp("before"), source)
    after = _program(tmp_path_factory.mktemp("after"), formatted)
    assert after == before


@settings(max_examples=40, deadline=None)
@given(source=laid_out(free=True))
def test_formatting_keeps_the_ast_and_every_comment_whatever_the_layout(source: str) -> None:
    result = format_source(source, "main.aigre")
    assert result.ok, result.diagnostics
    assert (
        parse_module(result.formatted, "main.aigre").module
        == parse_module(source, "main.aigre").module
    )
    assert [c.text for c in collect_comments(result.formatted)] == [
        c.text for c in collect_comments(source)
    ]
    assert format_source(result.formatted, "main.aigre").formatted == result.formatted


def _repo_packs() -> list[Path]:
    return sorted(p.parent for p in (REPO / "policy_packs").glob("*/pack.yaml"))


def test_every_pack_in_the_repository_is_formatted_and_keeps_its_program(tmp_path) -> None:
    assert _repo_packs(), "no packs found"
    for pack in _repo_packs():
        before = compile_pack(pack)
        assert before.ok, pack
        copy = tmp_path / pack.name
        (copy / "policies").mkdir(parents=True)
        (copy / "pack.yaml").write_text((pack / "pack.yaml").read_text())
        for file in sorted((pack / "policies").glob("*.aigre")):
            result = format_source(file.read_text(), str(file))
            assert result.ok, (file, result.diagnostics)
            assert not result.changed, f"{file} is not formatted: run aigre-policy fmt"
            (copy / "policies" / file.name).write_text(result.formatted)
        after = compile_pack(copy)
        assert after.ok
        assert after.compiled.program == before.compiled.program
