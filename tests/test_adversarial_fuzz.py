"""Parser and checker fuzz: hostile text must come back as diagnostics, never an exception.

The corpus is every ``.aigre`` file of the repository's packs and the language sample.
Each is fed, whole or damaged, to the parser (``parse_module``) and to the whole
compiler (``compile_pack``: parse, check, code generation, load), and a sample of the
damaged packs to ``aigre-policy check``:

* random text and random bytes;
* truncations at every N-th offset of every corpus file;
* token mutations: spans deleted, duplicated or swapped, and operators, brackets,
  quotes, escapes, keywords, Unicode, huge and tiny numbers, deep nesting inserted.

What must hold: the parser returns a module or an error diagnostic; the compiler
returns a report, ``ok`` exactly when it holds a compiled pack and has no error, every
diagnostic renders, and its position lies inside the file; the CLI prints no
traceback and exits with a code docs/cli.md documents for ``check`` (0 or 1).

Counts: ``adversarial.count`` (``AIGRE_ADVERSARIAL_SCALE`` multiplies them).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from adversarial import bounded, count, from_verdict, pack_on_disk, reference
from conftest import fixture_input, write_pack
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from strategies_packs import documents, packs

from aigre_policy.compiler import compile_pack
from aigre_policy.diagnostics import Severity
from aigre_policy.pack import Pack
from aigre_policy.parser import parse_module

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "policy_packs" / "aigre-baseline"
CORPUS = sorted(
    [*ROOT.glob("policy_packs/*/policies/*.aigre"), ROOT / "docs" / "language-sample.aigre"]
)
# baseline files read envelopes declared in another file: compiled beside it
SIBLINGS = {BASELINE / "policies" / "envelopes.aigre"}
MANIFEST = {"name": "fuzzed", "input_schema": "builtin:proposed-action/v1"}
FIXTURES = sorted((ROOT / "fixtures" / "actions").glob("*.yaml"))[::8]  # judged by damaged packs

PARSES = 50  # mutated texts parsed
TRUNCATIONS = 60  # truncations over the whole corpus, spread evenly
COMPILES = 15  # mutated packs compiled
RANDOM = 60  # random texts parsed, random byte files compiled (a few)
CLI_PACKS = 6  # mutated packs checked by one `aigre-policy check` run

INSERTS = (
    "==", "!=", "<=", ">", "??", "and", "or", "not", "in", "not in", "has", "any", "all",
    "+", "-", "*", "/", "%", ".", ",", ":", "(", ")", "[", "]", "{", "}", "{{", "}}",
    '"', "'", "\\", '\\"', "\\{", "\\u0041", "\n", "\t", "\r", "\x00", "\x1a", "\u2028",
    "#", "rule", "envelope", "deny when", "because", "usage", "test", "invariant", "expect",
    "é", "İ", "ß", "🙂", "\ufeff", "\u202e",
    "99999999999999999999999", "9223372036854775808", "-9223372036854775809", "1e999",
    "1e-400", "1e300", "0.1e", "1.", ".5", "1__0", "1_000", "0x10", "NaN", "inf",
    "99999999999999999999w", "1e309s", "0ms", "1.5.5h",
    "(" * 300 + "1" + ")" * 300, "action" + ".a" * 300, "[" * 200 + "]" * 200,
)  # fmt: skip

# conditions nested past the recursion limit, each a conjunct put after a `when`
DEEP = (
    "(" + " ?? ".join(["action.change.lines"] * 600) + ") > 0 and ",
    "not " * 1200 + "true and ",
    "-" * 1200 + "1 < 0 and ",
    "1" + " + 1" * 3000 + " > 0 and ",
    "(" * 1000 + "true" + ")" * 1000 + " and ",
    " or ".join(["action.change.lines == 1"] * 3000) + " and ",
)
# a token of the language: a string, a number or duration, a word, an operator, a character
TOKEN = re.compile(
    r'"(?:\\.|[^"\\\n])*"|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?:ms|[smhdw])?'
    r"|[A-Za-z_][A-Za-z0-9_-]*|==|!=|<=|>=|\?\?|\S"
)
KINDS = ["delete", "duplicate", "swap", "insert", "replace", "token", "token", "token", "nest"]


def corpus_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# tokens of one lexical class replace each other: the text mostly still parses, and the
# checker meets a wrong name, type, operator or literal
SAME_CLASS = {
    "string": ('""', '"x"', '"prod"', '"\\q"', '"{"', '"{}"', '"}"', '"{action.kind"', '"{1 +}"'),
    "number": ("0", "-0", "1.5", "1e300", "1e999", "99999999999999999999", "15m", "0ms", "1e9w"),
    "word": ("action", "context", "usage", "data", "input", "decision", "lim", "v0", "x",
             "kind", "len", "upper", "sum", "hour", "true", "false", "not", "has", "and",
             "or", "in", "any", "all", "deny", "permit", "warn", "when", "because"),
    "compare": ("==", "!=", "<", "<=", ">", ">="),
    "operator": ("+", "-", "*", "/", "%", "??", "."),
}  # fmt: skip


def lexical_class(token: str) -> str:
    if token.startswith('"'):
        return "string"
    if token[0].isdigit():
        return "number"
    if token[0].isalpha() or token[0] == "_":
        return "word"
    if token in SAME_CLASS["compare"]:
        return "compare"
    return "operator" if token in SAME_CLASS["operator"] else "other"


def token_edit(draw, text: str) -> str:
    """One token deleted, doubled, or replaced: by a token of its class (from the file or a
    hostile pool), or by anything."""
    tokens = list(TOKEN.finditer(text))
    if not tokens:
        return text
    target = draw(st.sampled_from(tokens))
    kind = lexical_class(target.group())
    match draw(st.sampled_from(["delete", "double", "other", "same", "same", "same"])):
        case "delete":
            replacement = ""
        case "double":
            replacement = target.group() + " " + target.group()
        case "same" if kind != "other":
            kin = [m.group() for m in tokens if lexical_class(m.group()) == kind]
            replacement = draw(st.sampled_from(kin) | st.sampled_from(SAME_CLASS[kind]))
        case _:
            pool = st.sampled_from(tokens).map(lambda m: m.group()) | st.sampled_from(INSERTS)
            replacement = draw(pool)
    return text[: target.start()] + replacement + text[target.end() :]


def nest(draw, text: str) -> str:
    places = [m.end() for m in re.finditer(r"\bwhen\s", text)]
    if not places:
        return text
    at = draw(st.sampled_from(places))
    return text[:at] + draw(st.sampled_from(DEEP)) + text[at:]


@st.composite
def mutated(draw, rounds: int = 3) -> tuple[Path, str]:
    """A corpus file with up to ``rounds`` damaging edits."""
    path = draw(st.sampled_from(CORPUS))
    text = corpus_text(path)
    for _ in range(draw(st.integers(1, rounds))):
        size = len(text)
        start = draw(st.integers(0, size))
        end = draw(st.integers(start, min(size, start + 40)))
        match draw(st.sampled_from(KINDS)):
            case "token":
                text = token_edit(draw, text)
            case "nest":
                text = nest(draw, text)
            case "delete":
                text = text[:start] + text[end:]
            case "duplicate":
                text = text[:end] + text[start:end] + text[end:]
            case "swap":  # two spans of one length, if they do not overlap
                length = end - start
                other = draw(st.integers(0, max(0, size - length)))
                a, b = sorted((start, other))
                if a + length <= b:
                    text = (
                        text[:a] + text[b : b + length] + text[a + length : b]
                        + text[a : a + length] + text[b + length :]
                    )  # fmt: skip
            case "insert":
                text = text[:start] + " " + draw(st.sampled_from(INSERTS)) + " " + text[start:]
            case "replace":
                text = text[:start] + draw(st.sampled_from(INSERTS)) + text[end:]
    return path, text


def note(text: str) -> None:
    """A hypothesis statistics event, when a hypothesis test is running."""
    with contextlib.suppress(InvalidArgument):
        event(text)


def lines_of(text: str) -> int:
    return len(text.splitlines()) + 1


def assert_parses_or_says_why(text: str, file: str = "fuzz.aigre") -> None:
    result = parse_module(text, file)
    errors = [d for d in result.diagnostics if d.severity is Severity.ERROR]
    note(f"parse: {errors[0].code}" if errors else "parsed")
    assert result.module is not None or errors, "no module and no error"
    for d in result.diagnostics:
        assert str(d.message).strip()
        if d.span is not None and d.span.file == file:
            assert 1 <= d.span.line <= lines_of(text), (d, len(text))
            assert d.span.column >= 1


def assert_compiles_or_says_why(root: Path, texts: dict[str, str]) -> None:
    report = compile_pack(root)  # never raises: that is the property
    errors = [d for d in report.diagnostics if d.severity is Severity.ERROR]
    note(f"first error {errors[0].code}" if errors else "compiled")
    assert report.ok == (report.compiled is not None) == (not errors), errors[:3]
    for d in report.diagnostics:
        assert d.code and str(d.message).strip()
        assert str(d)  # renders
        if d.span is not None and d.span.file in texts:
            assert 1 <= d.span.line <= lines_of(texts[d.span.file]), d
            assert d.span.column >= 1, d
    if report.compiled is not None:
        judge_fixtures(Pack(report.compiled, report.diagnostics))


def judge_fixtures(pack: Pack) -> None:
    """A damaged pack that compiles judges the fixtures as the reference interpreter does."""
    for fixture in FIXTURES:
        document = fixture_input(fixture)
        verdict = pack.evaluate(**document)
        if verdict.fail_closed and verdict.errors[0]["kind"] == "input":
            continue  # the damage changed the usage the pack declares
        expected = reference(pack, document)
        if verdict.fail_closed:
            assert expected == {"decision": verdict.decision, "fail_closed": True, "rules": []}
        else:
            assert from_verdict(verdict) == expected, fixture.name


def pack_with(root: Path, path: Path, text: str) -> dict[str, str]:
    """A pack at ``root`` holding ``text`` as ``path``'s file (and its siblings' envelopes)."""
    policies = {path.name: text}
    if path.parent == BASELINE / "policies" and path.name != "envelopes.aigre":
        policies.update({s.name: corpus_text(s) for s in SIBLINGS})
    write_pack(root, None, manifest=MANIFEST)
    (root / "policies").mkdir(exist_ok=True)
    for name, content in policies.items():
        (root / "policies" / name).write_text(content, encoding="utf-8", errors="surrogatepass")
    return {str(root / "policies" / name): content for name, content in policies.items()}


# ---------------------------------------------------------------- the corpus, whole


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_corpus_file_parses_clean(path):
    result = parse_module(corpus_text(path), str(path))
    assert result.module is not None and not result.diagnostics


# ---------------------------------------------------------------- the parser


@bounded(PARSES)
@given(mutated())
def test_mutated_sources_parse_or_say_why(case):
    _, text = case
    assert_parses_or_says_why(text)


def truncations() -> list[tuple[Path, int]]:
    """``TRUNCATIONS`` cut points spread over the corpus: every N-th offset of each file."""
    total = sum(len(corpus_text(p)) for p in CORPUS)
    step = max(1, total // count(TRUNCATIONS))
    return [(p, cut) for p in CORPUS for cut in range(step // 2, len(corpus_text(p)), step)]


def test_every_truncation_parses_or_says_why():
    cuts = truncations()
    assert len(cuts) >= count(TRUNCATIONS) // 2
    for path, cut in cuts:
        assert_parses_or_says_why(corpus_text(path)[:cut])


@bounded(RANDOM)
@given(
    st.text(max_size=200)
    | st.text(alphabet='rule{}()[]"\\.:,=<>!?#-+*/% \n0123456789aehnw', max_size=200)
)
def test_random_text_parses_or_says_why(text):
    assert_parses_or_says_why(text)


# ---------------------------------------------------------------- the whole compiler


@bounded(COMPILES)
@given(mutated())
def test_mutated_packs_compile_or_say_why(case):
    path, text = case
    with tempfile.TemporaryDirectory(prefix="aigre-fuzz-") as tmp:
        root = Path(tmp) / "pack"
        assert_compiles_or_says_why(root, pack_with(root, path, text))


@bounded(COMPILES)
@given(packs(portable=False, hostile=True), st.data())
def test_damaged_generated_packs_compile_or_say_why(spec, data):
    """A random pack using every construct, its tokens damaged: most still parse, so the
    checker meets a well-formed pack with one wrong name, type, operator or literal."""
    source = spec["source"]
    for _ in range(data.draw(st.integers(1, 3))):
        source = token_edit(data.draw, source)
    with pack_on_disk({**spec, "source": source}) as root:
        report = compile_pack(root)
        errors = [d for d in report.diagnostics if d.severity is Severity.ERROR]
        note(f"first error {errors[0].code}" if errors else "compiled")
        assert report.ok == (report.compiled is not None) == (not errors), errors[:3]
        for d in report.diagnostics:
            assert d.code and str(d.message).strip() and str(d)
        if report.compiled is not None:
            pack = Pack(report.compiled, report.diagnostics)
            for document in data.draw(st.lists(documents(hostile=True), min_size=3, max_size=3)):
                verdict = pack.evaluate(**document)
                if verdict.fail_closed:
                    assert reference(pack, document)["fail_closed"], verdict.errors
                else:
                    assert from_verdict(verdict) == reference(pack, document)


@bounded(RANDOM // 6)
@given(
    st.binary(max_size=300)
    | st.sampled_from([b"\xff\xfe", b"rule \xc3( {}", b"\xef\xbb\xbfrule r { deny when true }"])
)
def test_random_bytes_compile_or_say_why(data):
    with tempfile.TemporaryDirectory(prefix="aigre-fuzz-") as tmp:
        root = write_pack(Path(tmp) / "pack", None, manifest=MANIFEST)
        (root / "policies").mkdir()
        (root / "policies" / "main.aigre").write_bytes(data)
        assert_compiles_or_says_why(root, {})


# ---------------------------------------------------------------- the CLI

TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w+(Error|Exception): ", re.M)


def test_check_on_damaged_packs_never_prints_a_traceback(tmp_path):
    """One ``aigre-policy check`` run over CLI_PACKS damaged packs: one summary line each,
    exit 0 or 1 (docs/cli.md), no traceback on either stream."""
    examples: list[tuple[Path, str]] = []

    @bounded(CLI_PACKS)
    @given(mutated(rounds=4))
    def collect(case):
        examples.append(case)

    collect()
    roots = []
    for i, (path, text) in enumerate(examples):
        root = tmp_path / f"pack{i}"
        pack_with(root, path, text)
        roots.append(str(root))
    done = subprocess.run(
        [sys.executable, "-m", "aigre_policy.cli.main", "check", *roots],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200", "PATH": ""},
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert not TRACEBACK.search(output), output[-3000:]
    assert done.returncode in (0, 1), (done.returncode, output[-3000:])
    summaries = re.findall(r"^(ok|failed) .*pack\d+", done.stdout, re.M)
    assert len(summaries) == len(roots), done.stdout[-3000:]
