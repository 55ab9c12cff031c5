"""Benchmarks: scripts run by hand (`python -m bench.<name>`), each against its ceiling in the same run.

Not part of the package and not run in CI, except each script's seconds-long `--smoke` mode
(tests/test_bench_smoke.py). BENCHMARKS.md holds the latest figures and how to reproduce them.
"""
