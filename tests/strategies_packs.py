"""Random but well-typed packs over one small custom schema, and inputs valid for it.

The differential suite (``test_adversarial_differential.py``) compiles each generated
pack and judges each generated input on every engine. Packs use every construct of
the language (docs/language.md): every verdict kind and metadata key, comparisons,
``in``/``not in``, ``and``/``or``/``not``, ``??`` defaults, ``has`` guards,
``any``/``all`` (nested), arithmetic on numbers, strings, durations and timestamps,
every function (the zone clocks ``hour_in``, ``minute_in``, ``weekday_in`` and ``date_in``
on zones with daylight saving and quarter-hour offsets, named literally or by an envelope
value), envelopes with keyed values read through ``lookup``, and a ``usage`` declaration.

Expressions are built by type, so every pack type-checks; a pack that does not
compile is a finding. The literals the packs compare against and the values the
inputs hold come from the same small pools, so conditions are often on their edge.

Numbers stay exact on every engine: integers are small, floats are quarters, and no
message interpolates a quotient (rego-cpp prints 16 significant digits where Python
may need 17, and its big-number arithmetic is not IEEE: issue 12's known gaps).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

# ---------------------------------------------------------------- the schema

ENVS = ("prod", "stage", "dev")
ZONES = ("eu", "us")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["action", "context"],
    "properties": {
        "action": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "target", "env", "count", "ratio", "flag", "tags", "sizes", "at"],
            "properties": {
                "name": {"type": "string"},
                "target": {"type": "string"},  # what exemptions match
                "env": {"enum": list(ENVS)},
                "count": {"type": "integer"},
                "ratio": {"type": "number"},
                "flag": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "sizes": {"type": "array", "items": {"type": "integer"}},
                "at": {"type": "string", "format": "date-time"},
                "note": {"type": "string"},
                "limit": {"type": "integer"},
                "retries": {"type": "integer", "default": 3},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["label", "size"],
                        "properties": {
                            "label": {"type": "string"},
                            "size": {"type": "integer"},
                            "owner": {"type": "string"},
                        },
                    },
                },
                "meta": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["level"],
                    "properties": {
                        "level": {"type": "integer"},
                        "zone": {"enum": list(ZONES)},
                    },
                },
            },
        },
        "context": {
            "type": "object",
            "additionalProperties": False,
            "required": ["now"],
            "properties": {
                "now": {"type": "string", "format": "date-time"},
                "budget": {"type": "number"},
            },
        },
    },
}

USAGE = "usage spent = sum(action.ratio) over calendar_month\n"

# ---------------------------------------------------------------- shared value pools

# Strings every engine treats alike: ASCII without `"` or `\\`, and caseless non-ASCII
STRINGS = ("a", "b", "pay", "pay-api", "api", "Ops", "OPS", "", "x y", "中文", "→ ok", "🙂")
# and those rego-cpp treats otherwise (docs/rego.md, known limits): non-ASCII case
# folding (W603), and text it keeps escaped inside (quotes, backslashes, control characters)
HOSTILE_STRINGS = ("é", "Straße", "İd", "ǅ", 'say "hi"', "a\\b", "tab\there", "\x1a", "\x7f")
PORTABLE_CHARACTERS = "".join(c for c in map(chr, range(32, 127)) if c not in '"\\') + "中→🙂"
INTS = (-3, -1, 0, 1, 2, 3, 5, 7, 10, 42, 100, 1000)
QUARTERS = (-2.5, -0.25, 0.0, 0.25, 0.5, 1.5, 2.75, 10.25)
DURATIONS = ("500ms", "30s", "90s", "15m", "2h", "1.5h", "1d", "1w")
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Monday 2025-03-10, 00:00 UTC; input times are this plus an offset
ANCHOR = datetime(2025, 3, 10, tzinfo=UTC)


def duration_seconds(text: str) -> float:
    for unit in ("ms", "s", "m", "h", "d", "w"):
        if text.endswith(unit) and not (unit == "s" and text.endswith("ms")):
            return float(text[: -len(unit)]) * SECONDS[unit]
    raise ValueError(text)


OFFSETS = tuple(
    sorted(
        {0, 1, -1, 59, 3600, 16 * 3600, 23 * 3600 + 59 * 60, 4 * 86400 + 1}
        | {int(duration_seconds(d)) for d in DURATIONS if duration_seconds(d) >= 1}
        | {-int(duration_seconds(d)) for d in DURATIONS if duration_seconds(d) >= 1}
    )
)

# ---------------------------------------------------------------- envelopes

ENVELOPES: dict[str, dict[str, str]] = {
    "lim": {
        "max_count": "10",
        "share": "0.25",
        "floor": "-5",
        "max_age": "15m",
        "label": '"ops"',
        "on": "true",
        "envs": '["prod", "stage"]',
        "names": '["pay", "api", "Ops"]',
        "counts": "[1, 2, 3]",
        "none": "[]",
        # read only through lookup(): a keyed value (an enum key, a free string key)
        "per_env": "{ default: 5, by_env: { prod: 1, stage: 3 } }",
        "per_name": '{ default: 30s, by_name: { pay: 2m, "x y": 0s } }',
        "tz": '"Australia/Sydney"',  # a zone: a literal or an envelope value
    }
}
# wall clocks the zone functions read: daylight saving both ways, a quarter-hour offset
CLOCK_ZONES = ('"Europe/Berlin"', '"Asia/Kathmandu"', '"UTC"', "lim.tz")
ENVELOPE_TEXT = (
    "envelope lim {\n"
    + "".join(f"  {name}: {value}\n" for name, value in ENVELOPES["lim"].items())
    + "}\n"
)
ENVELOPE_TYPES = {
    "int": ("lim.max_count", "lim.floor"),
    "num": ("lim.share",),
    "dur": ("lim.max_age",),
    "str": ("lim.label",),
    "bool": ("lim.on",),
    "list_env": ("lim.envs",),
    "list_str": ("lim.names",),
    "list_int": ("lim.counts",),
}


def quote(text: str) -> str:
    """A string literal in the language (JSON escapes are a subset of its escapes)."""
    return json.dumps(text, ensure_ascii=False).replace("{", "\\{").replace("}", "\\}")


def number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and isinstance(value, int) else repr(value)


class Scope:
    """What an expression may read: quantifier variables and the optional paths guarded."""

    def __init__(
        self, variables: dict[str, str] | None = None, guarded: frozenset[str] = frozenset()
    ):
        self.variables = variables or {}
        self.guarded = guarded

    def with_var(self, name: str, kind: str) -> Scope:
        return Scope({**self.variables, name: kind}, self.guarded)

    def with_guard(self, path: str) -> Scope:
        return Scope(self.variables, self.guarded | {path})


class Builder:
    """Draws expression text of a given type; ``message`` mode leaves out what may not print
    alike on every engine (quotients) and what only a condition may hold (quantifiers)."""

    def __init__(
        self,
        draw: Any,
        message: bool = False,
        portable: bool = True,
        hostile: bool = False,
        folding: bool = True,
    ):
        self.draw = draw
        self.folding = folding  # lower() and upper()
        # literals with an escape the language has (no other control characters)
        self.literals = STRINGS + (HOSTILE_STRINGS[:7] if hostile else ())
        self.message = message
        self.portable = portable
        self.names = iter(f"v{i}" for i in range(1000))

    def pick(self, options: Any) -> Any:
        return self.draw(st.sampled_from(list(options)))

    def chance(self, p: float = 0.5) -> bool:
        return self.draw(st.integers(0, 99)) < p * 100

    # ------------------------------------------------------------ leaves
    def leaf(self, kind: str, scope: Scope) -> str:
        options: list[str] = list(ENVELOPE_TYPES.get(kind, ()))
        variables = [name for name, k in scope.variables.items() if k == kind]
        items = [name for name, k in scope.variables.items() if k == "item"]
        guarded_meta = "action.meta" in scope.guarded
        match kind:
            case "int":
                options += [str(v) for v in INTS] + ["action.count", "action.retries"]
                options += ["lookup(lim.per_env, action.env)", "lookup(lim.per_env, action.name)"]
                options += ["(action.limit ?? 4)", "(action.meta.level ?? 0)"]
                options += [f"{i}.size" for i in items]
                if guarded_meta:
                    options.append("action.meta.level")
                if "action.limit" in scope.guarded:
                    options.append("action.limit")
            case "num":
                options += [repr(v) for v in QUARTERS] + ["action.ratio", "usage.spent"]
                options += ["(context.budget ?? 1.5)"]
                if "context.budget" in scope.guarded:
                    options.append("context.budget")
            case "str":
                options += [quote(s) for s in self.literals] + [
                    "action.name",
                    '(action.note ?? "")',
                ]
                options += [f"{i}.label" for i in items] + [f'({i}.owner ?? "a")' for i in items]
                if "action.note" in scope.guarded:
                    options.append("action.note")
            case "env":
                options += [quote(e) for e in ENVS] + ["action.env"]
            case "zone":
                options += [quote(z) for z in ZONES]
                options.append('(action.meta.zone ?? "eu")')
            case "day":
                options += [quote(d) for d in DAYS]
            case "time":
                options += ["action.at", "context.now"]
            case "dur":
                options += [*DURATIONS, "lookup(lim.per_name, action.name)"]
            case "bool":
                options += ["true", "false", "action.flag"]
            case "list_str":
                options += ["action.tags", "[]", '["pay", "a"]', '[action.name, "b"]']
            case "list_int":
                options += ["action.sizes", "[1, 2, 3]", "[action.count, 0]"]
            case "list_num":
                options += ["[action.ratio, 0.25]", "[usage.spent, action.count, 1.5]"]
            case "list_env":
                options += ['["prod"]', '["stage", "dev"]', "[action.env]"]
            case "list_day":
                options += ['["saturday", "sunday"]', '["friday"]']
            case "list_time":
                options += ["[action.at]", "[context.now, action.at]"]
            case "list_item":
                options += ["(action.items ?? [])"]
        options += variables
        return self.pick(options)

    # ------------------------------------------------------------ composites
    def expr(self, kind: str, scope: Scope, depth: int) -> str:
        if depth <= 0 or self.chance(0.3):
            if kind == "bool" and depth > 0 and not self.message:
                return self.compare(scope, depth)
            return self.leaf(kind, scope)
        maker = getattr(self, f"make_{kind}", None)
        if maker is None:
            return self.leaf(kind, scope)
        return maker(scope, depth - 1)

    def make_int(self, scope: Scope, depth: int) -> str:
        forms = ["arith", "len_list", "len_str", "hour", "minute", "zoned", "neg"]
        form = self.pick(forms if self.portable else [*forms, "mod"])
        match form:
            case "arith":
                op = self.pick(["+", "-", "*"])
                return f"({self.expr('int', scope, depth)} {op} {self.expr('int', scope, depth)})"
            case "mod":
                divisor = self.pick(["3", "7", "-2", "action.count", "(action.limit ?? 0)"])
                return f"({self.expr('int', scope, depth)} % {divisor})"
            case "len_list":
                kind = self.pick(["list_str", "list_int", "list_item"])
                return f"len({self.expr(kind, scope, depth)})"
            case "len_str":
                return f"len({self.expr('str', scope, depth)})"
            case "hour" | "minute":
                return f"{form}({self.expr('time', scope, depth)})"
            case "zoned":
                clock = self.pick(["hour_in", "minute_in"])
                return f"{clock}({self.expr('time', scope, depth)}, {self.pick(CLOCK_ZONES)})"
            case _:
                return f"-({self.leaf('int', scope)})"

    def make_num(self, scope: Scope, depth: int) -> str:
        forms = ["arith", "mixed", "sum", "div", "int"]
        form = self.pick(forms if self.portable else [*forms, "div", "div"])
        if form == "div" and self.message:
            form = "arith"
        match form:
            case "arith":
                op = self.pick(["+", "-", "*"])
                return f"({self.expr('num', scope, depth)} {op} {self.expr('num', scope, depth)})"
            case "mixed":
                return f"({self.expr('num', scope, depth)} + {self.expr('int', scope, depth)})"
            case "sum":
                return f"sum({self.expr(self.pick(['list_int', 'list_num']), scope, depth)})"
            case "div":
                divisors = ["2", "4", "0.5"]
                if not self.portable:  # may be zero: fails closed (test_targets.py, all engines)
                    divisors = ["action.count", "(action.limit ?? 0)", "(action.count - 1)", "4"]
                divisor = self.pick(divisors)
                return f"({self.expr('num', scope, depth)} / {divisor})"
            case _:
                return self.expr("int", scope, depth)

    def make_str(self, scope: Scope, depth: int) -> str:
        form = self.pick(
            ["lower", "upper", "concat", "date", "date_in"]
            if self.folding
            else ["concat", "date", "date_in"]
        )
        match form:
            case "concat":
                return f"({self.expr('str', scope, depth)} + {self.expr('str', scope, depth)})"
            # a date compared as it is with a string that is no calendar day is E211: the
            # generated strings seldom are, so a date goes through `+ ""` first
            case "date":
                return f'(date({self.expr("time", scope, depth)}) + "")'
            case "date_in":
                zone = self.pick(CLOCK_ZONES)
                return f'(date_in({self.expr("time", scope, depth)}, {zone}) + "")'
            case _:
                return f"{form}({self.expr('str', scope, depth)})"

    def make_time(self, scope: Scope, depth: int) -> str:
        op = self.pick(["+", "-"])
        return f"({self.expr('time', scope, depth)} {op} {self.expr('dur', scope, depth)})"

    def make_dur(self, scope: Scope, depth: int) -> str:
        form = self.pick(["diff", "add", "scale", "neg", "div"])
        if form == "div" and self.message:
            form = "add"
        match form:
            case "diff":
                return f"({self.expr('time', scope, depth)} - {self.expr('time', scope, depth)})"
            case "add":
                op = self.pick(["+", "-"])
                return f"({self.expr('dur', scope, depth)} {op} {self.expr('dur', scope, depth)})"
            case "scale":
                factor = self.pick(["2", "0.5", "action.count"])
                return f"({self.expr('dur', scope, depth)} * {factor})"
            case "div":
                return f"({self.expr('dur', scope, depth)} / {self.pick(['2', '4'])})"
            case _:
                return f"-({self.leaf('dur', scope)})"

    def make_day(self, scope: Scope, depth: int) -> str:
        if self.chance(0.5):
            return f"weekday_in({self.expr('time', scope, depth)}, {self.pick(CLOCK_ZONES)})"
        return f"weekday({self.expr('time', scope, depth)})"

    def make_bool(self, scope: Scope, depth: int) -> str:
        forms = ["and", "or", "not", "text", "has", "has_item"]
        if not self.message:
            # a comparison inside a message breaks the generated evaluator: see
            # test_adversarial_findings.py::test_a_message_may_interpolate_a_comparison
            forms += ["compare", "compare", "member", "quantifier", "quantifier"]
        form = self.pick(forms)
        match form:
            case "compare":
                return self.compare(scope, depth)
            case "member":
                return self.member(scope, depth)
            case "and" | "or":
                return (
                    f"({self.expr('bool', scope, depth)} {form} {self.expr('bool', scope, depth)})"
                )
            case "not":
                return f"(not {self.expr('bool', scope, depth)})"
            case "text":
                fn = self.pick(["starts_with", "ends_with", "contains"])
                return f"{fn}({self.expr('str', scope, depth)}, {self.expr('str', scope, depth)})"
            case "has":
                path = self.pick(["action.note", "action.limit", "action.meta", "context.budget",
                                  "action.items", "action.meta.zone"])  # fmt: skip
                if self.chance(0.3):
                    return f"has {path}"
                guarded = scope.with_guard(path)
                if self.chance(0.5):
                    return f"(has {path} and {self.expr('bool', guarded, depth)})"
                return f"(not has {path} or {self.expr('bool', guarded, depth)})"
            case "has_item":
                items = [n for n, k in scope.variables.items() if k == "item"]
                if not items or self.message:
                    return self.leaf("bool", scope)
                item = self.pick(items)
                return f'(has {item}.owner and {item}.owner != "a")'
            case _:
                return self.quantifier(scope, depth)

    def quantifier(self, scope: Scope, depth: int) -> str:
        kind = self.pick(["any", "all"])
        element = self.pick(["str", "int", "item", "env", "time"])
        source = {"str": "list_str", "int": "list_int", "item": "list_item",
                  "env": "list_env", "time": "list_time"}[element]  # fmt: skip
        name = next(self.names)
        body = self.expr("bool", scope.with_var(name, element), depth)
        return f"{kind}({name} in {self.expr(source, scope, depth)}: {body})"

    def compare(self, scope: Scope, depth: int) -> str:
        kind = self.pick(["int", "num", "str", "env", "time", "dur", "bool", "day", "zone",
                          "list_str", "list_int"])  # fmt: skip
        if kind in ("str", "env", "bool", "day", "zone", "list_str", "list_int"):
            op = self.pick(["==", "!="])
        else:
            op = self.pick(["==", "!=", "<", "<=", ">", ">="])
        left = self.expr(kind, scope, depth)
        right = self.expr(kind, scope, depth)
        return f"({left} {op} {right})"

    def member(self, scope: Scope, depth: int) -> str:
        kind = self.pick(["str", "int", "env", "day", "time", "num"])
        collection = {"str": "list_str", "int": "list_int", "env": "list_env",
                      "day": "list_day", "time": "list_time", "num": "list_num"}[kind]  # fmt: skip
        op = self.pick(["in", "not in"])
        return f"({self.expr(kind, scope, depth)} {op} {self.expr(collection, scope, depth)})"


# ---------------------------------------------------------------- rules and packs

VERDICTS = ("deny", "require_approval", "escalate", "escalate_to", "warn", "permit")
MESSAGE_KINDS = ("int", "num", "str", "env", "time", "dur", "bool", "day", "list_str",
                 "list_int", "list_env")  # fmt: skip


@st.composite
def rules(
    draw: Any,
    rule_id: str,
    depth: int = 3,
    portable: bool = True,
    hostile: bool = False,
    folding: bool = True,
) -> str:
    build = Builder(draw, portable=portable, hostile=hostile, folding=folding)
    condition = build.expr("bool", Scope(), depth)
    verdict = draw(st.sampled_from(VERDICTS))
    clause = {
        "deny": "deny",
        "require_approval": f"require_approval by {draw(st.sampled_from(GROUPS))}",
        "escalate": "escalate",
        "escalate_to": f"escalate to {draw(st.sampled_from(GROUPS))}",
        "warn": "warn",
        "permit": "permit",
    }[verdict]
    lines = [f"rule {rule_id} {{"]
    if draw(st.booleans()):
        lines.append(f"  title: {quote(draw(st.sampled_from(TITLES)))}")
    if draw(st.booleans()):
        lines.append(f"  category: {draw(st.sampled_from(['risk', 'cost', 'compliance', 'ops']))}")
    if draw(st.booleans()):
        lines.append(f"  severity: {draw(st.sampled_from(['low', 'medium', 'high', 'critical']))}")
    if draw(st.booleans()):
        lines.append('  tags: ["t1", "t2"]')
    lines.append(f"  {clause} when {condition}")
    if draw(st.integers(0, 3)):
        lines.append(f"  because {draw(messages(hostile, folding))}")
    lines.append("}")
    return "\n".join(lines) + "\n"


GROUPS = ('["sre-oncall"]', '["finops", "leads"]', '["leads", "sre-oncall"]')
TITLES = ("A title", "Ünïcode title", 'quote " and brace {')


@st.composite
def messages(draw: Any, hostile: bool = False, folding: bool = True) -> str:
    """A ``because`` string: text and interpolations, quotes inside escaped."""
    build = Builder(draw, message=True, hostile=hostile, folding=folding)
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        text = draw(st.sampled_from(["", "at ", " is ", "; ", "ü ", "{{x}} "]))
        expr = build.expr(draw(st.sampled_from(MESSAGE_KINDS)), Scope(), 2)
        inner = expr.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(text.replace("{{", "\x00").replace("}}", "\x01") + "{" + inner + "}")
    body = "".join(parts)
    # `{{`/`}}` are literal braces in a message
    return '"' + body.replace("\x00", "{{").replace("\x01", "}}") + '"'


@st.composite
def packs(
    draw: Any,
    max_rules: int = 4,
    portable: bool = True,
    hostile: bool = False,
    folding: bool = True,
) -> dict[str, Any]:
    """``{"source": TEXT, "manifest": {...}, "schema": {...}}`` for ``conftest.write_pack``,
    with ``"exemptions": {...}`` (the ``exemptions.yaml`` document) when the pack has some.

    ``portable``: no ``%`` and no divisor that may be zero (the Rego target once refused
    them; every engine runs them now, and ``test_targets.py`` compares them on all four);
    ``hostile``: string literals include what rego-cpp treats otherwise; ``folding``:
    ``lower`` and ``upper`` may be called.
    """
    count = draw(st.integers(1, max_rules))
    ids = [f"r{i}-{draw(st.sampled_from(['a', 'b']))}" for i in range(count)]
    body = [draw(rules(rule_id, 3, portable, hostile, folding)) for rule_id in ids]
    source = "# generated\n" + ENVELOPE_TEXT + USAGE + "\n".join(body)
    manifest = {
        "name": "generated",
        "version": "1.0.0",
        "input_schema": "schema.json",
        "default": draw(st.sampled_from(["allow", "deny"])),
        "fail_closed": draw(st.sampled_from(["deny", "require_approval"])),
    }
    spec = {"source": source, "manifest": manifest, "schema": SCHEMA}
    exemptions = draw(st.lists(exemptions_of(ids), max_size=2, unique_by=lambda e: e["id"]))
    if exemptions:
        spec["exemptions"] = {"exemptions": exemptions}
    return spec


# what exemptions name: exact targets and every glob form, expiries within the inputs' week
TARGETS = ("api", "api-eu", "pay-api", "ledger", "a")
TARGET_PATTERNS = ("api", "api*", "*eu", "*a*", "pay*api", "*", "ledger")
EXPIRIES = tuple(
    (ANCHOR + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for s in (1, 3600, 3 * 86400 + 12 * 3600, 7 * 86400)
)


def exemptions_of(ids: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """One ``exemptions.yaml`` entry lifting one of the rules ``ids``."""
    return st.builds(
        lambda n, rule, targets, expires: {
            "id": f"x-{n}",
            "owner": "owners",
            "rule": rule,
            "targets": targets,
            "reason": "generated",
            "ticket": f"T-{n}",
            "expires": expires,
        },
        st.integers(0, 3),
        st.sampled_from(ids),
        st.lists(st.sampled_from(TARGET_PATTERNS), min_size=1, max_size=2, unique=True),
        st.sampled_from(EXPIRIES),
    )


# ---------------------------------------------------------------- inputs


def timestamps() -> st.SearchStrategy[str]:
    def text(offset: int, form: str, fraction: bool) -> str:
        moment = ANCHOR + timedelta(seconds=offset, days=0)
        if form == "plus2":
            shown = moment.astimezone(UTC).replace(tzinfo=None) + timedelta(hours=2)
            stamp = shown.strftime("%Y-%m-%dT%H:%M:%S") + (".5" if fraction else "") + "+02:00"
            return stamp
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S") + (".5" if fraction else "") + "Z"
        return stamp.lower() if form == "lower" else stamp

    days = st.integers(0, 6).map(lambda d: d * 86400)
    offsets = st.tuples(days, st.sampled_from(OFFSETS)).map(sum)
    return st.builds(
        text,
        offsets,
        st.sampled_from(["z", "z", "plus2", "lower"]),
        st.sampled_from([False, False, False, True]),
    )


def strings(hostile: bool = False) -> st.SearchStrategy[str]:
    if hostile:
        return st.sampled_from(STRINGS + HOSTILE_STRINGS) | st.text(max_size=4)
    return st.sampled_from(STRINGS) | st.text(alphabet=PORTABLE_CHARACTERS, max_size=4)


@st.composite
def documents(draw: Any, hostile: bool = False) -> dict[str, Any]:
    """An input valid for ``SCHEMA`` with the usage the pack declares; ``hostile`` strings
    hold anything, else only text every engine treats alike."""
    text = strings(hostile)
    ints = st.sampled_from(INTS) | st.integers(-50, 50)
    nums = st.sampled_from(QUARTERS) | ints | st.integers(-400, 400).map(lambda q: q / 4)
    action: dict[str, Any] = {
        "name": draw(text),
        "target": draw(st.sampled_from(TARGETS) | text),
        "env": draw(st.sampled_from(ENVS)),
        "count": draw(ints),
        "ratio": draw(nums),
        "flag": draw(st.booleans()),
        "tags": draw(st.lists(text, max_size=3)),
        "sizes": draw(st.lists(ints, max_size=3)),
        "at": draw(timestamps()),
    }
    if draw(st.booleans()):
        action["note"] = draw(text)
    if draw(st.booleans()):
        action["limit"] = draw(ints)
    if draw(st.booleans()):
        action["retries"] = draw(ints)
    if draw(st.booleans()):
        item = st.fixed_dictionaries({"label": text, "size": ints}, optional={"owner": text})
        action["items"] = draw(st.lists(item, max_size=3))
    if draw(st.booleans()):
        meta: dict[str, Any] = {"level": draw(ints)}
        if draw(st.booleans()):
            meta["zone"] = draw(st.sampled_from(ZONES))
        action["meta"] = meta
    context: dict[str, Any] = {"now": draw(timestamps())}
    if draw(st.booleans()):
        context["budget"] = draw(nums)
    return {"action": action, "context": context, "usage": {"spent": draw(nums)}}
