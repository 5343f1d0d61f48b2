"""The network paths a planned firewall or security-group resource opens, as ``action.network``.

Filled only when the pack's input schema declares ``action.network`` (ingress and
egress lists of ``{cidr, protocol, from_port, to_port}``). A path whose CIDR, port or
protocol is unknown until apply cannot be judged, so the resource fails closed; so does
one opening more paths than the model holds (a list cut short could hide the one that
matters). Names providers use for "anywhere" (`*`, `Internet`, `Any`) are written as
``0.0.0.0/0``; a protocol the table does not know is ``all``, the widest reading.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from aigre_policy.adapters.common import AdapterError

MAX_RULES = 64  # the model's bound on each list
ANYWHERE = "0.0.0.0/0"
_ANYWHERE_NAMES = {"*", "internet", "any", "0.0.0.0/0"}
_PROTOCOLS = {
    "tcp": "tcp",
    "6": "tcp",
    "udp": "udp",
    "17": "udp",
    "icmp": "icmp",
    "1": "icmp",
    "icmpv6": "icmp",
    "58": "icmp",
    "-1": "all",
    "all": "all",
    "*": "all",
}
NETWORK_TYPES = frozenset(
    {
        "aws_security_group",
        "aws_security_group_rule",
        "aws_vpc_security_group_ingress_rule",
        "aws_vpc_security_group_egress_rule",
        "google_compute_firewall",
        "azurerm_network_security_rule",
        "azurerm_network_security_group",
    }
)

Rule = dict[str, Any]


def network_of(resource_type: str, after: Any, unknown: Any, address: str) -> dict[str, Any]:
    """``{ingress: [...], egress: [...]}`` the resource opens once applied."""
    if unknown is True:
        raise AdapterError(f"{address}: its rules are unknown until apply")
    values = after if isinstance(after, Mapping) else {}
    marks = unknown if isinstance(unknown, Mapping) else {}
    rules: dict[str, list[Rule]] = {"ingress": [], "egress": []}
    for direction, rule in _rules(resource_type, values, marks, address):
        rules[direction].append(rule)
    for direction, found in rules.items():
        if len(found) > MAX_RULES:
            raise AdapterError(
                f"{address}: opens {len(found)} {direction} paths, more than the {MAX_RULES} "
                "one action may carry"
            )
    return {k: v for k, v in rules.items() if v}


def _rules(
    resource_type: str, values: Mapping[str, Any], marks: Mapping[str, Any], address: str
) -> Iterator[tuple[str, Rule]]:
    if resource_type == "aws_security_group":
        for direction in ("ingress", "egress"):
            _known(marks, direction, address)
            for block in values.get(direction) or []:
                if isinstance(block, Mapping):
                    yield from _aws_block(direction, block)
    elif resource_type == "aws_security_group_rule":
        _known(
            marks,
            ("type", "cidr_blocks", "ipv6_cidr_blocks", "from_port", "to_port", "protocol"),
            address,
        )
        direction = "egress" if values.get("type") == "egress" else "ingress"
        yield from _aws_block(direction, values)
    elif resource_type.startswith("aws_vpc_security_group_"):
        _known(marks, ("cidr_ipv4", "cidr_ipv6", "from_port", "to_port", "ip_protocol"), address)
        direction = "egress" if resource_type.endswith("egress_rule") else "ingress"
        protocol = _protocol(values.get("ip_protocol"))
        for cidr in (values.get("cidr_ipv4"), values.get("cidr_ipv6")):
            if isinstance(cidr, str) and cidr:
                yield (
                    direction,
                    _rule(cidr, protocol, values.get("from_port"), values.get("to_port")),
                )
    elif resource_type == "google_compute_firewall":
        yield from _google(values, marks, address)
    elif resource_type == "azurerm_network_security_rule":
        _known(
            marks,
            (
                "direction",
                "access",
                "protocol",
                "source_address_prefix",
                "source_address_prefixes",
                "destination_address_prefix",
                "destination_address_prefixes",
                "destination_port_range",
                "destination_port_ranges",
            ),
            address,
        )
        yield from _azure(values)
    elif resource_type == "azurerm_network_security_group":
        _known(marks, "security_rule", address)
        for block in values.get("security_rule") or []:
            if isinstance(block, Mapping):
                yield from _azure(block)


def _known(marks: Mapping[str, Any], names: str | tuple[str, ...], address: str) -> None:
    for name in (names,) if isinstance(names, str) else names:
        if _marked(marks.get(name)):
            raise AdapterError(f"{address}: its {name} is unknown until apply")


def _marked(mark: Any) -> bool:
    if mark is True:
        return True
    if isinstance(mark, Mapping):
        return any(_marked(v) for v in mark.values())
    if isinstance(mark, list):
        return any(_marked(v) for v in mark)
    return False


def _aws_block(direction: str, block: Mapping[str, Any]) -> Iterator[tuple[str, Rule]]:
    protocol = _protocol(block.get("protocol"))
    cidrs = [*(block.get("cidr_blocks") or []), *(block.get("ipv6_cidr_blocks") or [])]
    for cidr in cidrs:
        if isinstance(cidr, str) and cidr:
            yield direction, _rule(cidr, protocol, block.get("from_port"), block.get("to_port"))


def _google(
    values: Mapping[str, Any], marks: Mapping[str, Any], address: str
) -> Iterator[tuple[str, Rule]]:
    _known(marks, ("direction", "source_ranges", "destination_ranges", "allow"), address)
    direction = (
        "egress" if str(values.get("direction", "INGRESS")).upper() == "EGRESS" else ("ingress")
    )
    if values.get("disabled") is True:
        return
    key = "destination_ranges" if direction == "egress" else "source_ranges"
    ranges = values.get(key) or ([ANYWHERE] if direction == "egress" else [])
    for allow in values.get("allow") or []:
        if not isinstance(allow, Mapping):
            continue
        protocol = _protocol(allow.get("protocol"))
        ports = allow.get("ports") or [None]
        for cidr in ranges:
            for port in ports:
                low, high = _port_range(port)
                if isinstance(cidr, str) and cidr:
                    yield direction, _rule(cidr, protocol, low, high)


def _azure(values: Mapping[str, Any]) -> Iterator[tuple[str, Rule]]:
    if str(values.get("access", "")).lower() != "allow":
        return
    outbound = str(values.get("direction", "")).lower() == "outbound"
    side = "destination" if outbound else "source"
    prefixes = [
        values.get(f"{side}_address_prefix"),
        *(values.get(f"{side}_address_prefixes") or []),
    ]
    ports = [values.get("destination_port_range"), *(values.get("destination_port_ranges") or [])]
    ports = [p for p in ports if isinstance(p, str) and p] or ["*"]
    protocol = _protocol(values.get("protocol"))
    for prefix in prefixes:
        if not isinstance(prefix, str) or not prefix:
            continue
        for port in ports:
            low, high = _port_range(port)
            yield ("egress" if outbound else "ingress"), _rule(prefix, protocol, low, high)


def _protocol(name: Any) -> str:
    return _PROTOCOLS.get(str(name).strip().lower(), "all")


def _port_range(spec: Any) -> tuple[int, int]:
    """``"22"``, ``"8000-8080"``, ``"*"`` or none, as (first, last)."""
    if spec is None or str(spec).strip() in ("*", ""):
        return 0, 65535
    low, _, high = str(spec).strip().partition("-")
    try:
        first = int(low)
        last = int(high) if high else first
    except ValueError:
        return 0, 65535  # a range it cannot read is every port
    return first, last


def _rule(cidr: str, protocol: str, from_port: Any, to_port: Any) -> Rule:
    if cidr.strip().lower() in _ANYWHERE_NAMES:
        cidr = ANYWHERE
    if protocol == "all":
        first, last = 0, 65535
    elif protocol == "icmp":
        first, last = 0, 0  # ICMP has no ports
    else:
        first = _port(from_port, 0)
        last = _port(to_port, 65535)
        if first > last:
            first, last = 0, 65535
    return {"cidr": cidr, "protocol": protocol, "from_port": first, "to_port": last}


def _port(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default
    try:
        port = int(value)
    except ValueError:
        return default
    return port if 0 <= port <= 65535 else default
