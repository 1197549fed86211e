"""The decision log's writer: a queue on the event loop, a thread that writes the sinks.

``decision()`` and ``admin()`` only put the record on a ``queue.SimpleQueue``
(no I/O, no JSON on the event loop). One thread wakes every ``INTERVAL``
seconds (at once for a flush or a stop), takes every queued record, turns each
into one JSON line and hands them to the sinks. It never blocks on the queue:
a getter waiting on it would make each ``put`` wake a thread, which costs the
event loop more than the record itself.

- the log stream: one ``logging`` record per decision on logger
  ``license_proxy.audit``, whatever the log level (the JSON formatter puts the
  record in the line's ``audit`` member; the text format appends it);
- the file: the whole batch in one write through a ``RotatingFileHandler``, so
  a busy proxy pays one system call per batch, not per record.

A reload runs two pipelines for a while; their logs share one file handler
(counted per path), so the file is never rotated by two handlers at once.

Nothing is dropped: the queue is unbounded, ``stop()`` drains it before the
thread ends (the pipeline stops after both listeners have drained, on SIGTERM
too), and a record written while the thread is not running (before start,
after stop) is written at once on the caller's thread.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import AsyncIterator
from logging.handlers import RotatingFileHandler

import orjson

from proxy.admin.actions import AdminAction, log_admin_action
from proxy.audit.records import Decision, SubjectWriter, admin_dict, decision_dict
from proxy.audit.settings import AuditSettings

#: The logger the stream sink writes to (its records go to the root logger's handlers).
STREAM_LOGGER = "license_proxy.audit"
#: Most records written in one batch.
BATCH = 512
#: Seconds between the writer's rounds: how long a record may wait in memory.
INTERVAL = 0.05

log = logging.getLogger("proxy.audit")
Record = Decision | AdminAction
#: What the queue holds: records, and flush markers.
_Item = Record | threading.Event


class AuditLog:
    """The decision log of one pipeline.

    :param settings: the validated ``[audit]`` section.
    """

    def __init__(self, settings: AuditSettings | None = None) -> None:
        self.settings = settings or AuditSettings(enabled=False)
        self.enabled = self.settings.active
        key = self.settings.subject_key.value if self.settings.subject_key else None
        self._subjects = SubjectWriter(self.settings.subject, key)
        self._stream = logging.getLogger(STREAM_LOGGER) if self.settings.stream else None
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._file: RotatingFileHandler | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._running = threading.Lock()  # orders a put against the stop's last drain
        self._stopping = False
        self.written = 0
        """Records written so far (every sink), for tests and the shutdown log line."""

    # -- what callers use ----------------------------------------------------------

    def decision(self, decision: Decision) -> None:
        """Record one license decision (never blocks, never raises)."""
        if self.enabled:
            self._put(decision)

    def admin(self, action: AdminAction) -> None:
        """Record one admin action (never blocks, never raises); with the decision log off,
        it is still one line on the ``proxy.admin`` logger.

        The proxy's default ``on_admin_action`` (:class:`proxy.server.ProxyApp`) calls this
        on the current pipeline's log for every admin API call, allowed or refused.
        """
        if self.enabled:
            self._put(action)
        else:
            log_admin_action(action)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait (blocking) until every record queued so far is written; False on timeout."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        self._wake.set()
        return done.wait(timeout)

    # -- lifetime --------------------------------------------------------------------

    def start(self) -> None:
        """Open the file (creating it) and start the writer thread."""
        if not self.enabled or self._thread is not None:
            return
        path = self.settings.file_path
        if path is not None:
            self._file = _open_file(path, self.settings.max_bytes, self.settings.backups)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write every queued record, then stop the thread and close the file (blocking)."""
        thread = self._thread
        if thread is not None:
            self._stopping = True
            self._wake.set()
            thread.join()
            with self._running:
                self._thread = None
        self._drain()
        if self._file is not None:
            _close_file(self._file)
            self._file = None

    async def lifetime(self) -> AsyncIterator[None]:
        """The pipeline's cleanup context: started with it, drained and closed after it."""
        import asyncio

        self.start()
        try:
            yield
        finally:
            await asyncio.to_thread(self.stop)

    # -- the writer --------------------------------------------------------------------

    def _put(self, record: Record) -> None:
        with self._running:
            if self._thread is not None:
                self._queue.put(record)
                return
        self._write([record])

    def _run(self) -> None:
        while True:
            self._wake.wait(INTERVAL)
            self._wake.clear()
            stopping = self._stopping
            self._drain()
            if stopping:
                return

    def _drain(self) -> None:
        """Write every queued record, in batches; release the flushes waiting on them."""
        get = self._queue.get_nowait
        while True:
            batch: list[Record] = []
            flushed: list[threading.Event] = []
            try:
                while len(batch) < BATCH:
                    item = get()
                    if isinstance(item, threading.Event):
                        flushed.append(item)
                    elif item is not None:
                        batch.append(item)
            except queue.Empty:
                pass
            if batch:
                self._write(batch)
            for event in flushed:
                event.set()
            if len(batch) < BATCH:
                return

    def _write(self, batch: list[Record]) -> None:
        try:
            lines = [self._line(record) for record in batch]
        except Exception:
            log.exception("a decision log record could not be encoded")
            return
        with self._lock:
            if self._stream is not None:
                _emit_batch(
                    self._stream,
                    [_log_record(record, line) for record, line in zip(batch, lines, strict=True)],
                )
            file = self._file
            if file is None and self.settings.file_path is not None and self._thread is None:
                # Not started (check-config, a test) or already stopped: append directly.
                with open(self.settings.file_path, "a", encoding="utf-8") as fh:
                    fh.write("".join(f"{line}\n" for line in lines))
            elif file is not None:
                file.handle(logging.makeLogRecord({"msg": "\n".join(lines), "args": None}))
            self.written += len(lines)

    def _line(self, record: Record) -> str:
        if isinstance(record, Decision):
            data = decision_dict(record, self._subjects)
        else:
            data = admin_dict(record, self._subjects)
        return orjson.dumps(data).decode()


