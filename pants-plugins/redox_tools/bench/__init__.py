"""Benchmarks and long fuzz runs: `python -m redox_tools.bench.<name>` prints figures."""
