"""The VS Code folder: its manifest validates, and its TextMate grammar highlights every
keyword and literal of the language's grammar (``grammar/aigre.lark`` is the truth).

The grammar's patterns keep to the regular-expression syntax Oniguruma (VS Code's engine)
and Python's ``re`` share, so a small TextMate tokenizer here runs them as VS Code does:
at each position the earliest match wins, the first pattern on a tie, an enclosing
``begin``'s ``end`` before its inner patterns. Run side by side with VS Code's own engine
(vscode-textmate 9 on vscode-oniguruma 2) over every line of the repository's packs and
every sample below, it gave the same scopes to every character.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lark.lexer import PatternRE, PatternStr

from aigre_policy.grammar import parser as lark_parser

ROOT = Path(__file__).resolve().parents[1]
VSCODE = ROOT / "editors" / "vscode"
GRAMMAR = VSCODE / "syntaxes" / "aigre.tmLanguage.json"

# scopes a keyword may get: a keyword, a declaration, a built-in constant, input or function
KEYWORD_SCOPES = ("keyword.", "storage.type.", "constant.language.", "variable.language.")
KEYWORD_SCOPES += ("support.function.",)


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ what the grammar has


def grammar_keywords() -> set[str]:
    """Every word the Lark grammar spells out: literal terminals, and the words of
    terminals that are a plain alternation (``DECISION: "allow" | "deny" | ...``)."""
    words: set[str] = set()
    for terminal in lark_parser().terminals:
        value = terminal.pattern.value
        if isinstance(terminal.pattern, PatternStr) and re.fullmatch(r"[a-z_]+", value):
            words.add(value)
        elif isinstance(terminal.pattern, PatternRE):
            alternation = re.match(r"\(\?:([a-z_|]+)\)", value)
            if alternation:
                words.update(alternation.group(1).split("|"))
    return words


def grammar_operators() -> set[str]:
    """The grammar's operator symbols: literal ones, and those of COMPARE, ADD and MUL."""
    found: set[str] = set()
    punctuation = set("{}[](),:.")
    for terminal in lark_parser().terminals:
        value = terminal.pattern.value
        if isinstance(terminal.pattern, PatternStr):
            if not re.fullmatch(r"[a-z_]+", value) and value not in punctuation:
                found.add(value)
        elif terminal.name in ("COMPARE", "ADD", "MUL"):
            found.update(_alternatives(value))
    return found


def _alternatives(regex: str) -> set[str]:
    inner = regex.removeprefix("(?:").removesuffix(")")
    return {part.replace("\\", "") for part in inner.split("|")}


# ------------------------------------------------------------------ a TextMate tokenizer


@dataclass
class _Frame:
    rule: dict[str, Any]
    end: re.Pattern[str]


def _patterns(grammar: dict[str, Any], rule: dict[str, Any]) -> list[dict[str, Any]]:
    """The rules a rule's ``patterns`` stand for, includes expanded, in order."""
    found: list[dict[str, Any]] = []
    for pattern in rule.get("patterns", []):
        include = pattern.get("include")
        if include == "$self":
            found += _patterns(grammar, grammar)
        elif include is not None:
            target = grammar["repository"][include.removeprefix("#")]
            found += (
                _patterns(grammar, target)
                if "patterns" in target and not ("match" in target or "begin" in target)
                else [target]
            )
        else:
            found.append(pattern)
    return found


def _name_captures(scopes: list[list[str]], match: re.Match[str], captures: dict) -> None:
    for group, capture in (captures or {}).items():
        start, end = match.span(int(group))
        for index in range(max(start, 0), end):
            scopes[index].append(capture["name"])


