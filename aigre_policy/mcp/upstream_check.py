"""Check a mapping against the tools an upstream MCP server declares (E522).

Each entry must match a declared tool (a name that none matches is a typo or a
tool the server dropped), and each argument path it reads must be one the tool's
``inputSchema`` declares; reading an argument the schema leaves optional needs a
``default``, or such a call fails closed at run time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from aigre_policy.diagnostics import Diagnostic, error
from aigre_policy.mcp.mapping import Source, ToolMapping, ToolRule


def check_upstream(
    mapping: ToolMapping, tools: Mapping[str, Mapping[str, Any] | None]
) -> list[Diagnostic]:
    """E522 for each disagreement between ``mapping`` and ``tools`` (name -> inputSchema)."""
    problems: list[Diagnostic] = []
    for rule in mapping.rules:
        matched = [name for name in tools if rule.matches(name)]
        if not matched:
            declared = ", ".join(sorted(tools)) or "none"
            problems.append(
                error(
                    "E522",
                    f"no tool the upstream declares matches `{rule.pattern}`",
                    rule.span,
                    f"the upstream's tools: {declared}",
                )
            )
        for name in matched:
            if mapping.match(name) is rule:  # an earlier entry took it: nothing to read here
                problems.extend(_sources_against(rule, name, tools[name] or {}))
    return problems


def _sources_against(rule: ToolRule, tool: str, schema: Mapping[str, Any]) -> Iterator[Diagnostic]:
    for field_path, source in rule.sources():
        problem = _path_problem(source, schema)
        if problem:
            yield error(
                "E522",
                f"`action.{'.'.join(field_path)}` reads `{source.text}` of `{tool}`: {problem}",
                rule.span,
            )


def _path_problem(source: Source, schema: Mapping[str, Any]) -> str | None:
    node: Any = schema
    optional = False
    for step in source.path:
        properties = node.get("properties") if isinstance(node, Mapping) else None
        if not isinstance(properties, Mapping) or step not in properties:
            return f"the tool's input schema declares no `{step}` there"
        required: Sequence[str] = node.get("required") or ()
        optional = optional or step not in required
        node = properties[step]
    if optional and not source.has_default:
        return "the argument is optional; give the source a `default`"
    if (source.times is not None or source.plus is not None) and not _numeric(node):
        return "`times`/`plus` need a number, and the schema does not say it is one"
    return None


def _numeric(node: Any) -> bool:
    kind = node.get("type") if isinstance(node, Mapping) else None
    kinds = kind if isinstance(kind, list) else [kind]
    return any(k in ("integer", "number") for k in kinds)
