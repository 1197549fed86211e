"""``[audit]``: the decision log's sinks and how it writes the subject."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, model_validator

from proxy.fields import ConfigPath, StrictModel
from proxy.secrets import Secret


class AuditSettings(StrictModel):
    """``[audit]``: one record per license decision and per admin action."""

    enabled: bool = True
    """Keep the decision log at all."""
    stream: bool = True
    """Write each record to the process's log stream (logger ``license_proxy.audit``, as
    ``[log] format`` shapes it: with ``json``, the record is the line's ``audit`` member)."""
    file: ConfigPath | None = None
    """Also append each record, one JSON object per line, to this file (rotated by size).
    ``{pid}`` in the name is replaced by the process id, for worker processes that must
    not share one file."""
    max_bytes: int = Field(default=100 * 1024 * 1024, ge=0)
    """Rotate the file when it would grow past this size (0: never rotate)."""
    backups: int = Field(default=10, ge=0)
    """Rotated files kept (``decisions.jsonl.1`` ... ``.N``); older ones are deleted."""
    subject: Literal["plain", "hash", "omit"] = "plain"
    """How a record names the token's subject: as it is, as ``subject_hash`` (HMAC-SHA256
    with ``subject_key``, hex: the same viewer always hashes alike), or not at all."""
    subject_key: Secret | None = None
    """The HMAC key for ``subject = "hash"``, by reference (``env:NAME`` or ``file:PATH``)."""

    @model_validator(mode="after")
    def _key_for_hash(self) -> AuditSettings:
        if self.subject == "hash" and (self.subject_key is None or not self.subject_key.value):
            raise ValueError('subject = "hash" needs subject_key (a secret reference)')
        return self

    @property
    def file_path(self) -> str | None:
        """The file this process appends to (``{pid}`` filled in), or None."""
        if self.file is None:
            return None
        return str(self.file).replace("{pid}", str(os.getpid()))

    @property
    def active(self) -> bool:
        """True when some sink receives records."""
        return self.enabled and (self.stream or self.file is not None)
