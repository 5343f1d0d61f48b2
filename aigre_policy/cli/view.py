"""The text view of a verdict: the decision, then each fired rule with its evidence."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

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


def _rule_block(rule: dict[str, Any]) -> Group:
    loc = rule["location"]
    head = Text.assemble(
        (f"{rule['verdict']:<17}", STYLES.get(rule["verdict"], "")),
        (rule["id"], "bold"),
        (f"  [{rule['category']}, {rule['severity']}]  ", "dim"),
        (f"{loc['file']}:{loc['line']}:{loc['column']}", "dim"),
    )
    lines: list[Any] = [head, Text(f"    {rule['message']}")]
    if rule.get("approvers"):
        lines.append(Text("    approvers: " + ", ".join(rule["approvers"]), style="dark_orange"))
    if rule.get("escalate_to"):
        lines.append(Text("    escalate to: " + ", ".join(rule["escalate_to"]), style="yellow"))
    if rule["bindings"] or rule["comparisons"]:
        table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False, expand=True)
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


def show_verdict(console: Console, verdict: Verdict, source: str = "") -> None:
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
        body.append(Text("no rule fired", style="dim"))
    for rule in verdict.fired:
        body.append(_rule_block(rule))
    for warning in verdict.warnings:
        body.append(_rule_block(warning))
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
        )
    )
