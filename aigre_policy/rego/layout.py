"""Emitted Rego laid out in lines every engine reads: none longer than ``MAX_COLUMNS``.

regorus refuses a module with a line over 1024 columns. A long line of code is
broken after the commas of its arrays, objects and calls (a newline inside brackets
is whitespace to every engine); a string literal longer than a line becomes a
``concat`` of pieces; a YAML string of a ``# METADATA`` block is folded with YAML's
escaped line break, which reads back as the same text; any other comment is cut.
"""

from __future__ import annotations

import json
import re

MAX_COLUMNS = 1024  # regorus's limit
WIDTH = 200  # where a long line is broken: well inside the limit
_PIECE = 120  # characters of a long string literal per piece
_YAML_SCALAR = re.compile(r'^(#(\s*)[A-Za-z_]+: )(".*")$')
_YAML_LIST = re.compile(r"^(#(\s*)[A-Za-z_]+: )(\[.*\])$")


def fit(source: str) -> str:
    """``source`` with every line over ``WIDTH`` columns broken, when it is over the limit."""
    if all(len(line) <= MAX_COLUMNS for line in source.splitlines()):
        return source
    out: list[str] = []
    for line in source.split("\n"):
        if len(line) <= MAX_COLUMNS:
            out.append(line)
        elif line.lstrip().startswith("#"):
            out += _comment(line)
        else:
            out += _code(line)
    return "\n".join(out)


def _comment(line: str) -> list[str]:
    listed = _YAML_LIST.match(line)
    if listed:  # a YAML flow list may go on over lines indented past its key
        pad = "#" + listed.group(2) + "    "
        items = re.findall(r'"(?:[^"\\]|\\.)*"', listed.group(3))
        lines, text = [], listed.group(1) + "["
        for k, item in enumerate(items):
            piece = item + ("," if k < len(items) - 1 else "]")
            if len(text) + len(piece) >= WIDTH and not text.endswith("["):
                lines.append(text)
                text = pad
            text += piece if text in (pad, listed.group(1) + "[") else " " + piece
        return [*lines, text]
    found = _YAML_SCALAR.match(line)
    if not found:
        return [line[: MAX_COLUMNS - 3] + "..."]
    head, indent, scalar = found.group(1), found.group(2), found.group(3)
    pad = "#" + indent + "    "
    lines, text = [], head
    # break only between escapes: an escaped line break joins the pieces with no space
    for token in re.findall(r"\\U[0-9a-fA-F]{8}|\\u[0-9a-fA-F]{4}|\\.|[^\\]", scalar):
        if len(text) >= WIDTH:
            lines.append(text + "\\")
            text = pad
            if token == " ":  # YAML drops leading spaces of a continuation line
                token = "\\x20"
        text += token
    return [*lines, text]


def _code(line: str) -> list[str]:
    """A line of code broken after commas inside brackets; long strings in pieces."""
    indent = line[: len(line) - len(line.lstrip("\t"))] + "\t"
    pieces, current, depth, i = [], "", 0, 0
    while i < len(line):
        ch = line[i]
        if ch in '"`':
            end = _string_end(line, i)
            token = line[i:end]
            if ch == '"' and len(token) > WIDTH and not line[end:].lstrip().startswith(":"):
                token = _split_string(token, indent)
            current += token
            i = end
            continue
        if ch == "#":  # a trailing comment stays on the last piece
            current += line[i:]
            break
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        current += ch
        i += 1
        if ch == "," and depth > 0 and len(current.rsplit("\n", 1)[-1]) >= WIDTH:
            pieces.append(current)
            current = indent
            while i < len(line) and line[i] == " ":
                i += 1
    pieces.append(current)
    return "\n".join(pieces).split("\n")


def _string_end(line: str, start: int) -> int:
    """The index just past the string literal that opens at ``start``."""
    quote, i = line[start], start + 1
    while i < len(line):
        if quote == '"' and line[i] == "\\":
            i += 2
            continue
        if line[i] == quote:
            return i + 1
        i += 1
    return len(line)


def _split_string(token: str, indent: str) -> str:
    """A JSON string literal as ``concat`` of pieces, one a line."""
    text = json.loads(token)
    parts = [text[k : k + _PIECE] for k in range(0, len(text), _PIECE)]
    inner = f",\n{indent}\t".join(json.dumps(p, ensure_ascii=False) for p in parts)
    return f'concat("", [\n{indent}\t{inner},\n{indent}])'
