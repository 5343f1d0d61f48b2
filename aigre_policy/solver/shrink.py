"""A witness made small: optional fields and list items dropped while it still shows what it must.

The solver's model sets every field a formula read; many do not matter to the
witness. Each optional field (deepest first) and each list item is dropped in
turn, and the drop is kept when the input stays valid and ``still`` (a native
evaluation) says the witness still shows the same thing. Every step is checked
natively, so the smaller witness is as sound as the first.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

ROUNDS = 3


def shrink(
    document: dict[str, Any],
    still: Callable[[dict[str, Any]], bool],
    valid: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    """``document`` with every optional field and list item ``still`` does without,
    and its odd text (control characters, symbols the solver picked) renamed to plain words."""
    current = _readable(copy.deepcopy(document), still, valid)
    for _ in range(ROUNDS):
        changed = False
        for path in list(_places(current)):
            smaller = _without(current, path)
            if smaller is not None and valid(smaller) and still(smaller):
                current, changed = smaller, True
        if not changed:
            break
    return current


def _places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and list index below the roots, deepest first, last items first."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, sub in value.items():
            found += _places(sub, (*path, key))
            if path:  # never a root (action, context, usage)
                found.append((*path, key))
    elif isinstance(value, list):
        for index in range(len(value) - 1, -1, -1):
            found += _places(value[index], (*path, index))
            found.append((*path, index))
    return found


def _without(document: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any] | None:
    smaller = copy.deepcopy(document)
    holder: Any = smaller
    for step in path[:-1]:
        try:
            holder = holder[step]
        except (KeyError, IndexError, TypeError):
            return None
    try:
        del holder[path[-1]]
    except (KeyError, IndexError, TypeError):
        return None
    return smaller


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@-]*")


def _readable(
    document: dict[str, Any],
    still: Callable[[dict[str, Any]], bool],
    valid: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    """Each odd string renamed to ``text1``, ``text2``... alike everywhere, so equal fields
    stay equal; kept only when the input is still valid and still shows the same thing."""
    strings: list[str] = []
    _strings(document, strings)
    taken = set(strings)
    names: dict[str, str] = {}
    for text in strings:
        if text in names or _PLAIN.fullmatch(text) or _looks_like_time(text):
            continue
        n = len(names) + 1
        while f"text{n}" in taken:
            n += 1
        names[text] = f"text{n}"
        taken.add(names[text])
    if not names:
        return document
    renamed = _renamed(document, names)
    return renamed if valid(renamed) and still(renamed) else document


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for sub in value.values():
            _strings(sub, out)
    elif isinstance(value, list):
        for sub in value:
            _strings(sub, out)


def _renamed(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, dict):
        return {key: _renamed(sub, names) for key, sub in value.items()}
    if isinstance(value, list):
        return [_renamed(sub, names) for sub in value]
    return value


def _looks_like_time(text: str) -> bool:
    return len(text) == 20 and text[4] == "-" and text.endswith("Z")
