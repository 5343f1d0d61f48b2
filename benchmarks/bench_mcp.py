"""Time what a tool call gains through the MCP gate, against the upstream called directly.

Run by hand, not in CI (needs `pip install "aigre-policy[mcp]"`)::

    python benchmarks/bench_mcp.py
    python benchmarks/bench_mcp.py --calls 500

The upstream is examples/mcp/ops_server.py; the call is `rollback` of a service the
example pack allows (no approval, no usage limit), mapped through the pack's
mcp.yaml. Four timings, each the median (and p10, p90) of ``--calls`` calls after
a warm-up, the MCP SDK's client making them one after another:

- ``in-process, direct``: the SDK's in-memory transport to the upstream server object;
- ``in-process, gated``: the same, through the proxy's server object (the gate, with
  a SQLite file ledger and a decision log without fsync, in front of the same upstream);
- ``gate.acheck alone``: the gate's own check of the same mapped action, same set-up;
- ``stdio, direct`` and ``stdio, through mcp-proxy``: the upstream as a subprocess,
  then `aigre-policy mcp-proxy` as a subprocess in front of it (one more process and
  one more JSON-RPC hop over pipes); between them ``stdio, proxy, unjudged``: the
  same proxy with a mapping that forwards every call unjudged (``unmapped: forward``),
  which is the SDK's hop alone, without the gate, the mapping or the validation.

It prints what the gate adds (gated minus direct), and that minus the gate's own
check: the proxy's cost beyond judging (mapping, argument validation against the
input schema, recording the outcome, and, over stdio, the extra hop).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aigre_policy.gate import Gate  # noqa: E402
from aigre_policy.mcp.mapping import load_mapping  # noqa: E402
from aigre_policy.mcp.proxy import Upstream, build_server  # noqa: E402
from aigre_policy.mcp.toolgate import ToolGate  # noqa: E402

PACK = ROOT / "examples" / "mcp" / "ops-tools-pack"
SERVER = ROOT / "examples" / "mcp" / "ops_server.py"
AGENT = {"kind": "llm", "id": "agent-7", "trust": 3}
ARGS = {"service": "web", "version": "v1"}


def ops_server() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("ops_server_bench", SERVER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.server


def gate_for(workdir: Path) -> Gate:
    return Gate.from_pack(
        PACK,
        ledger=f"sqlite:///{workdir / 'aigre.db'}",
        log=workdir / "decisions.jsonl",
        log_options={"fsync": "none"},
    )


async def timed(call: Callable[[], Awaitable[Any]], calls: int) -> list[float]:
    for _ in range(max(10, calls // 10)):
        await call()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def row(name: str, samples: list[float]) -> float:
    samples = sorted(samples)
    median = statistics.median(samples)
    p10, p90 = samples[len(samples) // 10], samples[len(samples) * 9 // 10]
    print(f"{name:<30} median {median:9.0f} µs   p10 {p10:9.0f}   p90 {p90:9.0f}")
    return median


async def in_process(calls: int, workdir: Path) -> dict[str, float]:
    out = {}
    async with Client(ops_server()) as direct:
        out["direct"] = row(
            "in-process, direct", await timed(lambda: direct.call_tool("rollback", ARGS), calls)
        )
    gate = gate_for(workdir)
    mapping = load_mapping(PACK, gate.pack.input_schema)
    toolgate = ToolGate(gate, mapping, actor=AGENT)
    async with Client(ops_server()) as upstream_client:
        upstream = Upstream(upstream_client)
        await upstream.refresh()
        async with Client(build_server(toolgate, upstream)) as gated:

            async def call() -> None:
                result = await gated.call_tool("rollback", ARGS)
                assert not result.is_error, result

            out["gated"] = row("in-process, gated", await timed(call, calls))
    rule = mapping.match("rollback")
    assert rule is not None
    counter = iter(range(10**9))

    async def check() -> None:
        action = mapping.propose(rule, "rollback", ARGS)
        action.update(actor=AGENT, id=f"bench-{next(counter)}", requested_at="2025-01-01T00:00:00Z")
        verdict = await gate.acheck(action, actor=AGENT, consume=True)
        assert verdict.decision == "allow", verdict.errors

    cpu_before = time.process_time()
    out["check"] = row("gate.acheck alone", await timed(check, calls))
    out["check_cpu"] = (time.process_time() - cpu_before) / (calls + max(10, calls // 10)) * 1e6
    print(f"{'':<30} CPU of this process {out['check_cpu']:7.0f} µs a check")
    gate.close()
    return out


async def over_stdio(calls: int, workdir: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    direct = StdioServerParameters(command=sys.executable, args=[str(SERVER)], env=env)
    gate_args = ["--pack", str(PACK), "--ledger", f"sqlite:///{workdir / 'stdio.db'}"]
    identity = ["--actor", "agent-7", "--actor-trust", "3"]
    upstream = [sys.executable, str(SERVER)]
    proxy = StdioServerParameters(
        command=sys.executable,
        args=["-m", "aigre_policy.cli.main", "mcp-proxy", *gate_args, *identity, "--", *upstream],
        env=env,
    )
    # the same proxy with a mapping that forwards every call unjudged: the SDK's hop alone
    forward = workdir / "forward.yaml"
    forward.write_text("version: 1\nunmapped: forward\ntools: []\n")
    hop = StdioServerParameters(
        command=sys.executable,
        args=[
            *("-m", "aigre_policy.cli.main", "mcp-proxy", "--pack", str(PACK)),
            *("--mapping", str(forward), "--", *upstream),
        ],
        env=env,
    )
    labels = {
        "direct": "stdio, direct",
        "hop": "stdio, proxy, unjudged",
        "gated": "stdio, through mcp-proxy",
    }
    out = {}
    for name, params in (("direct", direct), ("hop", hop), ("gated", proxy)):
        async with Client(params) as client:
            label = labels[name]
            before = _children_cpu()
            samples = await timed(lambda c=client: c.call_tool("rollback", ARGS), calls)
            spent = _children_cpu() - before
            out[name] = row(label, samples)
            # CPU of the spawned processes (the server; the proxy and the server) per call,
            # warm-up included: what a loaded machine does not inflate
            out[f"{name}_cpu"] = spent / (calls + max(10, calls // 10)) * 1e6
            print(f"{'':<30} CPU of the spawned processes {out[f'{name}_cpu']:7.0f} µs a call")
    return out


def _children_cpu() -> float:
    """User and system seconds of this process's descendants that are running (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / ticks
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - mine
        mine |= frontier
    return sum(times[pid] for pid in mine)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        inproc = anyio.run(in_process, args.calls, workdir)
        stdio = anyio.run(over_stdio, args.calls, workdir)
    for name, times in (("in-process", inproc), ("stdio", stdio)):
        gained = times["gated"] - times["direct"]
        print(
            f"{name}: a call gains {gained:.0f} µs through the gate; "
            f"beyond the gate's own check ({inproc['check']:.0f} µs): "
            f"{gained - inproc['check']:.0f} µs"
        )
    hop = stdio["hop_cpu"] - stdio["direct_cpu"]
    print(f"stdio, CPU: the proxy's hop alone (no gate, no mapping) adds {hop:.0f} µs a call")
    cpu = stdio["gated_cpu"] - stdio["direct_cpu"]
    print(
        f"stdio, CPU: the proxy process adds {cpu:.0f} µs a call; "
        f"beyond the gate's own check ({inproc['check_cpu']:.0f} µs CPU): "
        f"{cpu - inproc['check_cpu']:.0f} µs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
