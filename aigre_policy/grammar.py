"""Finds the language's grammar and builds the Lark parser once per process.

The grammar lives at ``grammar/aigre.lark`` in the source tree; the wheel ships
it as ``aigre_policy/grammar/aigre.lark``. Both are looked for, package first.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from lark import Lark

GRAMMAR_FILE = "aigre.lark"


def grammar_path() -> Path:
    packaged = resources.files("aigre_policy").joinpath("grammar", GRAMMAR_FILE)
    if packaged.is_file():
        return Path(str(packaged))
    in_tree = Path(__file__).resolve().parent.parent / "grammar" / GRAMMAR_FILE
    if in_tree.is_file():
        return in_tree
    raise FileNotFoundError(
        f"the grammar {GRAMMAR_FILE} is missing from the installed package; reinstall aigre-policy"
    )


@cache
def parser() -> Lark:
    """The LALR parser, with positions kept for spans; start symbols ``start`` and ``expr``."""
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        start=["start", "expr"],
    )
