"""Every diagnostic code the product can emit: its severity, category, summary and docs.

A code is raised only if it is registered here: ``Diagnostic``, ``Finding`` and
``LogProblem`` look their code up when they are built, so an unregistered code
fails at once instead of reaching a report. ``docs/diagnostics.md`` lists every
code with its summary; a test keeps the two in step and checks every anchor.

Families, one prefix each:

- ``E``/``W``: the compiler's errors and warnings (docs/diagnostics.md);
- ``L``: the linter, ``check --strict`` (docs/lint.md);
- ``V``: ``log verify``'s problems with a decision log (docs/decision-log.md);
- ``T``: a test run's findings, ``F``: the formatter's (docs/ci.md).

A code is never reused for another meaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


# What each prefix names; a prefix belongs to one family only.
FAMILIES = {
    "E": "compiler error",
    "W": "compiler warning",
    "L": "lint finding",
    "V": "decision-log problem",
    "T": "test-run finding",
    "F": "format finding",
}

# The linter's grouping, which `lint:` severities, SARIF and `--format json` report.
GROUPS = ("bugs", "style", "testing", "performance", "safety")


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    severity: Severity  # the default; `lint:` in pack.yaml may change a lint code's
    category: str  # the stage or tool that raises it: syntax, names, type, pack, rego...
    summary: str
    doc: str  # a page and anchor under the repository root: docs/x.md#fragment
    group: str  # one of GROUPS

    @property
    def family(self) -> str:
        return FAMILIES[self.code[0]]


class UnregisteredCode(LookupError):
    """A code that is not in the registry: a fault of the product, never of a pack."""


def heading_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading: ``E003 — bad `x``` -> ``e003--bad-x``."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


E, W = Severity.ERROR, Severity.WARNING
_DIAGNOSTICS = "docs/diagnostics.md"


def _compiler(code: str, category: str, summary: str, group: str = "bugs") -> Code:
    severity = W if code.startswith("W") else E
    anchor = heading_anchor(f"{code} — {summary}")
    return Code(code, severity, category, summary, f"{_DIAGNOSTICS}#{anchor}", group)


def _lint(code: str, group: str, severity: Severity, summary: str, heading: str) -> Code:
    anchor = heading_anchor(f"{code} — {heading}")
    return Code(code, severity, "lint", summary, f"docs/lint.md#{anchor}", group)


def _log(code: str, summary: str, severity: Severity = E) -> Code:
    return Code(code, severity, "log", summary, "docs/decision-log.md#verifying", "safety")


def _finding(code: str, category: str, summary: str, group: str) -> Code:
    return Code(code, E, category, summary, "docs/ci.md#finding-codes", group)


_ALL = (
    # parsing
    _compiler("E001", "syntax", "syntax error"),
    _compiler("E002", "syntax", "bad literal"),
    _compiler("E003", "syntax", "bad `because` message"),
    _compiler("E004", "syntax", "expressions nest too deeply"),
    # names and declarations
    _compiler("E101", "names", "unknown name"),
    _compiler("E102", "names", "unknown field"),
    _compiler("E103", "names", "unknown envelope value"),
    _compiler("E104", "names", "unknown function"),
    _compiler("E105", "names", "rule declared twice"),
    _compiler("E106", "names", "declared twice"),
    _compiler("E107", "names", "reserved or taken name"),
    _compiler("E108", "names", "unknown rule in a test"),
    _compiler("E109", "names", "bad rule metadata"),
    _compiler("E110", "names", "verdict count"),
    _compiler("E111", "names", "approver groups"),
    _compiler("E112", "names", "unknown usage window"),
    _compiler("E113", "names", "bad test input"),
    _compiler("W114", "names", "test expects nothing", "testing"),
    _compiler("E115", "names", "`current` outside a usage match"),
    # types
    _compiler("E201", "type", "type mismatch"),
    _compiler("E202", "type", "value outside the enum"),
    _compiler("E203", "type", "condition is not a boolean"),
    _compiler("E204", "type", "bad arguments"),
    _compiler("E205", "type", "not an object"),
    _compiler("E206", "type", "`??` or `has` misplaced"),
    _compiler("E207", "type", "unsupported schema construct"),
    _compiler("E210", "type", "unknown time zone"),
    _compiler("E211", "type", "not a calendar date"),
    _compiler("E208", "type", "keyed envelope value without a default"),
    _compiler("E209", "type", "ill-typed keyed envelope value"),
    # optional fields
    _compiler("E301", "optional", "optional field read without a default or guard"),
    _compiler("W302", "optional", "default never used", "style"),
    _compiler("W303", "optional", "`has` is always true", "style"),
    # the pack
    _compiler("E500", "pack", "file or pack not found"),
    _compiler("E501", "pack", "not valid YAML or JSON"),
    _compiler("E502", "pack", "`pack.yaml` breaks the pack schema"),
    _compiler("E503", "pack", "bad input schema"),
    _compiler("E504", "pack", "bad envelope override"),
    _compiler("E505", "pack", "no policies"),
    _compiler("E506", "pack", "unknown sensitive path"),
    # exemptions (exemptions.yaml) and composition (`extends:` in pack.yaml)
    _compiler("E530", "pack", "`exemptions.yaml` breaks the exemption schema"),
    _compiler("E531", "pack", "exemption of an unknown rule"),
    _compiler("E532", "pack", "exemption or disable of a bright line"),
    _compiler("W533", "pack", "exemption expires soon", "safety"),
    _compiler("W534", "pack", "exemption expired", "safety"),
    _compiler("E535", "pack", "bad `extends`"),
    _compiler("E536", "pack", "bad `disable`"),
    _compiler("W537", "pack", "parent rule disabled", "safety"),
    # the MCP mapping (mcp.yaml)
    _compiler("E520", "pack", "`mcp.yaml` breaks the mapping schema"),
    _compiler("E521", "pack", "bad MCP tool mapping"),
    _compiler("E522", "pack", "MCP mapping disagrees with the upstream's tools"),
    # what not every engine checks alike: refused by the check stage on every engine
    _compiler("E604", "target", "input schema construct not checked by every engine"),
    # the Rego target: the Rego emitter (W603), hand-written modules (E605-E608); E601 and
    # E602 are retired (RETIRED)
    _compiler("E601", "rego", "`%` has no exact Rego form"),
    _compiler("E602", "rego", "division by a value that may be zero"),
    _compiler("W603", "rego", "case folding differs between Rego engines"),
    _compiler("E605", "rego", "hand-written module in the wrong package"),
    _compiler("E606", "rego", "hand-written rule id taken"),
    _compiler("E607", "rego", "hand-written module reads the world"),
    _compiler("E608", "rego", "hand-written module does not compile"),
    # YAML test files
    _compiler("E701", "test", "bad test file", "testing"),
    _compiler("E702", "test", "test input file missing or not a mapping", "testing"),
    _compiler("E703", "test", "`set` or `unset` path cannot be reached", "testing"),
    # the linter
    _lint("L101", "bugs", E, "a rule's condition never holds", "condition never holds"),
    _lint("L102", "bugs", E, "a rule's condition always holds", "condition always holds"),
    _lint("L103", "bugs", W, "a rule is shadowed by a stronger rule", "shadowed rule"),
    _lint(
        "L104",
        "bugs",
        E,
        "a constant outside the range the schema allows",
        "constant outside the schema's range",
    ),
    _lint(
        "L105",
        "bugs",
        W,
        "a permit a restrictive rule overrules on some input",
        "permit overruled on some input",
    ),
    _lint("L201", "style", W, "a rule without a `because` message", "no `because` message"),
    _lint("L202", "style", W, "a rule without a severity", "no severity"),
    _lint("L203", "style", W, "an envelope value no rule reads", "envelope value no rule reads"),
    _lint("L204", "style", W, "a usage no rule reads", "usage no rule reads"),
    _lint("L210", "style", E, "an unknown lint code", "unknown lint code"),
    _lint(
        "L211",
        "style",
        E,
        "a suppression without a code or a reason",
        "suppression without codes or reason",
    ),
    _lint(
        "L212",
        "style",
        W,
        "a suppression that suppresses nothing",
        "suppression that suppresses nothing",
    ),
    _lint("L301", "testing", W, "a rule no test exercises", "rule no test exercises"),
    _lint(
        "L501",
        "safety",
        E,
        "a permit admits every action of a kind",
        "permit admitting a whole kind in production",
    ),
    _lint(
        "L502",
        "safety",
        E,
        "a proposer's claim can loosen a rule's verdict",
        "a claim that can loosen a verdict",
    ),
    # log verify
    _log("V001", "the line is not a log entry"),
    _log("V002", "the entry's bytes do not match its hash: edited"),
    _log("V003", "`seq` jumps: entries removed or moved"),
    _log("V004", "`seq` goes back or repeats: an entry moved, duplicated or inserted"),
    _log("V005", "`prev` is not the hash of the entry before: replaced or inserted"),
    _log("V006", "the first entry does not start a chain: earlier entries missing"),
    _log("V007", "the last line is torn: a writer stopped mid-entry", W),
    _log("V008", "the `--anchor` hash is not in the log"),
    _log("V009", "the line is not in canonical form"),
    _log("V010", "an object in the line repeats a key"),
    _log("V011", "a checkpoint line is not a canonical checkpoint"),
    _log("V012", "a checkpoint's signature does not hold under `--key`"),
    _log("V013", "a checkpoint covers more entries than the log holds: tail cut"),
    _log("V014", "the log does not match a checkpoint: rewritten"),
    _log("V015", "no checkpoint signed by `--key` covers the log"),
    _log("V016", "the ledger holds checkpoints the checkpoint file lacks"),
    # test runs and the formatter
    _finding("T001", "test-run", "a bright-line test fails", "testing"),
    _finding("T002", "test-run", "a test cannot run", "testing"),
    _finding("T003", "test-run", "a bright-line gap in the tests", "testing"),
    _finding("T004", "test-run", "an invariant is broken", "testing"),
    _finding("T005", "test-run", "a test-run check fails", "testing"),
    _finding("F001", "format", "a policy file is not in the canonical layout", "style"),
    _finding("F002", "format", "a policy file cannot be formatted", "style"),
    _finding(
        "F003",
        "format",
        "the canonical layout would change what a file says (a formatter fault)",
        "style",
    ),
)

REGISTRY: dict[str, Code] = {c.code: c for c in _ALL}

# Codes no longer raised. They stay registered and documented, so an old report still
# reads, and are never reused for another meaning. E601, E602: `%` and a division by a
# value that may be zero were refused for the Rego target; every engine runs them now.
RETIRED = frozenset({"E601", "E602"})


def lookup(code: str) -> Code:
    """The registered code, or ``UnregisteredCode``: nothing raises a code the docs lack."""
    try:
        return REGISTRY[code]
    except KeyError:
        raise UnregisteredCode(f"diagnostic code {code!r} is not registered") from None


def require(code: str) -> str:
    """``code`` itself once it is known to be registered (for constants and checks)."""
    lookup(code)
    return code
