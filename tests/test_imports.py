"""The package's import graph: no cycles at all, and every function-local import says why.

The graph counts module-level and function-local imports alike: an import moved into a
function to break a cycle still makes one. What is left local is there to load an
optional or heavy library (regopy, regorus) only when it is needed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import aigre_policy

PACKAGE = Path(aigre_policy.__file__).parent
# the function-local imports of the package's own modules: deferred loads that keep the
# CLI's start small (a command loads what it needs when it runs), regopy (a native library)
# only for a pack that runs Rego, and the optional extras only when used. The number only
# shrinks, or a change that adds one says why: 67 → 78 when a cached pack stopped loading
# the compiler (cache, cli.common, cli.check load it on a miss) and the exact lint came
# (lint.context and lint.exact run the pack, its tests and the solver only when asked);
# 79: exemptions checks its file with the type checker's suggestions only when compiling;
# 80: `completion` builds the whole parser (every command module) only when it runs.
LOCAL_PACKAGE_IMPORTS = 80


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


def test_no_import_makes_a_cycle_not_even_a_function_local_one():
    top, local = _graph()
    full = {module: set(targets) for module, targets in top.items()}
    for module, target in local:
        full[module].add(target)
    cycles = sorted(
        (module, target)
        for module, targets in full.items()
        for target in targets
        if _reaches(full, target, module)
    )
    assert cycles == []


def _local_imports() -> list[tuple[str, int, ast.Import | ast.ImportFrom, list[str]]]:
    """Every import inside a function: (module, line, statement, the module's lines)."""
    found = []
    for module, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for function in ast.walk(ast.parse(text)):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(function):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        found.append((module, node.lineno, node, lines))
    return found


def _module_says_why(module: str) -> bool:
    """The module's docstring gives one reason for all its deferred imports."""
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text(encoding="utf-8"))) or ""
    return "Deferred imports:" in doc


def test_every_function_local_import_says_why():
    """A ``#`` comment on the import or on the line above it gives the reason, or the
    module's docstring does once for all of them ("Deferred imports: ...")."""
    silent = []
    for module, line, node, lines in _local_imports():
        end = node.end_lineno or line
        said = any("#" in lines[i - 1] for i in range(line, end + 1))
        said = said or lines[line - 2].strip().startswith("#") or _module_says_why(module)
        if not said:
            silent.append(f"{module}:{line}: {lines[line - 1].strip()}")
    assert silent == []


def test_the_function_local_imports_of_the_package_are_counted():
    _, local = _graph()
    within = set(local)
    assert len(within) == LOCAL_PACKAGE_IMPORTS, sorted(within)


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
