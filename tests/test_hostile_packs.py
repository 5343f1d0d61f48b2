"""Packs that try to smuggle code: they compile to safe code or are rejected, and run nothing.

A pack from an untrusted source may hold any string, any identifier the grammar admits
and any field name its schema declares. Whatever it holds, the generated evaluator must
pass ``sandbox.verify``, give the verdict the rules mean, and never import a module or
start a process while the pack is loaded or evaluated.
"""

from __future__ import annotations

import ast
import builtins
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aigre_policy import sandbox
from aigre_policy.compiler import compile_pack
from aigre_policy.diagnostics import render
from aigre_policy.pack import Pack, load_pack
from aigre_policy.sandbox import UnsafeCode, verify

FORBIDDEN_MODULES = {
    "os",
    "posix",
    "nt",
    "subprocess",
    "shutil",
    "socket",
    "ctypes",
    "importlib",
    "builtins",
    "pty",
    "sys",
}


class Tripwire:
    """Records anything a pack's code must never do; the test fails if any fired."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def hit(self, what: str) -> None:
        self.calls.append(what)


@pytest.fixture
def tripwire(monkeypatch: pytest.MonkeyPatch) -> Tripwire:
    """``builtins.__import__``, ``os.system`` and friends record every suspicious call.

    Imports are suspicious when made from code that has no source file (``exec``'d
    code such as a generated evaluator) or when they ask for a module that reaches the
    operating system. The library's own lazy imports of its modules stay allowed.
    """
    wire = Tripwire()
    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        caller = sys._getframe(1).f_code.co_filename
        if caller.startswith("<aigre-policy"):
            wire.hit(f"import {name} from generated code")
        if name.split(".")[0] in FORBIDDEN_MODULES and name not in sys.modules:
            wire.hit(f"import {name} (not yet loaded) from {caller}")
        return real_import(name, globals, locals, fromlist, level)

    def refuse(label: str):
        def call(*args: Any, **kwargs: Any) -> Any:
            wire.hit(f"{label}{args!r}")
            raise AssertionError(f"a pack ran {label}")

        return call

    monkeypatch.setattr(builtins, "__import__", guarded_import)
    for name in ("system", "popen", "execv", "execve", "execvp", "spawnv", "posix_spawn"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse(f"os.{name}"))
    monkeypatch.setattr(subprocess, "Popen", refuse("subprocess.Popen"))
    return wire


def test_the_tripwire_itself_catches_imports_and_system_calls(tripwire):
    with pytest.raises(AssertionError):
        os.system("true")
    exec(compile("import json", "<aigre-policy probe>", "exec"), {})
    assert tripwire.calls[0].startswith("os.system")
    assert tripwire.calls[1] == "import json from generated code"


def dsl_string(value: str, *, message: bool = False) -> str:
    """``value`` as a string literal of the policy language (a ``because`` text when
    ``message``, where braces are escaped too)."""
    out = value.replace("\\", "\\\\").replace('"', '\\"')
    out = out.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    if message:
        out = out.replace("{", "\\{").replace("}", "\\}")
    return f'"{out}"'


def loaded(root: Path) -> Pack:
    report = compile_pack(root)
    assert report.ok, "\n".join(render(d, report.sources) for d in report.diagnostics)
    pack = load_pack(root)
    verify(pack.python_source)
    return pack


def string_constants(source: str) -> set[str]:
    return {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


# ------------------------------------------------------------------- hostile strings

HOSTILE_STRINGS = [
    pytest.param('it"s "quoted"', id="double-quotes"),
    pytest.param("it's '''triple''' \"\"\"", id="python-quotes"),
    pytest.param("back\\slash \\n \\x41 \\N{BULLET} \\", id="backslashes"),
    pytest.param('"); import os; os.system("x") #', id="breakout"),
    pytest.param("'); import os; os.system('x') #", id="breakout-single"),
    pytest.param('__import__("os").system("x")', id="dunder-import"),
    pytest.param("line\nimport os\nos.system('x')", id="newlines"),
    pytest.param("tab\tcarriage\rreturn", id="tab-cr"),
    pytest.param("{{action.kind}} {x} }} {{", id="braces"),
    pytest.param("sep\u2028import os\u2029os.system('x')\x85", id="unicode-line-separators"),
    pytest.param("\u202eevil\u202c and \U0001f525 and \x00nul", id="bidi-emoji-nul"),
    pytest.param("# not a comment", id="hash"),
]


@pytest.mark.parametrize("value", HOSTILE_STRINGS)
def test_hostile_string_is_data(new_pack, make_action, valid_context, tripwire, value):
    policy = (
        f'envelope bad {{ items: [{dsl_string(value)}, "plain"] }}\n'
        f"rule smuggle {{\n"
        f"  deny when action.target == {dsl_string(value)}\n"
        f"  because {dsl_string('got [' + value + '] for ', message=True)[:-1]}"
        '{action.target}"\n'
        f"}}\n"
        f"rule listed {{ warn when action.target in bad.items }}\n"
    )
    pack = loaded(new_pack(policy))
    assert value in string_constants(pack.python_source)

    hit = pack.evaluate(make_action(target=value), valid_context)
    assert hit.decision == "deny", hit.errors
    assert hit.rule_ids == ["smuggle"]
    assert hit.fired[0]["message"] == f"got [{value}] for {value}"
    assert hit.fired[0]["bindings"]["action.target"] == value
    assert [w["id"] for w in hit.warnings] == ["listed"]
    assert hit.warnings[0]["bindings"]["bad.items"] == [value, "plain"]

    miss = pack.evaluate(make_action(target=value + "!"), valid_context)
    assert (miss.decision, miss.rule_ids, miss.warnings) == ("allow", [], [])
    assert tripwire.calls == []


def test_comparison_text_after_a_unicode_line_separator(new_pack, make_action, valid_context):
    pack = loaded(
        new_pack(
            'rule r { deny when action.target == "a\u2028b" }\n'
            'rule s { deny when action.target != "zzzz" }\n'
        )
    )
    verdict = pack.evaluate(make_action(), valid_context)
    assert verdict.rule_ids == ["s"]
    assert verdict.fired[0]["comparisons"][0]["expression"] == 'action.target != "zzzz"'


# --------------------------------------------------------------------- hostile names

HOSTILE_NAMES = [
    "__class__",
    "__import__",
    "__builtins__",
    "__globals__",
    "eval",
    "exec",
    "os",
    "_t",
    "_get",
    "fired",
    "add",
    "held",
    "reads",
    "ev",
    "evaluate",
    "explain_0",
    "x0",
    "E0",
    "v1",
    "f_len",
]


def _rule_id(name: str) -> str:
    """Rule ids are lowercase words; names that are not become ``r-<word>``."""
    word = name.strip("_").lower().replace("__", "_") or "r"
    return word if word == name else f"r-{word}"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_for_envelopes_values_usages_and_rules(
    new_pack, make_action, valid_context, tripwire, name
):
    policy = (
        f"envelope {name} {{ {name}: 5 }}\n"
        f"usage {name} = count() over last 1h\n"
        f"rule {_rule_id(name)} {{\n"
        f"  deny when action.cost.estimated_usd > {name}.{name}\n"
        f'  because "{{action.cost.estimated_usd}} over {{{name}.{name}}}"\n'
        f"}}\n"
        f"rule {_rule_id(name)}-busy {{ warn when usage.{name} > 2 }}\n"
    )
    pack = loaded(new_pack(policy))

    over = pack.evaluate(make_action(cost={"estimated_usd": 10}), valid_context, {name: 3})
    assert over.decision == "deny", over.errors
    assert over.rule_ids == [_rule_id(name)]
    assert over.fired[0]["message"] == "10 over 5"
    assert over.fired[0]["bindings"] == {"action.cost.estimated_usd": 10, f"{name}.{name}": 5}
    assert [w["id"] for w in over.warnings] == [f"{_rule_id(name)}-busy"]

    under = pack.evaluate(make_action(cost={"estimated_usd": 1}), valid_context, {name: 0})
    assert (under.decision, under.rule_ids, under.warnings) == ("allow", [], [])
    assert tripwire.calls == []


@pytest.mark.parametrize("rule_id", ["__class__", "_t", "E0", "Eval", "os.system", "x-"])
def test_rule_ids_outside_the_grammar_are_syntax_errors(new_pack, tripwire, rule_id):
    report = compile_pack(new_pack(f"rule {rule_id} {{ deny when true }}"))
    assert [d.code for d in report.diagnostics] == ["E001"]
    assert report.compiled is None
    assert tripwire.calls == []


@pytest.mark.parametrize("name", ["input", "data", "decision", "context", "usage"])
def test_reserved_names_cannot_name_an_envelope(new_pack, name):
    report = compile_pack(new_pack(f"envelope {name} {{ x: 1 }}"))
    assert [d.code for d in report.diagnostics] == ["E107"]


def test_hostile_quantifier_variables(new_pack, make_action, valid_context, tripwire):
    rules = [
        f"rule q{i} {{ escalate when"
        f' any({var} in action.blast_radius.services ?? []: {var} == "db") }}'
        for i, var in enumerate(HOSTILE_NAMES)
    ]
    # nested items named like generated code: x0 (hoisted reads) and v1 (item variables)
    rules.append(
        "rule nested { deny when any(x0 in action.blast_radius.services ?? []:"
        " any(v1 in action.blast_radius.regions ?? []: x0 == v1)) }"
    )
    rules.append(
        'rule shadow { deny when action.target == "x0" and all(fired in'
        " action.blast_radius.services ?? []: fired != action.target) }"
    )
    pack = loaded(new_pack("\n".join(rules) + "\n"))
    quantified = [f"q{i}" for i in range(len(HOSTILE_NAMES))]

    def judge(services, regions=(), target="checkout"):
        radius = {"users_share": 0.1, "services": list(services), "regions": list(regions)}
        return pack.evaluate(make_action(blast_radius=radius, target=target), valid_context)

    assert judge(["db"]).rule_ids == quantified
    assert judge(["db"]).decision == "escalate"
    assert judge(["api"]).decision == "allow"
    assert judge(["api"], ["eu", "api"]).rule_ids == ["nested"]
    assert judge(["api"], ["eu"]).rule_ids == []
    assert judge(["api"], target="x0").rule_ids == ["shadow"]
    assert judge(["x0"], target="x0").rule_ids == []
    assert tripwire.calls == []


def _hostile_schema() -> dict[str, Any]:
    number = {"type": "number"}
    return {
        "type": "object",
        "required": ["action", "context"],
        "properties": {
            "action": {
                "type": "object",
                "required": ["__class__", "__globals__", "items"],
                "properties": {
                    "__class__": {"type": "string"},
                    "__globals__": {
                        "type": "object",
                        "required": ["__builtins__"],
                        "properties": {
                            "__builtins__": number,
                            "eval": {"type": "string"},
                            "__import__": {"type": "string", "default": '"); import os #'},
                        },
                    },
                    "items": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["__import__"],
                            "properties": {"__import__": {"type": "string"}},
                        },
                    },
                    "os": {"type": "string"},
                },
            },
            "context": {
                "type": "object",
                "properties": {"__builtins__": {"type": "boolean"}, "exec": number},
            },
        },
    }


SCHEMA_POLICY = """\
envelope eval { exec: 5 }
rule os {
  deny when action.__class__ == "__class__" and action.__globals__.__builtins__ > eval.exec
  because "{action.__class__}/{action.__globals__.__builtins__}/{action.os ?? \\"none\\"}"
}
rule fired {
  escalate when any(add in action.items: add.__import__ == "os")
    or (context.__builtins__ ?? false)
}
rule x0 {
  warn when has action.__globals__.eval and action.__globals__.eval == "1"
  because "{action.__globals__.__import__}"
}
"""


def test_schema_field_names_like_python_internals(new_pack, tripwire):
    root = new_pack(
        SCHEMA_POLICY,
        manifest={"input_schema": "schema.json"},
        files={"schema.json": _hostile_schema()},
    )
    pack = loaded(root)
    source = pack.python_source
    assert {"__class__", "__globals__", "__builtins__", "__import__"} <= string_constants(source)

    action = {
        "__class__": "__class__",
        "__globals__": {"__builtins__": 6, "eval": "1"},
        "items": [{"__import__": "os"}],
    }
    verdict = pack.evaluate(action, {})
    assert verdict.decision == "deny", verdict.errors
    assert verdict.rule_ids == ["os", "fired"]
    assert verdict.fired[0]["message"] == "__class__/6/none"
    assert [w["id"] for w in verdict.warnings] == ["x0"]
    # the schema's default, a hostile string, is data too
    assert verdict.warnings[0]["message"] == '"); import os #'

    calm = {"__class__": "x", "__globals__": {"__builtins__": 1}, "items": []}
    assert pack.evaluate(calm, {"__builtins__": False}).decision == "allow"
    assert pack.evaluate(calm, {"__builtins__": True}).rule_ids == ["fired"]
    assert tripwire.calls == []


def test_policy_file_name_cannot_break_out_of_a_comment(new_pack, make_action, valid_context):
    """Generated comments cite ``file:line``; a file name with newlines stays in its comment."""
    name = "x\nimport os\nos.system('x')\n.aigre"
    root = new_pack({name: 'rule r { deny when action.target == "checkout" }\n'})
    pack = loaded(root)
    assert "\nimport os" not in pack.python_source
    assert pack.evaluate(make_action(), valid_context).decision == "deny"


# ---------------------------------------------------------------- huge and deep input


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param("rule r { deny when action.cost.estimated_usd > 1e400 }", id="float-rule"),
        pytest.param("rule r { deny when action.cost.estimated_usd > -1e400 }", id="neg-float"),
        pytest.param(f"rule r {{ deny when action.change.lines > {'9' * 400} }}", id="int-rule"),
        pytest.param(f"envelope e {{ x: {'1' * 400} }}", id="int-envelope"),
        pytest.param(f"envelope e {{ x: -{'1' * 400} }}", id="neg-int-envelope"),
        pytest.param(f"envelope e {{ x: [1, {'7' * 400}] }}", id="int-in-list"),
        pytest.param(
            "rule r { deny when true }\n"
            f'test "t" {{ action {{ cost: {{ estimated_usd: {"9" * 400} }} }}\n expect deny }}',
            id="int-test-input",
        ),
        pytest.param(
            "envelope e { x: 1 }\nrule r { deny when true }\n"
            'test "t" { with e.x = 1e999\n expect deny }',
            id="float-test-override",
        ),
    ],
)
def test_huge_numbers_are_e002(new_pack, tripwire, policy):
    report = compile_pack(new_pack(policy))
    assert not report.ok
    assert "E002" in {d.code for d in report.diagnostics}
    assert report.compiled is None
    assert tripwire.calls == []


def test_largest_numbers_still_compile_and_compare(new_pack, make_action, valid_context):
    pack = loaded(
        new_pack(
            "rule r { deny when action.change.lines < 9223372036854775807"
            " and action.cost.estimated_usd < 1e300 }"
        )
    )
    assert pack.evaluate(make_action(), valid_context).decision == "deny"


@pytest.mark.parametrize("depth", [10, 199, 1000])
def test_deep_parentheses_compile(new_pack, make_action, valid_context, depth):
    pack = loaded(new_pack(f"rule r {{ deny when {'(' * depth}action.reversible{')' * depth} }}"))
    assert pack.evaluate(make_action(reversible=True), valid_context).decision == "deny"
    assert pack.evaluate(make_action(reversible=False), valid_context).decision == "allow"


@pytest.mark.parametrize("depth", [2, 51])
def test_nested_not_keeps_its_meaning(new_pack, make_action, valid_context, depth):
    pack = loaded(new_pack(f"rule r {{ deny when {'not ' * depth}action.reversible }}"))
    fires_when_reversible = depth % 2 == 0
    verdict = pack.evaluate(make_action(reversible=True), valid_context)
    assert (verdict.decision == "deny") is fires_when_reversible


@pytest.mark.parametrize(
    "condition",
    [
        pytest.param("not " * 300 + "action.reversible", id="not-300"),
        pytest.param(" and ".join(["action.reversible"] * 300), id="and-300"),
        pytest.param(" + ".join(["1"] * 300) + " > 0", id="plus-300"),
        pytest.param("not " * 3000 + "action.reversible", id="not-3000"),
        pytest.param(" or ".join(["action.reversible"] * 3000), id="or-3000"),
    ],
)
def test_deep_nesting_is_a_diagnostic_not_a_crash(new_pack, tripwire, condition):
    report = compile_pack(new_pack(f"rule r {{ deny when {condition} }}"))
    assert not report.ok
    assert report.diagnostics
    assert {d.code for d in report.diagnostics} <= {"E004", "E001"}
    assert tripwire.calls == []


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_schema_default_is_rejected(new_pack, value):
    schema = (
        "type: object\nrequired: [action, context]\nproperties:\n"
        "  action:\n    type: object\n    properties:\n"
        f"      n: {{type: number, default: {value}}}\n"
        "  context: {type: object}\n"
    )
    root = new_pack(
        "rule r { deny when action.n > 3 }",
        manifest={"input_schema": "schema.yaml"},
        files={"schema.yaml": schema},
    )
    report = compile_pack(root)
    assert not report.ok
    assert report.diagnostics


@pytest.mark.parametrize("suffix", ["json", "yaml"])
def test_integer_past_the_digit_limit_in_a_schema_file(new_pack, suffix):
    big = "9" * 5000
    schema = (
        '{"type": "object", "properties": {"action": {"type": "object", "properties": '
        f'{{"n": {{"type": "number", "maximum": {big}}}}}}}, "context": {{"type": "object"}}}}}}'
    )
    root = new_pack(
        "rule r { deny when true }",
        manifest={"input_schema": f"schema.{suffix}"},
        files={f"schema.{suffix}": schema},
    )
    report = compile_pack(root)
    assert not report.ok
    assert {d.code for d in report.diagnostics} & {"E501", "E503"}


# ------------------------------------------------------------------ the sandbox itself

GOOD_SOURCE = """\
def evaluate(action, context, usage):
    fired = []
    rank = -1
    x0 = action['target']
    if _any((v1 == 'db') for v1 in _dflt(action.get('services'), [])):
        fired.append((0, x0, ))
        rank = 3
    return fired, rank
