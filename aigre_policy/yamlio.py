"""YAML and JSON reading with positions, and without YAML's implicit timestamps.

Timestamps stay strings, as JSON would carry them, so a fixture read from YAML
evaluates exactly like the same document sent as JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aigre_policy.diagnostics import Diagnostic, Span, error


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass
class Document:
    data: Any
    text: str
    file: str
    _tree: Any = field(default=False, repr=False, compare=False)

    def _composed(self) -> Any:
        """The node tree, composed once: a file with many cases asks for many spans."""
        if self._tree is False:
            try:
                self._tree = yaml.compose(self.text, Loader=_Loader)
            except yaml.YAMLError:
                self._tree = None
        return self._tree

    def span_of(self, path: tuple[Any, ...]) -> Span:
        """Where the value at ``path`` (keys and indices) sits in the file."""
        node = self._composed()
        best = node
        for key in path:
            if isinstance(node, yaml.MappingNode):
                match = next((v for k, v in node.value if k.value == str(key)), None)
                if match is None:
                    key_node = next((k for k, _ in node.value if k.value == str(key)), None)
                    node = key_node
                else:
                    node = match
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
                node = node.value[key] if key < len(node.value) else None
            else:
                node = None
            if node is None:
                break
            best = node
        if best is None:
            return Span(self.file, 1, 1, 1, 2)
        start, end = best.start_mark, best.end_mark
        return Span(self.file, start.line + 1, start.column + 1, end.line + 1, end.column + 1)


def lone_surrogate(value: Any) -> tuple[tuple[Any, ...], str] | None:
    """The path and text of the first string (key or value) in ``value`` that is not Unicode
    text: one holding a lone surrogate, which a ``\\ud800`` escape in YAML or JSON can make
    and no UTF-8 encoder accepts. Walks without recursing: documents may nest deeply; and
    each container once: YAML aliases share one at many places, which would never end."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    seen: set[int] = set()
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict | list | tuple):
            if id(node) in seen:
                continue
            seen.add(id(node))
        if isinstance(node, str):
            if not node.isascii():
                try:
                    node.encode("utf-8")
                except UnicodeEncodeError:
                    return path, node
        elif isinstance(node, dict):
            for key, item in node.items():
                stack.append(((*path, key), key))
                stack.append(((*path, key), item))
        elif isinstance(node, list | tuple):
            stack.extend(((*path, index), item) for index, item in enumerate(node))
    return None


def _checked(document: Document) -> tuple[Document | None, list[Diagnostic]]:
    """``document``, or E501 where it holds a string that is not Unicode text."""
    found = lone_surrogate(document.data)
    if found is None:
        return document, []
    path, text = found
    return None, [
        error(
            "E501",
            f"a string holds a lone surrogate ({ascii(text)[1:-1][:40]}): not Unicode text",
            document.span_of(path),
            "write the character itself, or a surrogate pair for one outside the BMP",
        )
    ]


def parse_document(text: str, file: str) -> tuple[Document | None, list[Diagnostic]]:
    try:
        data = yaml.load(text, Loader=_Loader)
    except RecursionError:
        return None, [_too_deep(file, "YAML")]
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        return None, [error("E501", f"not valid YAML: {exc}", Span(file, 1, 1, 1, 2))]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, [
            error(
                "E501", f"not valid YAML: {exc.problem}", Span(file, line, column, line, column + 1)
            )
        ]
    except yaml.YAMLError as exc:
        return None, [error("E501", f"not valid YAML: {exc}", Span(file, 1, 1, 1, 2))]
    return _checked(Document(data, text, file))


def _too_deep(file: str, kind: str) -> Diagnostic:
    return error(
        "E501",
        f"not valid {kind}: the document nests too deeply to read",
        Span(file, 1, 1, 1, 2),
        "a few dozen levels is plenty for any action, context or pack file",
    )


def read_document(
    path: Path, display: str | None = None
) -> tuple[Document | None, list[Diagnostic]]:
    """Read a YAML or JSON file (JSON is YAML); unreadable files become diagnostics."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [error("E500", f"file not found: {name}")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [error("E500", f"cannot read {name}: {exc}")]
    if path.suffix == ".json":
        try:
            return _checked(Document(json.loads(text), text, name))
        except RecursionError:
            return None, [_too_deep(name, "JSON")]
        except json.JSONDecodeError as exc:
            return None, [
                error(
                    "E501",
                    f"not valid JSON: {exc.msg}",
                    Span(name, exc.lineno, exc.colno, exc.lineno, exc.colno + 1),
                )
            ]
        except ValueError as exc:  # e.g. an integer past Python's digit limit
            return None, [error("E501", f"not valid JSON: {exc}", Span(name, 1, 1, 1, 2))]
    return parse_document(text, name)