def scopes_of(line: str) -> list[list[str]]:
    """The scopes of each character of one line, as VS Code would give them."""
    grammar = _load(GRAMMAR)
    scopes: list[list[str]] = [[] for _ in line]
    stack: list[_Frame] = []
    position = 0
    while position <= len(line):
        rules = _patterns(grammar, stack[-1].rule if stack else grammar)
        best: tuple[int, int, re.Match[str], dict[str, Any] | None] | None = None
        if stack:
            ended = stack[-1].end.search(line, position)
            if ended:
                best = (ended.start(), -1, ended, None)
        for order, rule in enumerate(rules):
            found = re.compile(rule.get("match") or rule["begin"]).search(line, position)
            if found and (best is None or found.start() < best[0]):
                best = (found.start(), order, found, rule)
        if best is None:
            break
        _, _, match, rule = best
        ending = stack.pop() if rule is None else None  # the enclosing begin/end ends here
        outer = [name for frame in stack for name in _frame_names(frame)]
        for index in range(match.start(), match.end()):
            scopes[index] = list(outer)
        if ending is not None:
            frame = ending
            for index in range(match.start(), match.end()):
                scopes[index].append(frame.rule.get("name", ""))
            _name_captures(scopes, match, frame.rule.get("endCaptures", {}))
        elif "match" in rule:
            for index in range(match.start(), match.end()):
                if "name" in rule:
                    scopes[index].append(rule["name"])
            _name_captures(scopes, match, rule.get("captures", {}))
        else:
            for index in range(match.start(), match.end()):
                if "name" in rule:
                    scopes[index].append(rule["name"])
            _name_captures(scopes, match, rule.get("beginCaptures", {}))
            stack.append(_Frame(rule, re.compile(rule["end"])))
        if match.end() > position:
            position = match.end()
        elif rule is None or "match" in rule:  # an empty match: step past it
            position += 1
        for index in range(position, len(line)):
            scopes[index] = [name for frame in stack for name in _frame_names(frame)]
    return scopes


def _frame_names(frame: _Frame) -> list[str]:
    names = [frame.rule["name"]] if "name" in frame.rule else []
    return names + ([frame.rule["contentName"]] if "contentName" in frame.rule else [])


def scope_at(line: str, needle: str, into: int = 0) -> list[str]:
    return scopes_of(line)[line.index(needle) + into]


# ------------------------------------------------------------------ the grammar


_CONTEXTS = {
    "envelope": "envelope cost {",
    "rule": "rule costly-action {",
    "test": 'test "a restart" {',
    "invariant": 'invariant "never" {',
    "from": '  action from "fixtures/a.yaml"',
    "with": "  with cost.max_usd = 5",
}


def _sample(word: str) -> str:
    """A line that uses the word the way the language does."""
    if word in _CONTEXTS:
        return _CONTEXTS[word]
    if word in ("any", "all"):
        return f"{word}(x in items: x)"
    if word in ("sum", "count", "max"):
        return f"usage spent = {word}(action.cost.estimated_usd) over calendar_month"
    return f"  {word} "


def test_the_keyword_list_is_read_from_the_lark_grammar():
    words = grammar_keywords()
    # a sample of what the grammar holds, so a broken reading cannot pass empty
    assert {"envelope", "rule", "require_approval", "allow", "any", "count", "least"} <= words
    assert len(words) >= 40


@pytest.mark.parametrize("word", sorted(grammar_keywords()))
def test_every_keyword_of_the_grammar_is_highlighted(word):
    line = _sample(word)
    scopes = scope_at(line, word)
    assert any(s.startswith(KEYWORD_SCOPES) for s in scopes), (word, scopes)
    # the whole word, not a piece of it
    assert scope_at(line, word, len(word) - 1) == scopes


@pytest.mark.parametrize("operator", sorted(grammar_operators()))
def test_every_operator_of_the_grammar_is_highlighted(operator):
    line = f"x {operator} y"
    assert any(s.startswith("keyword.operator.") for s in scope_at(line, operator)), operator


@pytest.mark.parametrize(
    ("line", "literal", "scope"),
    [
        ("x > 42", "42", "constant.numeric.aigre"),
        ("x > 2.5E-2", "2.5E-2", "constant.numeric.aigre"),
        ("x > 15m", "15m", "constant.numeric.duration.aigre"),
        ("x > 250ms", "250ms", "constant.numeric.duration.aigre"),
        ("x > 1.5h", "1.5h", "constant.numeric.duration.aigre"),
        ('x == "prod"', '"prod"', "string.quoted.double.aigre"),
        ("x == true", "true", "constant.language.boolean.aigre"),
        ("deny when x  # why", "# why", "comment.line.number-sign.aigre"),
    ],
)
def test_every_kind_of_literal_is_highlighted(line, literal, scope):
    scopes = scopes_of(line)
    start = line.index(literal)
    for index in range(start, start + len(literal)):
        assert scope in scopes[index], (literal, index, scopes[index])