"""


def test_verify_accepts_the_shape_codegen_emits():
    assert isinstance(verify(GOOD_SOURCE), ast.Module)


MALICIOUS = [
    pytest.param("import os\n", "Import", id="import"),
    pytest.param("from os import system\n", "ImportFrom", id="import-from"),
    pytest.param(
        "def evaluate(action, context, usage):\n    return action.__class__\n",
        "__class__",
        id="dunder-attribute",
    ),
    pytest.param(
        "def evaluate(action, context, usage):\n    return _get.__globals__\n",
        "__globals__",
        id="globals-attribute",
    ),
    pytest.param(
        "def evaluate(action, context, usage):\n    return open('/etc/passwd')\n",
        "open",
        id="call-open",
    ),
    pytest.param("x0 = lambda: 0\n", "Lambda", id="lambda"),
    pytest.param("x0 = foo\n", "foo", id="unknown-name"),
    pytest.param("x0 = __import__('os')\n", "__import__", id="dunder-import"),
    pytest.param("x0 = __builtins__\n", "__builtins__", id="builtins"),
    pytest.param("x0 = getattr(action, 'x')\n", "getattr", id="getattr"),
    pytest.param("x0 = eval('1')\n", "eval", id="eval"),
    pytest.param("def helper(action, context, usage):\n    return 1\n", "helper", id="function"),
    pytest.param(
        "def evaluate(action, context, usage, extra):\n    return 1\n", "extra", id="parameter"
    ),
    pytest.param(
        "@x0\ndef evaluate(action, context, usage):\n    return 1\n", "decorated", id="decorator"
    ),
    pytest.param("class x0:\n    pass\n", "ClassDef", id="class"),
    pytest.param("x0 = b'bytes'\n", "bytes", id="bytes-constant"),
    pytest.param("x0 = [v1 for v1 in action]\n", "ListComp", id="list-comprehension"),
    pytest.param("while True:\n    pass\n", "While", id="loop"),
    pytest.param("x0 = 2 ** 10 ** 10\n", "Pow", id="power"),
    pytest.param("def evaluate(action, context, usage):\n    yield 1\n", "Yield", id="yield"),
    pytest.param("x0 = f'{action}'\n", "JoinedStr", id="f-string"),
    pytest.param("x0 = action[0:1]\n", "Slice", id="slice"),
    pytest.param("global x0\n", "Global", id="global"),
    pytest.param("try:\n    pass\nexcept Exception:\n    pass\n", "Try", id="try"),
]


@pytest.mark.parametrize(("source", "named"), MALICIOUS)
def test_verify_rejects_hand_made_malicious_source(source, named):
    with pytest.raises(UnsafeCode) as caught:
        verify(source)
    assert named in str(caught.value)


def test_load_refuses_malicious_source_without_running_it(tripwire):
    with pytest.raises(UnsafeCode):
        sandbox.load("import os\nos.system('x')\n", "<aigre-policy test>", {})
    with pytest.raises(UnsafeCode):
        sandbox.load("x0 = open('/etc/passwd')\n", "<aigre-policy test>", {})
    assert tripwire.calls == []


def test_generated_code_runs_without_builtins():
    """Even code that passed verify cannot reach a builtin: the namespace has none."""
    namespace = sandbox.load("x0 = _get({'a': 1}, 'a')\n", "<aigre-policy test>", {})
    assert namespace["x0"] == 1
    assert namespace["__builtins__"] == {}


def test_a_lazily_loaded_explain_function_is_checked_before_it_runs(tripwire):
    """A revived cache entry verifies each ``explain_N`` on its first call: one outside the
    allowlist stops that call, and nothing of it runs."""
    source = (
        "def evaluate(action, context, usage):\n    return explain_0()\n\n"
        "def explain_0():\n    return __import__('os').system('true')\n"
    )
    namespace = sandbox.load(source, "<aigre-policy test>", {}, lazy=True)
    with pytest.raises(UnsafeCode, match="at line 5"):  # its line in the module
        namespace["evaluate"]({}, {}, {})
    with pytest.raises(UnsafeCode):
        namespace["evaluate"]({}, {}, {})  # a refusal is not remembered as a pass
    assert tripwire.calls == []


def test_every_load_goes_through_verify(new_pack, monkeypatch):
    seen: list[str] = []
    real = sandbox.verify

    def spy(source: str) -> ast.Module:
        seen.append(source)
        return real(source)

    monkeypatch.setattr(sandbox, "verify", spy)
    pack = loaded(new_pack('rule r { deny when action.target == "\\"); import os #" }'))
    assert pack.python_source in seen


def test_a_compromised_code_generator_is_stopped(new_pack, monkeypatch, tripwire):
    """Should codegen ever emit unsafe code, loading stops before anything runs."""
    from aigre_policy import codegen
    from aigre_policy.codegen import EmittedModule

    evil = (
        "import os\nos.system('echo pwned')\n\n"
        "def evaluate(action, context, usage):\n    return []\n"
    )
    # native.build imports emit_python from codegen when it runs (a cached start skips it)
    monkeypatch.setattr(codegen, "emit_python", lambda *a, **k: EmittedModule(evil, {}))
    root = new_pack('rule r { deny when action.target == "x" }')
    try:
        report = compile_pack(root)
    except UnsafeCode:
        pass
    else:
        assert not report.ok
    assert tripwire.calls == []
