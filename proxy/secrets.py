"""Secret references in configuration: ``env:NAME``, ``file:PATH``, ``hex:...``, ``base64:...``.

A secret is resolved once, when the config is validated, and its value never
appears in a ``repr``, a log line or an error message: errors name the
reference (``env:AXINOM_KEY``), never what it points to.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

from pydantic import GetCoreSchemaHandler, ValidationInfo
from pydantic_core import core_schema

#: Set by the config loader so that ``file:`` references resolve next to the config file.
BASE_DIR_CONTEXT_KEY = "base_dir"


class Secret:
    """A resolved secret: the bytes, and the reference they came from (safe to show)."""

    __slots__ = ("_value", "reference")

    def __init__(self, value: bytes, reference: str) -> None:
        self._value = value
        self.reference = reference

    @property
    def value(self) -> bytes:
        """The secret's bytes."""
        return self._value

    def text(self) -> str:
        """The secret as UTF-8 text (PEM keys, passwords); stripped of surrounding whitespace."""
        return self._value.decode("utf-8").strip()

    def __repr__(self) -> str:
        return f"Secret({self.reference!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(
            _validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda s: s.reference, return_schema=core_schema.str_schema()
            ),
        )


def resolve_secret(reference: str, base_dir: Path | None = None) -> Secret:
    """Resolve a reference to its bytes; raise ``ValueError`` naming the reference on failure.

    ``env:NAME`` reads an environment variable, ``file:PATH`` a file (relative
    to the config file), ``hex:`` and ``base64:`` decode inline development
    values; anything else is taken literally as UTF-8.
    """
    scheme, sep, rest = reference.partition(":")
    if not sep:
        return Secret(reference.encode(), "inline value")
    if scheme == "env":
        value = os.environ.get(rest)
        if value is None:
            raise ValueError(f"environment variable {rest!r} is not set")
        return Secret(value.encode(), reference)
    if scheme == "file":
        path = Path(rest).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            return Secret(path.read_bytes(), reference)
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if scheme == "hex":
        try:
            return Secret(bytes.fromhex(rest), "inline hex value")
        except ValueError:
            raise ValueError("not valid hex") from None
    if scheme in ("base64", "b64"):
        try:
            return Secret(base64.b64decode(rest, validate=True), "inline base64 value")
        except (binascii.Error, ValueError):
            raise ValueError("not valid base64") from None
    return Secret(reference.encode(), "inline value")


def _validate(value: Any, info: ValidationInfo) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a string reference: env:NAME, file:PATH, hex:... or base64:...")
    base_dir = (info.context or {}).get(BASE_DIR_CONTEXT_KEY)
    return resolve_secret(value, base_dir)


#: A config field holding a secret reference, resolved at validation.
SecretRef = Secret
