"""The text view of a verdict: the decision, then each fired rule with its evidence."""

from __future__ import annotations

import json
import os
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from aigre_policy.cli.output import piped
from aigre_policy.verdict import Verdict

STYLES = {
    "allow": "bold green",
    "escalate": "bold yellow",
    "require_approval": "bold dark_orange",
    "deny": "bold red",
    "permit": "green",
    "warn": "yellow",
}


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _rule_block(rule: dict[str, Any], fit: bool = True, pack_dir: str | None = None) -> Group:
    loc = rule["location"]
    file = loc["file"] if pack_dir is None else os.path.join(pack_dir, loc["file"])
    head = Text.assemble(
        (f"{rule['verdict']:<17}", STYLES.get(rule["verdict"], "")),
        (rule["id"], "bold"),
        (f"  [{rule['category']}, {rule['severity']}]  ", "dim"),
        (f"{file}:{loc['line']}:{loc['column']}", "dim"),
    )
    lines: list[Any] = [head, Text(f"    {rule['message']}")]
    if rule.get("approvers"):
        lines.append(Text("    approvers: " + ", ".join(rule["approvers"]), style="dark_orange"))
    if rule.get("escalate_to"):
        lines.append(Text("    escalate to: " + ", ".join(rule["escalate_to"]), style="yellow"))
    if rule["bindings"] or rule["comparisons"]:
        table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False, expand=fit)
        table.add_column(style="cyan", overflow="fold", ratio=2)
        table.add_column(overflow="fold", ratio=3)
        for path, value in rule["bindings"].items():
            table.add_row(f"    {path}", _value(value))
        for comparison in rule["comparisons"]:
            mark = "[green]true[/green]" if comparison["result"] else "[red]false[/red]"
            table.add_row(
                f"    {comparison['expression'] or comparison['op']}",
                f"{_value(comparison['left'])} {comparison['op']} {_value(comparison['right'])}"
                f"  → {mark}",
            )
        lines.append(table)
    return Group(*lines)


def show_verdict(
    console: Console, verdict: Verdict, source: str = "", pack_dir: str | None = None
) -> None:
    """The verdict in a panel: fitted to a terminal's width; in a pipe, as wide as its
    content, so no identifier, value or path is split across lines. ``pack_dir``: the pack
    directory as given, so rule locations read from the current directory like every
    other path the CLI prints (the verdict document keeps them relative to the pack)."""
    fit = not piped(console)
    style = STYLES[verdict.decision]
    title = Text.assemble(("decision: ", "bold"), (verdict.decision.upper(), style))
    if verdict.fail_closed:
        title.append("  (failed closed)", style="red")
    elif verdict.default_applied:
        title.append("  (pack default)", style="dim")
    body: list[Any] = []
    if verdict.approvers:
        body.append(Text("approval needed from: " + ", ".join(verdict.approvers)))
    if verdict.escalate_to:
        body.append(Text("escalated to: " + ", ".join(verdict.escalate_to)))
    if not verdict.fired and not verdict.fail_closed:
        # a warning may have fired: it advises, it does not decide
        quiet = "no rule decided" if verdict.warnings else "no rule fired"
        body.append(Text(quiet, style="dim"))
    for rule in verdict.fired:
        body.append(_rule_block(rule, fit, pack_dir))
    for warning in verdict.warnings:
        body.append(_rule_block(warning, fit, pack_dir))
    for lifted in getattr(verdict, "exempted", ()):
        body.append(
            Text(
                f"exempted: {lifted['rule']} by {lifted['exemption']} (owner {lifted['owner']}, "
                f"ticket {lifted['ticket']}, until {lifted['expires']})",
                style="yellow",
            )
        )
    for problem in verdict.errors:
        where = problem["path"] or "<input>"
        body.append(Text(f"{problem['kind']} error at {where}: {problem['message']}", style="red"))
    pack = verdict.pack
    footer = Text(
        f"{pack['name']} {pack['version']} {pack['digest'][:19]}…  "
        f"decision {verdict.decision_id}  {verdict.elapsed_us:.1f} µs"
        + (f"  {source}" if source else ""),
        style="dim",
    )
    console.print(
        Panel(
            Group(*body, Text(""), footer) if body else footer,
            title=title,
            title_align="left",
            border_style=style,
            expand=fit,
        )
    )


def show_summary(console: Console, judged: list[tuple[str, Verdict]]) -> None:
    """Many verdicts: one row each (input, decision, rules), then the count per decision."""
    table = Table(title="verdicts", title_justify="left", box=None, pad_edge=False)
    table.add_column("input", overflow="fold")
    table.add_column("decision", no_wrap=True)
    table.add_column("rules", overflow="fold")
    counts: dict[str, int] = {}
    for source, verdict in judged:
        decision = verdict.decision + (" (failed closed)" if verdict.fail_closed else "")
        counts[decision] = counts.get(decision, 0) + 1
        rules = ", ".join(verdict.rule_ids) or ("-" if verdict.fail_closed else "(default)")
        table.add_row(source, Text(decision, style=STYLES[verdict.decision]), rules)
    console.print(table)
    console.print(
        f"{len(judged)} inputs: " + ", ".join(f"{n} {d}" for d, n in sorted(counts.items())),
        highlight=False,
        markup=False,
    )


def show_silent(console: Console, silent: list[Any]) -> None:
    """``--explain``: each rule that did not fire, with the checks that kept it silent."""
    if not silent:
        console.print(Text("every rule fired", style="dim"))
        return
    console.print(Text(f"{len(silent)} silent rule{'s' if len(silent) != 1 else ''}", "bold"))
    for rule in silent:
        loc = rule.location
        console.print(
            Text.assemble(
                (f"{rule.verdict:<17}", STYLES.get(rule.verdict, "")),
                (rule.rule, "bold"),
                (f"  {loc['file']}:{loc['line']}:{loc['column']}", "dim"),
            )
        )
        if rule.error:
            console.print(Text(f"    failed: {rule.error}", style="red"))
        for check in rule.checks:
            mark = ("true", "green") if check.result else ("false", "red")
            if check.op:
                shown = f"{_value(check.left)} {check.op} {_value(check.right)}  → "
            elif isinstance(check.left, bool):
                shown = "→ "
            else:
                shown = f"{_value(check.left)}  → "
            console.print(Text.assemble(f"    {check.expression}  ", shown, mark))


def show_profile(console: Console, times: list[Any], shown: int = 20) -> None:
    """``--profile``: the costliest rules first, with their share of all rules' time."""
    total = sum(t.total_us for t in times) or 1.0
    inputs = times[0].inputs if times else 0
    table = Table(
        title=f"rule time over {inputs} input{'s' if inputs != 1 else ''} "
        "(reference interpreter; read the ranking)",
        title_justify="left",
        box=None,
        pad_edge=False,
    )
    table.add_column("rule", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("µs per input", justify="right")
    table.add_column("share", justify="right")
    for t in times[:shown]:
        table.add_row(
            t.rule,
            Text(t.verdict, style=STYLES.get(t.verdict, "")),
            f"{t.mean_us:.1f}",
            f"{100 * t.total_us / total:.0f}%",
        )
    console.print(table)
    if len(times) > shown:
        console.print(f"... and {len(times) - shown} cheaper rules", highlight=False)
