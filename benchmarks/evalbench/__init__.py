"""The pieces of ``bench_eval.py``: workloads, engines, timing and the report."""
