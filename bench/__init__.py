"""Benchmarks: each module runs as ``python -m bench.<topic>`` and prints its figures."""
