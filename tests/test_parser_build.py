"""The parser builds nodes while Lark parses, and gives exactly what building them from
Lark's parse tree gives: the same nodes, the same spans, the same diagnostics in the same
order, the nesting limit (E004) at the same node.

The tree way is kept in ``parser`` for a Lark that does not expose what building during
the parse needs; these tests use it as the reference, on the repository's packs, on
mutations of them and on nesting at the limit.
"""

from __future__ import annotations

import dataclasses
import random
import re
import sys
import threading
from pathlib import Path
from typing import Any

import lark
import pytest

import aigre_policy.parser as parser_module
from aigre_policy.parser import MAX_NESTING, _AstBuilder, parse_expression, parse_module

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from evalbench.packs import generated_source, repro_source  # noqa: E402

PACK_FILES = sorted(p for p in REPO.glob("**/*.aigre") if ".git" not in p.parts)
# Inserted by the mutations: each reaches a different diagnostic or parser state.
INSERTS = [
    "(", ")", "{", "}", '"', "\\", " not ", " ?? ", "-", "1e999", "9" * 30, ".", ",", "#",
    '{action.x}', "{true}", "{ has a }", "{{", "}}", "\\q", "99999999999h", "[", "]",
]  # fmt: skip


def dump(value: Any) -> Any:
    """Nodes with their spans (node equality leaves spans out)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            tuple((f.name, dump(getattr(value, f.name))) for f in dataclasses.fields(value)),
        )
    if isinstance(value, list | tuple):
        return tuple(dump(item) for item in value)
    if isinstance(value, float) and value != value:
        return "nan"
    return (type(value).__name__, value)


def both_ways(monkeypatch: pytest.MonkeyPatch, text: str, expr: bool = False) -> tuple[Any, Any]:
    """(built during the parse, built from the parse tree), each with its diagnostics."""

    def run() -> Any:
        if expr:
            node, diagnostics = parse_expression(text, "f.aigre")
            return dump(node), dump(diagnostics)
        result = parse_module(text, "f.aigre")
        return dump(result.module), dump(result.diagnostics)

    during = run()
    with monkeypatch.context() as patch:
        patch.setattr(parser_module, "_reduce_plan", lambda: None)
        from_tree = run()
    return during, from_tree


def deep_cases() -> list[str]:
    cases = []
    for depth in (MAX_NESTING - 2, MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1, 150):
        cases += [
            "rule r { deny when " + "not " * depth + "true }",
            "rule r { deny when " + "(" * depth + "a" + ")" * depth + " }",
            "rule r { deny when a" + " ?? a" * depth + " }",
            "rule r { deny when " + " or ".join(["a"] * depth) + " }",
            'rule r {\n  deny when true\n  because "x {' + "-" * depth + '1} y"\n}',
            'rule r { deny when true because "x {' + ".".join(["a"] * depth) + '} y" }',
            "rule r { deny when x in [" + "[" * depth + "1" + "]" * depth + "] }",
        ]
    return cases


def test_the_repository_packs_are_the_tests_inputs() -> None:
    assert len(PACK_FILES) >= 5


@pytest.mark.parametrize("path", PACK_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_each_pack_file_builds_as_from_the_tree(
    monkeypatch: pytest.MonkeyPatch, path: Path
) -> None:
    during, from_tree = both_ways(monkeypatch, path.read_text(encoding="utf-8"))
    assert during[0] is not None
    assert during == from_tree


def test_generated_packs_build_as_from_the_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    for text in (generated_source(40), repro_source(12)):
        during, from_tree = both_ways(monkeypatch, text)
        assert during[0] is not None and during == from_tree


@pytest.mark.parametrize("text", deep_cases())
def test_nesting_at_the_limit_is_judged_at_the_same_node(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    during, from_tree = both_ways(monkeypatch, text)
    assert during == from_tree


def test_too_deep_file_gives_e004_alone_at_the_first_deep_node() -> None:
    text = "rule r {\n  deny when 1e999 > 2 and " + "not " * (MAX_NESTING + 5) + "x\n}"
    result = parse_module(text, "f.aigre")
    assert result.module is None
    assert [d.code for d in result.diagnostics] == ["E004"]  # the E002 of 1e999 is not kept
    span = result.diagnostics[0].span
    assert span is not None and span.line == 2
    assert text.splitlines()[1][span.column - 1 :].startswith("not ")


# Where the builder's own diagnostics live: number and duration literals (E002, out of
# range) and the placeholders of `because` messages (E003). A mutation at a random place
# mostly breaks the syntax instead, and the parser's error recovery reports that as E001
# alone, so the test also aims mutations at these places.
LITERAL = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:[smhd]\b)?(?![\w.])")
MESSAGE = re.compile(r'because\s+"')
BAD_LITERALS = ["1e999", "9" * 400, "99999999999999999d"]  # each E002 where a number goes
BAD_PLACEHOLDERS = ["{", "{1 +}", "{action.}", "{}"]  # each E003 in a message


def aimed_mutation(rng: random.Random, text: str) -> str | None:
    """A literal made out of range, or a broken placeholder put into a message."""
    if rng.random() < 0.5:
        literals = list(LITERAL.finditer(text))
        if literals:
            hit = rng.choice(literals)
            return text[: hit.start()] + rng.choice(BAD_LITERALS) + text[hit.end() :]
    messages = list(MESSAGE.finditer(text))
    if not messages:
        return None
    hit = rng.choice(messages)
    return text[: hit.end()] + rng.choice(BAD_PLACEHOLDERS) + text[hit.end() :]


def test_mutated_packs_give_the_same_nodes_and_diagnostics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    corpus = [p.read_text(encoding="utf-8") for p in PACK_FILES] + [generated_source(12)]
    rng = random.Random(11)
    kinds = {"parsed": 0, "diagnosed": 0, "syntax": 0}
    aimed = {"parsed": 0, "diagnosed": 0, "syntax": 0}
    for round_ in range(140):  # 100 mutations at random places, 40 aimed
        text = rng.choice(corpus)
        at = rng.randrange(len(text))
        cut = min(len(text), at + rng.randrange(1, 25))
        choice = rng.random()
        mutated = aimed_mutation(rng, text) if round_ >= 100 else None
        if mutated is not None:
            text = mutated
        elif choice < 0.25:
            text = text[:at]
        elif choice < 0.5:
            text = text[:at] + text[cut:]
        else:
            text = text[:at] + rng.choice(INSERTS) + text[at:]
        during, from_tree = both_ways(monkeypatch, text)
        assert during == from_tree, text
        during, from_tree = both_ways(monkeypatch, text, expr=True)
        assert during == from_tree, text
        codes = [d.code for d in parse_module(text, "f.aigre").diagnostics]
        # a diagnostic of the builder counts as reached, even beside a recovered syntax error
        kind = "diagnosed" if set(codes) - {"E001"} else "syntax" if codes else "parsed"
        (aimed if mutated is not None else kinds)[kind] += 1
    assert kinds["parsed"] > 10 and kinds["syntax"] > 10, kinds
    assert aimed["diagnosed"] >= 20, aimed


# ------------------------------------------------------------ plain paths in messages


def grammar_words() -> list[str]:
    terminals = parser_module.lark_parser().terminals
    keywords = {str(t.pattern.value) for t in terminals if t.pattern.type == "str"}
    others = ["allow", "sum", "count", "max", "any", "all", "allowlist", "anything", "s", "ms"]
    return sorted({w for w in keywords if w.isidentifier()} | {*others, "d", "e", "_", "x1"})


@pytest.mark.parametrize("word", grammar_words())
def test_plain_path_reads_as_the_parser_reads_it(word: str) -> None:
    """Every keyword of the grammar, first, last and in the middle of a path: the shortcut
    for `{action.target}` gives the parser's nodes and spans, or steps aside."""
    for source in (word, f"x.{word}", f"{word}.x", f"a.{word}.b"):
        fast = _AstBuilder("f.aigre", [])
        fast.columns, fast.line = list(range(7, 8 + len(source))), 4
        shortcut = fast._field_path(source)
        full = _AstBuilder("f.aigre", [])
        full.columns, full.line = list(range(7, 8 + len(source))), 4
        try:
            parsed = full.build(source, "expr")
        except lark.exceptions.UnexpectedInput:
            parsed = None
        assert shortcut is None or dump(shortcut) == dump(parsed), source


