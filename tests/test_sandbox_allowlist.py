"""The sandbox allows exactly what code generation emits.

Every pack in the repository and a pack using every construct (every IR node, every
function, index tables, defaults) are emitted in each form the code generator has
(indexed or not, deferred evidence or not) and must load; what they use, together,
must be the whole allowlist: a node kind, a method, a fixed name or a runtime export
no pack emits is one more door than code generation needs. Then source a little
outside the allowlist (the shape of generated code, one name or node off) is refused.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import write_pack
from test_interpreter import POLICY as EVERY_CONSTRUCT

from aigre_policy import sandbox
from aigre_policy.codegen import emit_python
from aigre_policy.compiler import compile_pack
from aigre_policy.functions import NATIVE
from aigre_policy.runtime import EXPORTED
from aigre_policy.sandbox import UnsafeCode, verify

ROOT = Path(__file__).resolve().parent.parent
REPO_PACKS = sorted(p.parent for p in (ROOT / "policy_packs").glob("*/pack.yaml"))

# What the every-construct pack leaves out: an index table (more than four values of one
# field among three or more rules: a dict of when_N), and a `??` fallback that is computed.
TABLES_AND_DEFAULTS = "\n".join(
    [
        *(
            f'rule svc-{i} {{ deny when action.target == "svc-{i}" and '
            f"action.cost.estimated_usd > {i} }}"
            for i in range(6)
        ),
        "rule computed-fallback {",
        '  warn when (action.justification.ref ?? lower(action.kind)) == "x"',
        "}",
    ]
)


# What no shipped schema has: a list of objects whose field is an optional object, read
# inside a quantifier (the walks ``_get`` and, with a schema default, ``_getd``).
NESTED_IN_ITEMS = (
    "rule sized { warn when any(i in action.items: (i.detail.size ?? 0) > 1) }\n"
    "rule levelled { warn when any(i in action.items: (i.detail.level ?? 0) > 1) }\n"
)
NESTED_SCHEMA = {
    "type": "object",
    "required": ["action", "context"],
    "properties": {
        "action": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "detail": {
                                "type": "object",
                                "properties": {
                                    "size": {"type": "integer"},
                                    "level": {"type": "integer", "default": 1},
                                },
                            }
                        },
                    },
                }
            },
        },
        "context": {"type": "object"},
    },
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    made = tmp_path_factory.mktemp("constructs")
    every = write_pack(made / "every", EVERY_CONSTRUCT, manifest={"default": "deny"})
    tables = write_pack(made / "tables", TABLES_AND_DEFAULTS)
    nested = write_pack(
        made / "nested",
        NESTED_IN_ITEMS,
        manifest={"input_schema": "schema.json"},
        files={"schema.json": NESTED_SCHEMA},
    )
    emitted = []
    for root in [*REPO_PACKS, every, tables, nested]:
        report = compile_pack(root)  # loads the default form through the sandbox
        assert report.ok and report.compiled is not None, (root, report.diagnostics[:1])
        for indexed in (True, False):
            for defer in (True, False):
                program = report.compiled.program
                emitted.append(emit_python(program, "t", indexed, defer).source)
    return emitted


def test_the_repository_has_packs() -> None:
    assert len(REPO_PACKS) >= 2


def test_every_pack_loads_in_every_form(sources: list[str]) -> None:
    for source in sources:
        namespace = sandbox.load(source, "<aigre-policy test>", {f"E{i}": 0 for i in range(99)})
        assert callable(namespace["evaluate"])


def test_the_allowlist_is_what_code_generation_emits(sources: list[str]) -> None:
    nodes: set[type] = set()
    methods: set[str] = set()
    names: set[str] = set()
    shapes: set[str] = set()  # generated names with their numbers taken out
    functions: set[str] = set()
    parameters: set[str] = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            nodes.add(type(node))
            if isinstance(node, ast.Attribute):
                methods.add(node.attr)
            elif isinstance(node, ast.Name):
                generated = re.fullmatch(r"([a-zA-Z_]+?)_?[0-9]+", node.id)
                (shapes if generated else names).add(node.id if not generated else generated[1])
            elif isinstance(node, ast.FunctionDef):
                functions.add(re.sub(r"[0-9]+$", "", node.name))
            elif isinstance(node, ast.arg):
                parameters.add(re.sub(r"[0-9]+$", "", node.arg))
    assert nodes == set(sandbox._ALLOWED_NODES)
    assert methods == set(sandbox._METHODS)
    assert names == sandbox._FIXED | set(EXPORTED) | set(NATIVE)
    assert shapes == {"x", "v", "E", "I", "explain", "when"}
    assert functions == {"evaluate", "explain_", "when_"}
    assert parameters == {"action", "context", "usage", "fired", "rank", "x"}


EVALUATE = "def evaluate(action, context, usage):\n    fired = []\n    rank = -1\n{}\n"

OUTSIDE = [
    pytest.param(EVALUATE.format("    x0 = _fmt(action)"), "_fmt", id="runtime-name-not-emitted"),
    pytest.param(EVALUATE.format("    reads = 1"), "reads", id="fixed-name-not-emitted"),
    pytest.param(EVALUATE.format("    d1 = 1"), "d1", id="generated-prefix-not-emitted"),
    pytest.param(EVALUATE.format("    x0 = (x1 := 1)"), "NamedExpr", id="walrus"),
    pytest.param(EVALUATE.format("    x0 = ', '.join(action)"), "join", id="method-not-emitted"),
    pytest.param(EVALUATE.format("    x0 = action.append"), "append", id="method-off-receiver"),
    pytest.param(EVALUATE.format("    ev.member = 1"), "member", id="attribute-assigned"),
    pytest.param(EVALUATE.format("    _t = _fin"), "_t", id="runtime-name-rebound"),
    pytest.param(EVALUATE.format("    E0 = 1"), "E0", id="envelope-rebound"),
    pytest.param(EVALUATE.format("    action = 1"), "action", id="input-rebound"),
    pytest.param("def x1(action, context, usage):\n    return 1\n", "x1", id="function-name"),
    pytest.param("def evaluate(ev):\n    return 1\n", "ev", id="parameter-name"),
    pytest.param("def evaluate(x0=_t):\n    return x0\n", "beyond", id="default-value"),
    pytest.param("def evaluate(*x0):\n    return x0\n", "beyond", id="star-parameter"),
]


@pytest.mark.parametrize(("source", "named"), OUTSIDE)
def test_a_name_or_node_outside_the_allowlist_is_refused(source: str, named: str) -> None:
    with pytest.raises(UnsafeCode) as caught:
        verify(source)
    assert named in str(caught.value)


def test_a_lazy_load_compiles_exactly_the_functions_an_eager_load_does(sources: list[str]) -> None:
    """A revived cache entry defers each ``explain_N`` to its first call: cut out of the
    source and compiled on its own, it is the same code, at the same line numbers."""
    bindings = {f"E{i}": 0 for i in range(99)}
    for source in sources:
        eager = sandbox.load(source, "<aigre-policy test>", bindings)
        lazy = sandbox.load(source, "<aigre-policy test>", bindings, lazy=True)
        functions = [name for name, value in eager.items() if type(value).__name__ == "function"]
        functions = [name for name in functions if name not in EXPORTED and name not in NATIVE]
        assert "evaluate" in functions
        deferred = [name for name in functions if name.startswith("explain_")]
        assert all(type(lazy[name]) is sandbox._Unverified for name in deferred)
        for name in functions:
            if name in deferred:
                assert lazy[name]._load() is lazy[name]  # it took its own place
            assert lazy[name].__code__ == eager[name].__code__, name


def test_a_deferred_definition_is_one_definition_of_its_name() -> None:
    """What a stand-in compiles defines its own name and nothing else."""
    for text in (
        "def explain_0():\n    return 1\nx0 = 1\n",
        "def explain_1():\n    return 1\n",
        "x0 = 1\n",
    ):
        stand_in = sandbox._Unverified("explain_0", text, "<aigre-policy test>", {})
        with pytest.raises(UnsafeCode):
            stand_in()