#: The rotating file handlers open in this process, by path, with how many logs use each.
_FILES: dict[str, tuple[RotatingFileHandler, int]] = {}
_FILES_LOCK = threading.Lock()


def _open_file(path: str, max_bytes: int, backups: int) -> RotatingFileHandler:
    path = os.path.abspath(path)  # as the handler names it
    with _FILES_LOCK:
        handler, users = _FILES.get(path, (None, 0))
        if handler is None:
            handler = RotatingFileHandler(
                path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
            handler.setFormatter(logging.Formatter("%(message)s"))
        else:
            with handler.lock or threading.Lock():
                # The newer config's rotation settings win (a reload may change them).
                handler.maxBytes = max_bytes
                handler.backupCount = backups
        _FILES[path] = (handler, users + 1)
        return handler


def _close_file(handler: RotatingFileHandler) -> None:
    with _FILES_LOCK:
        path = handler.baseFilename
        _, users = _FILES.get(path, (handler, 1))
        if users > 1:
            _FILES[path] = (handler, users - 1)
            return
        _FILES.pop(path, None)
    handler.close()


#: The attributes every stream record shares, taken once from a real LogRecord: a record
#: per decision is then a dict copy, not LogRecord's constructor (a third of the sink's cost).
_TEMPLATE = logging.LogRecord(
    STREAM_LOGGER, logging.INFO, __file__, 0, "%s %s", None, None
).__dict__


def _emit_batch(logger: logging.Logger, records: list[logging.LogRecord]) -> None:
    """``logger.handle`` for each of ``records``, but a stream handler gets the whole batch
    in one write and one flush: a busy proxy pays a system call per batch, not per line."""
    if logger.disabled:
        return
    records = [entry for entry in records if logger.filter(entry)]
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        handlers += current.handlers
        current = current.parent if current.propagate else None
    if not handlers:
        for entry in records:
            logger.handle(entry)  # logging's last resort, as one record would get
        return
    for handler in handlers:
        kept = [
            entry for entry in records if entry.levelno >= handler.level and handler.filter(entry)
        ]
        if not kept:
            continue
        if type(handler) is not logging.StreamHandler:
            for entry in kept:
                handler.handle(entry)
            continue
        try:
            text = "".join(handler.format(entry) + handler.terminator for entry in kept)
        except Exception:
            for entry in kept:
                handler.handleError(entry)
            continue
        with handler.lock or threading.Lock():
            try:
                handler.stream.write(text)
                handler.flush()
            except Exception:
                handler.handleError(kept[0])


def _log_record(record: Record, line: str) -> logging.LogRecord:
    kind = "license_decision" if isinstance(record, Decision) else "admin_action"
    entry = logging.LogRecord.__new__(logging.LogRecord)
    fields = entry.__dict__
    fields.update(_TEMPLATE)
    created = record.time  # when it was decided, not when the writer got to it
    fields["created"] = created
    fields["msecs"] = (created - int(created)) * 1000
    fields["args"] = (kind, line)
    fields["request_id"] = record.request_id or "-"
    fields["audit_kind"] = kind
    fields["audit_json"] = line
    return entry


__all__ = ["STREAM_LOGGER", "AuditLog"]