def test_a_rule_id_is_a_name_where_declared_and_where_a_test_names_it():
    assert "entity.name.function.rule.aigre" in scope_at("rule llm-outside-its-remit {", "outside")
    line = "  expect deny by at least llm-outside-its-remit, costly"
    assert "entity.name.function.rule.aigre" in scope_at(line, "llm-outside")
    assert "entity.name.function.rule.aigre" in scope_at(line, "costly")
    assert "keyword.other.aigre" in scope_at(line, "least")


def test_after_a_dot_every_word_is_a_field_name():
    for line, word in [("action.from", "from"), ("f.environments", "environments")]:
        scopes = scope_at(line, word)
        assert scopes == ["variable.other.property.aigre"], (line, scopes)


def test_interpolations_in_messages_are_expressions():
    line = (
        'because "{action.cost.estimated_usd * 2} USD, {{literal}} \\" and {weekday(context.now)}"'
    )
    assert "string.quoted.double.aigre" in scope_at(line, "USD")
    assert "meta.interpolation.aigre" in scope_at(line, "estimated_usd")
    assert "keyword.operator.arithmetic.aigre" in scope_at(line, "* 2")
    assert "meta.interpolation.aigre" not in scope_at(line, "literal")
    assert "support.function.builtin.aigre" in scope_at(line, "weekday")


def test_an_unclosed_string_stops_at_the_end_of_its_line():
    assert scopes_of('title: "never closed')[-1][0] == "string.quoted.double.aigre"
    assert "string.quoted.double.aigre" not in scopes_of("deny when x")[0]


def test_the_patterns_compile_alike_in_python():
    """Every pattern is valid as Python reads it (the dialect the tests run it in)."""
    text = GRAMMAR.read_text(encoding="utf-8")
    for regex in re.findall(r'"(?:match|begin|end)": ("(?:[^"\\]|\\.)*")', text):
        re.compile(json.loads(regex))


# ------------------------------------------------------------------ the extension manifest


def test_the_extension_manifest_is_complete():
    manifest = _load(VSCODE / "package.json")
    for field in ("name", "displayName", "description", "version", "publisher", "engines"):
        assert manifest.get(field), field
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", manifest["name"])  # as the marketplace wants
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert manifest["engines"]["vscode"].startswith("^")
    assert (VSCODE / manifest["main"]).is_file()
    assert "vscode-languageclient" in manifest["dependencies"]
    [language] = manifest["contributes"]["languages"]
    [grammar] = manifest["contributes"]["grammars"]
    assert language["extensions"] == [".aigre"]
    assert f"onLanguage:{language['id']}" in manifest["activationEvents"]
    assert grammar["language"] == language["id"]
    configuration = _load(VSCODE / language["configuration"])
    assert configuration["comments"]["lineComment"] == "#"
    assert _load(VSCODE / grammar["path"])["scopeName"] == grammar["scopeName"]


def test_the_extension_starts_the_language_server_command():
    settings = _load(VSCODE / "package.json")["contributes"]["configuration"]["properties"]
    assert settings["aigrePolicy.server.command"]["default"] == "aigre-policy"
    assert settings["aigrePolicy.server.args"]["default"] == ["lsp"]
    script = (VSCODE / "extension.js").read_text(encoding="utf-8")
    for key in ("server.command", "server.args", "docsUrl"):
        assert f'"{key}"' in script
    assert 'require("vscode-languageclient/node")' in script


def test_the_extension_script_parses():
    node = shutil.which("node")
    if node is None:
        if os.environ.get("AIGRE_REQUIRE_SERVICES") == "1":
            pytest.fail("node is needed to check extension.js")
        pytest.skip("node is not installed")
    subprocess.run([node, "--check", str(VSCODE / "extension.js")], check=True)


def test_every_line_of_the_repository_packs_highlights_cleanly():
    """No character of a real pack is scoped illegal, and every rule id is a name."""
    files = sorted((ROOT / "policy_packs").glob("*/policies/*.aigre"))
    assert files
    for file in files:
        for number, line in enumerate(file.read_text(encoding="utf-8").split("\n"), 1):
            scopes = scopes_of(line)
            assert not any("invalid" in s for found in scopes for s in found), (file, number)
            declared = re.match(r"rule ([a-z][a-z0-9_-]*)", line)
            if declared:
                at = line.index(declared.group(1))
                assert "entity.name.function.rule.aigre" in scopes[at], (file, number)