def test_message_paths_keep_their_columns() -> None:
    text = 'rule r {\n  deny when true\n  because "at {action.target} and { action.kind }"\n}'
    result = parse_module(text, "f.aigre")
    assert result.module is not None and not result.diagnostics
    (message,) = result.module.declarations[0].because  # type: ignore[union-attr]
    fields = [part for part in message.parts if not isinstance(part, str)]
    line = text.splitlines()[2]
    assert [(f.span.line, line[f.span.column - 1 : f.span.end_column - 1]) for f in fields] == [
        (3, "action.target"),
        (3, "action.kind"),
    ]
    subject = fields[0].subject
    assert line[subject.span.column - 1 : subject.span.end_column - 1] == "action"


# ------------------------------------------------------------ no tree, any thread


def test_a_parse_builds_no_lark_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cost this module removed: one ``Tree`` per rule reduced, then a walk over them."""
    made = 0
    original = lark.Tree.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal made
        made += 1
        original(self, *args, **kwargs)

    text = generated_source(20)
    parse_module(text, "f.aigre")  # builds the grammar first, outside the count
    monkeypatch.setattr(lark.Tree, "__init__", counting)
    result = parse_module(text, "f.aigre")
    assert result.module is not None and len(result.module.declarations) == 20
    assert made == 0


def test_threads_parsing_at_once_get_their_own_nodes() -> None:
    texts = [generated_source(15, seed) for seed in range(6)]
    expected = [dump(parse_module(t, f"f{i}.aigre").module) for i, t in enumerate(texts)]
    results: dict[int, Any] = {}

    def work(i: int) -> None:
        for _ in range(3):
            results[i] = dump(parse_module(texts[i], f"f{i}.aigre").module)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[i] for i in range(len(texts))] == expected


def test_a_child_filter_not_known_falls_back_to_the_tree() -> None:
    """Building during the parse reads Lark's child filters; one it does not know (a newer
    Lark) makes the parser build the tree and transform it instead of guessing."""
    _, plan = parser_module._reduce_plan() or (None, [])
    rule = next(rule for rule, name, _ in plan if name == "compare")
    assert parser_module._shape(rule, [object()]) is None
    every_child = [(0, False, 0), (1, False, 0), (2, False, 0)]
    assert parser_module._shape(rule, []) == (every_child, 0, False)
