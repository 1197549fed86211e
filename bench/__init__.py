"""The benchmark harness (``make bench``, ``python -m bench``), one module per topic, and the
fuzz harness (``make fuzz``)."""
