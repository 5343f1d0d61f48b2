"""Loads generated evaluator source only after proving it uses nothing but the runtime.

The check is an allowlist over Python's own AST, cut to what the code generator
(``codegen``) emits and nothing more: its node kinds, the names it generates or the
runtime exports, the functions it defines and their parameters, the names it
assigns, and the few methods it calls, each on the receiver it calls it on.
Anything else, however it got there, stops the load.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from aigre_policy.functions import NATIVE
from aigre_policy.runtime import EXPORTED

_ALLOWED_NODES = (
    ast.Module,
    ast.FunctionDef,  # evaluate, explain_N, when_N
    ast.arguments,
    ast.arg,
    ast.Return,
    ast.Assign,
    ast.Expr,  # docstrings, fired.sort(), _unheld(N)
    ast.If,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.Constant,
    ast.Subscript,  # action['kind']: a field read
    ast.Compare,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.BinOp,  # + - * only: / and % are runtime calls
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Call,
    ast.Attribute,
    ast.List,
    ast.Tuple,
    ast.Dict,  # I0 = {value: when_N, ...}, an index table
    ast.GeneratorExp,  # any/all over an input list
    ast.comprehension,
    ast.IfExp,  # a schema default or a constant fallback
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,  # `is None`: absent
    ast.IsNot,
)
# method -> the names it is called on (None: any value, as `get` reads optional fields)
_METHODS: dict[str, frozenset[str] | None] = {
    "append": frozenset({"fired"}),
    "sort": frozenset({"fired"}),
    "compare": frozenset({"ev"}),
    "member": frozenset({"ev"}),
    "get": None,
}
# x locals, v quantifier items, E envelope values, I index tables, and the functions
_GENERATED = re.compile(r"(?:[xvEI][0-9]+|explain_[0-9]+|when_[0-9]+)")
_FUNCTION = re.compile(r"(?:evaluate|explain_[0-9]+|when_[0-9]+)")
_PARAMETER = re.compile(r"(?:action|context|usage|fired|rank|x[0-9]+)")  # evaluate, when_N
_ASSIGNED = re.compile(r"[xvI][0-9]+")  # generated names code may bind (E are bindings)
_LOCALS = {"fired", "rank", "ev", "held", "on"}  # the fixed names the functions assign
_FIXED = {"action", "context", "usage"} | _LOCALS


class UnsafeCode(Exception):
    """Generated code stepped outside the allowlist: a compiler bug, never run."""


_ALLOWED_TYPES = frozenset(_ALLOWED_NODES)  # exact types: ast classes are not subclassed here


def verify(source: str) -> ast.Module:
    """The parsed ``source``; ``UnsafeCode`` at the first node outside the allowlist.

    Every node is visited once, from a stack (``ast.walk`` costs about as much again as the
    checks: a revived cache entry runs this on every start)."""
    tree = ast.parse(source)
    allowed_names = _FIXED | set(EXPORTED) | set(NATIVE)
    stack: list[Any] = [tree]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        node = pop()
        kind = type(node)
        if kind not in _ALLOWED_TYPES:
            if not isinstance(node, ast.AST):
                continue  # a list's non-node item: a Dict's None key, as ast.walk skips it
            raise UnsafeCode(f"{kind.__name__} at line {getattr(node, 'lineno', '?')}")
        if kind is ast.Name:
            _check_name(node, allowed_names)
        elif kind is ast.Constant:
            if type(node.value) not in _CONSTANTS:
                raise UnsafeCode(f"constant of type {type(node.value).__name__}")
        elif kind is ast.Attribute:
            _check_method(node)
        elif kind is ast.arg:
            if not _PARAMETER.fullmatch(node.arg):
                raise UnsafeCode(f"parameter {node.arg!r}")
        elif kind is ast.FunctionDef:
            _check_function(node)
        for name in kind._fields:
            child = getattr(node, name, None)
            if type(child) is list:
                extend(child)
            elif isinstance(child, ast.AST):
                push(child)
    return tree


# the constants code may hold, by exact type (a subclass of str or int is refused)
_CONSTANTS = frozenset({str, int, float, bool, type(None)})


def _check_name(node: ast.Name, allowed: set[str]) -> None:
    if not (_GENERATED.fullmatch(node.id) or node.id in allowed):
        raise UnsafeCode(f"name {node.id!r} at line {node.lineno}")
    if isinstance(node.ctx, ast.Store) and not (_ASSIGNED.fullmatch(node.id) or node.id in _LOCALS):
        raise UnsafeCode(f"assignment to {node.id!r} at line {node.lineno}")


def _check_function(node: ast.FunctionDef) -> None:
    if not _FUNCTION.fullmatch(node.name):
        raise UnsafeCode(f"function {node.name!r}")
    if node.decorator_list or node.returns or getattr(node, "type_params", None):
        raise UnsafeCode(f"decorated function {node.name!r}")
    arguments = node.args
    if (
        arguments.vararg
        or arguments.kwarg
        or arguments.kwonlyargs
        or arguments.posonlyargs
        or arguments.defaults
        or arguments.kw_defaults
    ):
        raise UnsafeCode(f"parameters of {node.name!r} beyond plain names")


def _check_method(node: ast.Attribute) -> None:
    if node.attr not in _METHODS or not isinstance(node.ctx, ast.Load):
        raise UnsafeCode(f"attribute {node.attr!r} at line {node.lineno}")
    receivers = _METHODS[node.attr]
    if receivers is not None and not (
        isinstance(node.value, ast.Name) and node.value.id in receivers
    ):
        raise UnsafeCode(f"attribute {node.attr!r} on this value at line {node.lineno}")


def load(
    source: str, filename: str, bindings: dict[str, Any], *, lazy: bool = False
) -> dict[str, Any]:
    """Verify, compile and run the module body; returns its namespace.

    ``lazy``: each ``explain_N`` function is verified and compiled when first called,
    not now (a revived cache entry: more than half the code is ``explain_N``, and a
    decision calls few of them). Nothing runs unverified either way: until then the
    name holds a :class:`_Unverified` that checks its own text first.
    """
    namespace: dict[str, Any] = {"__builtins__": {}, **EXPORTED, **NATIVE, **bindings}
    if lazy:
        source, later = _split(source)
        for name, text in later.items():
            namespace[name] = _Unverified(name, text, filename, namespace)
    # the verified tree itself is compiled: no second parse, and nothing between the
    # check and the code that runs
    exec(compile(verify(source), filename, "exec"), namespace)
    return namespace


# a top-level explain_N definition, up to the next top-level line that is not a comment
_EXPLAIN = re.compile(r"^def (explain_[0-9]+)\(.*?(?=^[^\s#]|\Z)", re.MULTILINE | re.DOTALL)


def _split(source: str) -> tuple[str, dict[str, str]]:
    """``source`` without its ``explain_N`` definitions, and each of them by name, padded
    with blank lines to keep its line numbers. A split the generator did not mean (it
    never puts a line at column 0 inside a definition) only makes a chunk fail to verify."""
    later: dict[str, str] = {}
    kept: list[str] = []
    end = line = 0
    for match in _EXPLAIN.finditer(source):
        kept.append(source[end : match.start()])
        line += source.count("\n", end, match.start())
        text = match.group(0)
        later[match.group(1)] = "\n" * line + text
        lines = text.count("\n")
        kept.append("\n" * lines)
        line += lines
        end = match.end()
    kept.append(source[end:])
    return "".join(kept), later


class _Unverified:
    """An ``explain_N`` not yet verified: the first call checks its text against the
    allowlist (one definition of that name and nothing else), compiles it into the
    module's namespace, where it replaces this, and calls it."""

    __slots__ = ("filename", "function", "name", "namespace", "text")

    def __init__(self, name: str, text: str, filename: str, namespace: dict[str, Any]):
        self.name, self.text, self.filename, self.namespace = name, text, filename, namespace
        self.function: Any = None

    def __call__(self, *args: Any) -> Any:
        function = self.function
        if function is None:
            function = self.function = self._load()
        return function(*args)

    def _load(self) -> Any:
        tree = verify(self.text)
        body = tree.body
        if not (len(body) == 1 and type(body[0]) is ast.FunctionDef and body[0].name == self.name):
            raise UnsafeCode(f"{self.name} is not one definition of {self.name}")
        exec(compile(tree, self.filename, "exec"), self.namespace)
        return self.namespace[self.name]
