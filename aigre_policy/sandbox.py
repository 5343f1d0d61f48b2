"""Loads generated evaluator source only after proving it uses nothing but the runtime.

The check is an allowlist over Python's own AST: the node kinds the code
generator emits, names it generates or the runtime exports, and a few method
names. Anything else, however it got there, stops the load.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from aigre_policy.runtime import EXPORTED

_ALLOWED_NODES = (
    ast.Module,
    ast.FunctionDef,
    ast.arguments,
    ast.arg,
    ast.Return,
    ast.Assign,
    ast.Expr,
    ast.If,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.Constant,
    ast.Subscript,
    ast.Compare,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Call,
    ast.Attribute,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.GeneratorExp,
    ast.comprehension,
    ast.IfExp,
    ast.NamedExpr,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
)
_ATTRIBUTES = {"append", "compare", "member", "get", "join", "sort"}
# x locals, v quantifier items, E envelope values, I index tables, and the functions
_GENERATED = re.compile(r"(?:[xvdEI][0-9]+|explain_[0-9]+|when_[0-9]+)")
_FIXED = {
    "evaluate",
    "action",
    "context",
    "usage",
    "ev",
    "fired",
    "held",
    "reads",
    "on",
    "rank",
}


class UnsafeCode(Exception):
    """Generated code stepped outside the allowlist: a compiler bug, never run."""


def verify(source: str) -> ast.Module:
    tree = ast.parse(source)
    allowed_names = _FIXED | set(EXPORTED)
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise UnsafeCode(f"{type(node).__name__} at line {getattr(node, 'lineno', '?')}")
        if isinstance(node, ast.Name) and not (
            node.id in allowed_names or _GENERATED.fullmatch(node.id)
        ):
            raise UnsafeCode(f"name {node.id!r} at line {node.lineno}")
        if isinstance(node, ast.FunctionDef) and not (
            node.name == "evaluate" or _GENERATED.fullmatch(node.name)
        ):
            raise UnsafeCode(f"function {node.name!r}")
        if isinstance(node, ast.FunctionDef) and (node.decorator_list or node.returns):
            raise UnsafeCode(f"decorated function {node.name!r}")
        if isinstance(node, ast.arg) and not (node.arg in _FIXED or _GENERATED.fullmatch(node.arg)):
            raise UnsafeCode(f"parameter {node.arg!r}")
        if isinstance(node, ast.Attribute) and node.attr not in _ATTRIBUTES:
            raise UnsafeCode(f"attribute {node.attr!r} at line {node.lineno}")
        if isinstance(node, ast.Constant) and not isinstance(
            node.value, str | int | float | bool | type(None)
        ):
            raise UnsafeCode(f"constant of type {type(node.value).__name__}")
    return tree


def load(source: str, filename: str, bindings: dict[str, Any]) -> dict[str, Any]:
    """Verify, compile and run the module body; returns its namespace."""
    tree = verify(source)
    code = compile(tree, filename, "exec")
    namespace: dict[str, Any] = {"__builtins__": {}, **EXPORTED, **bindings}
    exec(code, namespace)
    return namespace
