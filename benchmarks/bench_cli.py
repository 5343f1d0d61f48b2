"""Time the ``aigre-policy`` command's cold start: what a policy author waits for.

Run by hand, not in CI::

    python benchmarks/bench_cli.py
    python benchmarks/bench_cli.py --runs 11

Each command runs ``--runs`` times (default 7) in a fresh interpreter, with this
checkout's ``aigre_policy`` first on ``PYTHONPATH``; the table shows the median and
the fastest wall time in milliseconds, the median CPU time, the median's excess over
``python -c pass`` on the same machine (the interpreter's own start, which no change
here can remove) and the goal. ``eval`` and ``check`` run on the default pack; the first
run of each fills the compile cache (in a scratch directory), so the median is the
warm-cache time an author sees on the second and later runs. The "cpu ms" column (user
plus system time) is the figure to compare on a busy machine, where the wall time also
counts the wait for a CPU. ``--no-cache`` rows show what a cold compile costs. The
children may write bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped), as an installed
copy has it.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACK = "policy_packs/aigre-baseline"
ACTION = "fixtures/actions/llm-patch-401-lines.yaml"
CLI = [sys.executable, "-m", "aigre_policy.cli.main"]

# (label, argv, goal in ms or None)
COMMANDS: tuple[tuple[str, list[str], float | None], ...] = (
    ("python -c pass", [sys.executable, "-c", "pass"], None),
    ("--help", [*CLI, "--help"], 100.0),
    ("--version", [*CLI, "--version"], 100.0),
    ("eval (default pack)", [*CLI, "eval", PACK, "--action", ACTION], 200.0),
    ("check (default pack)", [*CLI, "check", PACK], 200.0),
    ("eval --no-cache", [*CLI, "eval", PACK, "--action", ACTION, "--no-cache"], None),
    ("check --no-cache", [*CLI, "check", PACK, "--no-cache"], None),
)


def _supports_no_cache() -> bool:
    probe = subprocess.run(
        [*CLI, "eval", "--help"], cwd=REPO, env=_env(), capture_output=True, text=True
    )
    return "--no-cache" in probe.stdout


_SCRATCH = tempfile.mkdtemp(prefix="bench-cli-")  # the cache and its key, not the user's


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["AIGRE_CACHE_DIR"] = os.path.join(_SCRATCH, "cache")
    env["XDG_CONFIG_HOME"] = os.path.join(_SCRATCH, "config")
    env.pop("AIGRE_NO_CACHE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["NO_COLOR"] = "1"
    # An installed package has its bytecode compiled; time that, not a recompile per run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def time_command(argv: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) milliseconds of ``runs`` fresh runs of ``argv`` (exit
    codes are not checked: ``eval`` exits 3 for an escalation). On a busy machine the wall
    time also counts the wait for a CPU; the CPU time is the process's own work."""
    walls, cpus = [], []
    env = _env()
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        walls.append((time.perf_counter() - start) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        cpus.append(used * 1000)
    return walls, cpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command (default 7)")
    args = parser.parse_args(argv)
    with_cache = _supports_no_cache()
    baseline = None
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(
        f"{'command':<24} {'median ms':>10} {'min ms':>8} {'cpu ms':>8} {'over python':>12} "
        f"{'goal':>8}"
    )
    for label, command, goal in COMMANDS:
        if "--no-cache" in command and not with_cache:
            continue
        times, cpu = time_command(command, args.runs)
        median = statistics.median(times)
        if baseline is None:
            baseline = median
        over = f"{median - baseline:+.0f}" if label != "python -c pass" else ""
        target = f"<= {goal:.0f}" if goal else ""
        verdict = "" if goal is None else ("ok" if median <= goal else "MISS")
        print(
            f"{label:<24} {median:>10.0f} {min(times):>8.0f} {statistics.median(cpu):>8.0f} "
            f"{over:>12} {target:>8} {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
