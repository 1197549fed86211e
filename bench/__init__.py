"""Benchmarks and the fuzz harness: ``python -m bench.<topic>``."""
