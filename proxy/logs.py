"""Logging with the request id on every line, and nothing secret in any line."""

from __future__ import annotations

import json
import logging
import re
import time
from contextvars import ContextVar

import orjson

from proxy.randomness import random_hex16

#: The id of the request being served on this task; "-" outside requests.
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_request_id() -> str:
    """A fresh random request id (16 hex digits), drawn from the OS a block at a time
    (:mod:`proxy.randomness`): one system call per request was a measurable part of a
    license's cost."""
    return random_hex16()


def accept_request_id(candidate: str | None, trusted: bool) -> str:
    """The caller's request id when the caller is trusted and the id is well formed, else a new one."""
    if trusted and candidate and _VALID_REQUEST_ID.match(candidate):
        return candidate
    return new_request_id()


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` from the context of the task that logs (unless the record
    names its request already, as the decision log's records do from their writer thread)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "request_id" not in record.__dict__:
            record.request_id = request_id_var.get()
        return True


class _SecondCachingFormatter(logging.Formatter):
    """A formatter that formats each whole second's time once, not once per line
    (``time.strftime`` is a good part of a line's cost when a busy proxy logs a line per
    license)."""

    _second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The default time format, with the text of the whole second kept between lines."""
        if datefmt:
            return super().formatTime(record, datefmt)
        whole = int(record.created)
        cached = self._second
        if cached[0] != whole:
            cached = (whole, time.strftime("%Y-%m-%d %H:%M:%S", self.converter(whole)))
            self._second = cached
        return f"{cached[1]},{int(record.msecs):03d}"


class TextFormatter(_SecondCachingFormatter):
    """``time level logger [request id] message``: the ``text`` log format."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")


class JsonFormatter(_SecondCachingFormatter):
    """One JSON object per line: time, level, logger, request id, message.

    A decision-log record (``proxy.audit``) keeps its JSON object as the line's
    ``audit`` member, and its kind (``license_decision``, ``admin_action``) as the message.
    """

    def format(self, record: logging.LogRecord) -> str:
        audit = getattr(record, "audit_json", None)
        if audit is not None:
            return self._audit_line(record, audit)
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)

    def _audit_line(self, record: logging.LogRecord, audit: str) -> str:
        # One per license decision: encoded by orjson (a tenth of json's cost), and the
        # record's own JSON, made once on the writer thread, spliced in rather than re-encoded.
        head = orjson.dumps(
            {
                "time": self.formatTime(record),
                "level": record.levelname,
                "logger": record.name,
                "request_id": getattr(record, "request_id", "-"),
                "message": getattr(record, "audit_kind", "audit"),
            }
        )
        return f'{head[:-1].decode()},"audit":{audit}}}'


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once for the ``serve`` command."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
