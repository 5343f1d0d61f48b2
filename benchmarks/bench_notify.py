"""What notifications cost a check that waits for an approval.

Run by hand, not in CI::

    python benchmarks/bench_notify.py

A one-rule pack holds every action for `finops`; 400 distinct actions are checked on a
SQLite ledger (after 50 to warm up) without `notify`, with one webhook (a row queued per
check), and with the default repeat rule (one more indexed look-up). Delivery is off
(``background=False``): the numbers are the check's own. Prints p50 and p99 per check.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import gate_action, write_pack

from aigre_policy.gate import Gate
from aigre_policy.gate.notify import Notify, Webhook

POLICY = """
rule big-spend {
  require_approval by ["finops"] when action.cost.estimated_usd > 100
}
"""


def run(root: Path, pack: Path, label: str, **options: object) -> None:
    gate = Gate.from_pack(pack, ledger=f"sqlite:///{root}/{label}.db", **options)
    for n in range(50):
        gate.check(gate_action(n, cost={"estimated_usd": 500}))
    times = []
    for n in range(50, 450):
        started = time.perf_counter()
        gate.check(gate_action(n, cost={"estimated_usd": 500}))
        times.append(time.perf_counter() - started)
    gate.close()
    times.sort()
    p50, p99 = times[len(times) // 2] * 1e6, times[int(len(times) * 0.99)] * 1e6
    print(f"{label:<22} p50 {p50:6.0f} µs  p99 {p99:7.0f} µs")


def main() -> None:
    root = Path(tempfile.mkdtemp())
    pack = write_pack(root / "pack", POLICY)
    hook = Webhook("http://127.0.0.1:9/hook", timeout=1)
    run(root, pack, "without notify")
    run(root, pack, "notify", notify=Notify((hook,), background=False, renotify_after=None))
    run(root, pack, "notify, repeat rule", notify=Notify((hook,), background=False))


if __name__ == "__main__":
    main()
