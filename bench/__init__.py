"""The benchmark harness: ``make bench`` (``python -m bench``) and one module per topic."""
