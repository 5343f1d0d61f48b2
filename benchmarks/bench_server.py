"""Requests per second and latency of ``aigre-policy serve`` on loopback.

Run by hand, not in CI::

    python benchmarks/bench_server.py                    # /v1/data and /v1/check (SQLite)
    python benchmarks/bench_server.py --postgres         # and /v1/check on PostgreSQL
    python benchmarks/bench_server.py --only data --requests 20000 --clients 16 --processes 2

It starts ``aigre-policy serve`` on the default pack in its own process (127.0.0.1, a
free port, a fresh SQLite ledger) and drives it from this process with ``--clients``
keep-alive connections, each sending one request after the other: a hand-written HTTP/1.1
client on asyncio, so that the client's own cost stays small beside the server's (the
machine's CPUs are shared by both), split over ``--processes`` client processes. For each
endpoint it prints requests/s, p50, p90 and p99 in milliseconds, how many answers were
not 200, and the server process's own CPU time per request.

- ``data``: ``POST /v1/data/aigre/aigre_baseline/decision`` with an LLM rollback
  (pure evaluation: nothing recorded);
- ``check``: ``POST /v1/check`` with the same action (the gate: usage from the
  ledger, the decision recorded in it), anonymous;
- ``check-pg`` (with ``--postgres [URL]``): the same on a PostgreSQL ledger, in a fresh
  schema of the server at URL, else of ``AIGRE_TEST_POSTGRES_URL``, else of a throwaway
  cluster (``tests/pg_throwaway.py``: test settings, fsync off, on this machine).

Each row gets a server of its own, started afresh.

What it flatters: one small action, so parsing and encoding stay small; every client
on loopback; ``check`` runs without a log (``--log`` adds one, synced per entry); the
same action checked again and again, so the ledger's window holds one current row;
``check-pg`` with PostgreSQL on the same machine (a loopback round trip) and no fsync.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "policy_packs" / "aigre-baseline"
FIXTURE = ROOT / "fixtures" / "actions" / "llm-rollback.yaml"


def _request(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(port: int, request: bytes, count: int, latencies: list[float], bad: list[int]):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(count):
        started = time.perf_counter()
        writer.write(request)
        status_line = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        if b" 200 " not in status_line:
            bad.append(1)
    writer.close()


async def _drive(port: int, request: bytes, total: int, clients: int) -> tuple[float, list, int]:
    latencies: list[float] = []
    bad: list[int] = []
    per = total // clients
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, request, per, latencies, bad) for _ in range(clients)))
    return time.perf_counter() - started, latencies, len(bad)


def _drive_in_process(job: tuple[int, bytes, int, int]) -> tuple[float, list, int]:
    return asyncio.run(_drive(*job))


def _run(port: int, request: bytes, total: int, clients: int, processes: int):
    """``total`` requests from ``clients`` connections spread over ``processes`` processes
    (one process: this one); the elapsed time is the slowest process's."""
    if processes == 1:
        return asyncio.run(_drive(port, request, total, clients))
    import multiprocessing

    share = (port, request, total // processes, max(1, clients // processes))
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        results = pool.map(_drive_in_process, [share] * processes)
    elapsed = max(r[0] for r in results)
    return elapsed, [x for r in results for x in r[1]], sum(r[2] for r in results)


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (Linux), to tell the server's cost per
    request apart from what other processes on a shared machine take."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _serving(ledger: str, log: str | None) -> Iterator[tuple[int, int]]:
    """``aigre-policy serve`` on the default pack and ``ledger``: (port, pid)."""
    port = _free_port()
    command = [sys.executable, "-m", "aigre_policy.cli.main", "serve", str(PACK)]
    command += ["--port", str(port), "--ledger", ledger]
    if log:
        command += ["--log", log]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield port, server.pid
    finally:
        server.terminate()
        server.wait(60)


@contextlib.contextmanager
def _postgres(given: str) -> Iterator[str]:
    """A fresh ledger on ``given`` (a URL), on ``AIGRE_TEST_POSTGRES_URL``, or on a
    throwaway cluster (``tests/pg_throwaway.py``: test settings, fsync off)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres_cluster import Cluster, Server

    given = given if given != "throwaway" else os.environ.get("AIGRE_TEST_POSTGRES_URL", "")
    cluster = None if given else Cluster.start()
    server = Server(given or cluster.url, cluster)  # type: ignore[union-attr]
    try:
        yield server.create_ledger()
    finally:
        server.close()
        if cluster is not None:
            cluster.stop("immediate")
            cluster.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--only", choices=("data", "check", "check-pg"))
    parser.add_argument(
        "--processes", type=int, default=1, help="client processes (the clients are split)"
    )
    parser.add_argument("--log", action="store_true", help="check with a decision log")
    parser.add_argument(
        "--postgres",
        nargs="?",
        const="throwaway",
        metavar="URL",
        help="add the check-pg row: /v1/check on a PostgreSQL ledger (URL of a server, "
        "else AIGRE_TEST_POSTGRES_URL, else a throwaway cluster)",
    )
    args = parser.parse_args()
    action = yaml.safe_load(FIXTURE.read_text())["action"]
    case = yaml.safe_load(FIXTURE.read_text())
    document = {"action": action, "context": case["context"], "usage": case["usage"]}
    data_body = json.dumps({"input": document})
    runs = {
        "data": _request("/v1/data/aigre/aigre_baseline/decision", data_body.encode()),
        "check": _request("/v1/check", json.dumps(action).encode()),
        "check-pg": _request("/v1/check", json.dumps(action).encode()),
    }
    wanted = [args.only] if args.only else ["data", "check"]
    if args.postgres and not args.only:
        wanted.append("check-pg")
    if "check-pg" in wanted and not args.postgres:
        args.postgres = "throwaway"
    print(
        f"{'endpoint':8} {'requests':>8} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} "
        f"{'p99 ms':>7} {'not 200':>7} {'server CPU us/req':>17}"
    )
    with tempfile.TemporaryDirectory() as scratch, contextlib.ExitStack() as stack:
        for name in wanted:
            if name == "check-pg":
                ledger = stack.enter_context(_postgres(args.postgres))
            else:
                ledger = f"sqlite:///{scratch}/{name}.db"
            log = f"{scratch}/{name}.jsonl" if args.log else None
            with _serving(ledger, log) as (port, pid):
                request = runs[name]
                _run(port, request, 500, args.clients, 1)  # warm up
                cpu = _cpu_seconds(pid)
                elapsed, latencies, bad = _run(
                    port, request, args.requests, args.clients, args.processes
                )
                cpu = _cpu_seconds(pid) - cpu
            q = statistics.quantiles(latencies, n=100)
            rate = len(latencies) / elapsed
            print(
                f"{name:8} {len(latencies):8d} {rate:8.0f} {q[49] * 1e3:7.2f} "
                f"{q[89] * 1e3:7.2f} {q[98] * 1e3:7.2f} {bad:7d} "
                f"{cpu / len(latencies) * 1e6:17.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
