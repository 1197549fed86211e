"""The text log format: what logging's own formatter writes, at less cost per line."""

from __future__ import annotations

import logging

from proxy.logs import TextFormatter

PLAIN = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord("proxy.test", logging.INFO, "f.py", 1, "a %s line", ("log",), None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    record.request_id = "0123456789abcdef"
    return record


def test_text_lines_match_loggings_own_formatter_across_seconds():
    ours = TextFormatter()
    for created in (1.0e9, 1.0e9 + 0.001, 1.0e9 + 0.999, 1.0e9 + 1.0, 1.0e9 + 61.5, 1.0e9 + 0.5):
        record = _record(created)
        assert ours.format(record) == PLAIN.format(record)
