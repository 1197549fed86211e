"""Config errors in words a person acts on: pydantic's messages rephrased, and "did you mean".

pydantic says ``String should match pattern '(?i)^(DEBUG|INFO|...)$'`` and
``Extra inputs are not permitted``; an operator wants ``must be one of DEBUG,
INFO, ...`` and ``unknown key (did you mean 'level'?)``. :func:`message` turns
one pydantic error into such a sentence, knowing the model that was validated,
so an unknown key is compared with the keys its table does accept.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

#: A pattern that only lists alternatives: ``^(a|b|c)$``, optionally case-insensitive.
_CHOICES = re.compile(r"^(?:\(\?i\))?\^\(([\w|-]+)\)\$$")


def suggestion(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``candidates``, or an empty string."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unclaimed_hint(path: str, claimed: Iterable[str]) -> str:
    """ "did you mean" for a key path nobody reads, among the keys read beside it."""
    parent, _, key = path.rpartition(".")
    depth = parent.count(".") + 1 if parent else 0
    siblings = {
        known.split(".")[depth]
        for known in claimed
        if (known.startswith(parent + ".") if parent else True) and known.count(".") >= depth
    }
    return suggestion(key, siblings)


def message(error: dict[str, Any], model: Any = None) -> str:
    """The sentence for one pydantic error (``model``: what was validated, for unknown keys)."""
    kind = error.get("type", "")
    loc = tuple(error.get("loc", ()))
    if kind == "extra_forbidden":
        return "unknown key" + _unknown_key_hint(model, loc)
    if kind == "missing":
        return "missing required key"
    if kind == "bool_type":
        return "must be true or false (a TOML boolean, not a string or a number)"
    if kind == "string_pattern_mismatch":
        pattern = str((error.get("ctx") or {}).get("pattern", ""))
        choices = _CHOICES.match(pattern)
        if choices:
            return "must be one of " + ", ".join(choices[1].split("|"))
        return f"must match the pattern {pattern}"
    text = str(error.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text


def _unknown_key_hint(model: Any, loc: tuple[Any, ...]) -> str:
    if model is None or not loc or not isinstance(loc[-1], str):
        return ""
    holder = model
    for part in loc[:-1]:
        holder = _step(holder, part)
        if holder is None:
            return ""
    models = [m for m in _members(holder) if _is_model(m)]
    names: set[str] = set()
    for found in models:
        for name, field in found.model_fields.items():
            names.add(field.alias or name)
    return suggestion(loc[-1], names)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _members(tp: Any) -> list[Any]:
    """The alternatives a type stands for (a union's members, an Annotated's base)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if origin is typing.Union or isinstance(tp, types.UnionType):
        found: list[Any] = []
        for member in typing.get_args(tp):
            found.extend(_members(member))
        return found
    return [tp]


def _step(tp: Any, part: Any) -> Any:
    """The type found at ``part`` (a key, an index, a union member's name) inside ``tp``."""
    for member in _members(tp):
        if _is_model(member):
            if isinstance(part, str):
                for name, field in member.model_fields.items():
                    if part in (name, field.alias):
                        return field.annotation
                if part == member.__name__:
                    return member
            continue
        origin = typing.get_origin(member)
        args = typing.get_args(member)
        if origin in (list, tuple, set, frozenset) and isinstance(part, int) and args:
            return args[0]
        if origin is dict and len(args) == 2:
            return args[1]
    named = [m for m in _members(tp) if _is_model(m) and m.__name__ == part]
    return named[0] if named else None


__all__ = ["message", "suggestion", "unclaimed_hint"]
