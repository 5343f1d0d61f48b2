"""No module of the package reads or sets another module's private names.

A name starting with one underscore belongs to the module that defines it. The walk
below flags every ``obj._name`` (read or written) in the package, and every
``getattr(obj, "_name")``, unless ``obj`` is ``self``/``cls`` or the module defines
``_name`` itself (as an attribute of ``self``, a class member, a slot or a method):
that is how ``rego/attach.py`` once set ``Pack``'s fields, and how the test tools read
``pack._compiled``. Type annotations are left out (they run no code).
"""

from __future__ import annotations

import ast
from pathlib import Path

import aigre_policy

PACKAGE = Path(aigre_policy.__file__).parent

# A library's internals read on purpose, each with why; the list only shrinks.
KNOWN = {
    # the parser builds its tree during Lark's LALR parse, through Lark internals; it falls
    # back to Lark's documented parse-then-transform when they are absent (AttributeError)
    ("aigre_policy/parser.py", "lark.parser.parser._parse_table"),
    ("aigre_policy/parser.py", "lark.parser._make_lexer_thread"),
    ("aigre_policy/parser.py", "lark._parse_tree_builder"),
    # the MCP SDK gives a request its session but names no connection: sessions of one
    # client connection are grouped by the SDK's private one, with the session as fallback
    ("aigre_policy/mcp/proxy.py", "getattr(ctx.session, '_connection', ctx.session)"),
}


# underscored by convention but documented as public: ast node classes' ``_fields`` and
# namedtuple's methods (they start with ``_`` so they cannot clash with field names)
DOCUMENTED_PUBLIC = {"_fields", "_asdict", "_replace", "_make", "_field_defaults"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in DOCUMENTED_PUBLIC


def _own_names(tree: ast.Module) -> set[str]:
    """The private attribute names this module defines."""
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                own.add(node.attr)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    own.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    own.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    for target in item.targets:
                        if isinstance(target, ast.Name):
                            own.add(target.id)
                    if any(isinstance(t, ast.Name) and t.id == "__slots__" for t in item.targets):
                        own |= {
                            c.value
                            for c in ast.walk(item.value)
                            if isinstance(c, ast.Constant) and isinstance(c.value, str)
                        }
    return {name for name in own if _private(name)}


def _annotations(tree: ast.Module) -> set[int]:
    """The ids of every node inside a type annotation."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            roots.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            roots.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
    return {id(inner) for root in roots for inner in ast.walk(root)}


def foreign_private_reads(path: Path, file: str | None = None) -> list[str]:
    """``file:line: expression`` for each private name of another module ``path`` uses."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own, skip = _own_names(tree), _annotations(tree)
    file = file or path.relative_to(PACKAGE.parent).as_posix()
    found = []
    for node in ast.walk(tree):
        name, base = None, None
        if isinstance(node, ast.Attribute) and _private(node.attr) and id(node) not in skip:
            name, base = node.attr, node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            name, base = node.args[1].value, node.args[0]
        if name is None or base is None:
            continue
        if isinstance(base, ast.Name) and base.id in ("self", "cls"):
            continue
        if name in own:
            continue
        text = ast.unparse(node)
        if (file, text) in KNOWN:
            continue
        found.append(f"{file}:{node.lineno}: {text}")
    return found


def test_no_module_uses_another_modules_private_names():
    found = [line for path in sorted(PACKAGE.rglob("*.py")) for line in foreign_private_reads(path)]
    assert found == []


def test_the_walk_sees_a_private_read_and_a_private_write(tmp_path):
    """The walk flags what it should, and lets a module's own privates and ``self`` pass."""
    source = tmp_path / "probe.py"
    source.write_text(
        "class Mine:\n"
        "    def __init__(self):\n"
        "        self._own = 1\n"
        "def use(pack, other: 'argparse._SubParsersAction', mine):\n"
        "    pack._compiled = None\n"
        "    x = getattr(pack, '_engine', None)\n"
        "    return mine._own, pack._evaluate, x\n",
        encoding="utf-8",
    )
    found = foreign_private_reads(source, "probe.py")
    texts = sorted(line.split(": ", 1)[1] for line in found)
    assert texts == ["getattr(pack, '_engine', None)", "pack._compiled", "pack._evaluate"]


def test_known_library_internals_are_still_read():
    """An entry of KNOWN that no longer matches is dropped from the list."""
    seen = set()
    for file, text in KNOWN:
        tree = ast.parse((PACKAGE.parent / file).read_text(encoding="utf-8"))
        if any(
            isinstance(n, ast.Attribute | ast.Call) and ast.unparse(n) == text
            for n in ast.walk(tree)
        ):
            seen.add((file, text))
    assert seen == KNOWN
