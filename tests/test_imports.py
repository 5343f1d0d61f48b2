"""The package's import graph: no cycles, and no function-local import hiding one."""

from __future__ import annotations

import ast
from pathlib import Path

import aigre_policy

PACKAGE = Path(aigre_policy.__file__).parent
# function-local imports that would still close a cycle if moved to the top of their
# module; each names why it is local. The list only shrinks.
KNOWN_LOCAL_CYCLES = {
    ("aigre_policy.rego.validity", "aigre_policy.rego.schema"),  # schema emits validity rules
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> set[str]:
    """The package's modules an import statement loads (a name imported from a package
    that is itself a module counts as that module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if MODULES[module].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
            for alias in node.names
        ]
    found = set()
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    """Module-level imports by module, and every (module, target) of a function-local one."""
    top: dict[str, set[str]] = {}
    local: list[tuple[str, str]] = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top[module] = set()
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                top[module] |= _targets(node, module)
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(function):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        local += [(module, target) for target in _targets(node, module)]
    return top, local


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen: set[str] = set()
    stack = [start]
    while stack:
        name = stack.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            stack.extend(graph.get(name, ()))
    return False


def test_module_level_imports_have_no_cycle():
    top, _ = _graph()
    cycles = sorted(
        (module, target)
        for module, targets in top.items()
        for target in targets
        if _reaches(top, target, module)
    )
    assert cycles == []


def test_no_function_local_import_hides_a_cycle_but_the_known_ones():
    top, local = _graph()
    hiding = {(module, target) for module, target in local if _reaches(top, target, module)}
    assert hiding <= KNOWN_LOCAL_CYCLES


def test_no_module_imports_another_modules_private_name():
    private = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aigre_policy"):
                private += [
                    f"{module}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert private == []
