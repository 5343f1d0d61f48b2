"""How a pack is named in Rego: its package and the segments of its paths."""

from __future__ import annotations

import re

REGO_KEYWORDS = frozenset(
    {
        "as", "contains", "data", "default", "else", "every", "false", "if", "import",
        "in", "input", "not", "null", "package", "some", "true", "with",
    }
)  # fmt: skip


def segment(name: str) -> str:
    """A name as one Rego package segment: ``[a-z][a-z0-9_]*``, never a keyword."""
    text = re.sub(r"[^a-z0-9_]", "_", name.lower())
    if not text or not text[0].isalpha():
        text = "p_" + text
    if text in REGO_KEYWORDS:
        text += "_"
    return text


def package_of(pack_name: str) -> str:
    return f"aigre.{segment(pack_name)}"
