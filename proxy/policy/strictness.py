"""Which values of a policy rule are stricter, and the algebra built on it.

Every field of the policy model has an order (:data:`STRICTNESS`, filled in by
:mod:`proxy.policy.model`): a level, a permission, a duration, a deadline...
:func:`tightened` applies a rule set that may only restrict (a claim from a
trusted issuer) and reports what it applied and ignored; :func:`merge` keeps the
most restrictive of two rule sets that apply to one key. A field with no order
is FIXED: a claim can't change it, so a field added later is never loosened by
accident.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, IntEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_WEAKEST = -math.inf


#: Each ordered enum's members by rank (weakest first), computed once per enum.
_ENUM_RANKS: dict[type, dict[Any, int]] = {}


def _ranked(value: Any) -> float:
    if value is None:
        return _WEAKEST
    enum: Any = type(value)
    ranks = _ENUM_RANKS.get(enum)
    if ranks is None:
        ranks = _ENUM_RANKS[enum] = {member: rank for rank, member in enumerate(enum)}
    return ranks[value]


def _level(value: Any) -> float:
    return _WEAKEST if value is None else int(value)


def _restriction(value: Any) -> float:
    return _WEAKEST if value is None else int(bool(value))


def _permission(value: Any) -> float:
    # False is the strict value; unset can't be told from "allowed", so a claim grants nothing.
    return 1 if value is False else 0


def _duration(value: Any) -> float:
    # 0 means unlimited, like unset; otherwise shorter is stricter.
    return _WEAKEST if not value else -value


def _earlier(value: Any) -> float:
    return _WEAKEST if value is None else -value.timestamp()


def _later(value: Any) -> float:
    return _WEAKEST if value is None else value.timestamp()


@dataclass(frozen=True, slots=True)
class Strictness:
    """How the values of one field compare.

    :ivar rank: maps a value (None included) to a number that is higher for
        stricter values; None when the field is not a restriction at all and a
        claim may not change it.
    :ivar kind: a word for docs and traces (``level``, ``permission``, ``duration``...).
    """

    rank: Callable[[Any], float] | None
    kind: str


LEVEL = Strictness(_level, "level")
RANKED = Strictness(_ranked, "level")
RESTRICTION = Strictness(_restriction, "restriction")
PERMISSION = Strictness(_permission, "permission")
DURATION = Strictness(_duration, "duration")
EARLIER = Strictness(_earlier, "deadline")
LATER = Strictness(_later, "start")
FIXED = Strictness(None, "fixed")

#: Field by field, which values are stricter, per model class (see the module docstring).
STRICTNESS: dict[type[BaseModel], dict[str, Strictness]] = {}


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, Enum):
        return str(value.name if isinstance(value, IntEnum) else value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


@dataclass(frozen=True, slots=True)
class IgnoredChange:
    """A change that a tightening-only source asked for and that was not applied.

    :ivar field: the dotted path (``license.license_duration``, ``tracks.HD.hdcp``).
    :ivar current: the value that stays.
    :ivar requested: the value that was asked for.
    :ivar why: ``"looser than the policy"`` or ``"not a restriction"``.
    """

    field: str
    current: Any
    requested: Any
    why: str

    def __str__(self) -> str:
        return (
            f"{self.field}: {_show(self.requested)} ignored ({self.why}; "
            f"stays {_show(self.current)})"
        )


@dataclass(frozen=True, slots=True)
class AppliedChange:
    """A change that made a rule stricter.

    :ivar field: the dotted path (``tracks.HD.hdcp``).
    :ivar before: the value it replaced.
    :ivar after: the stricter value.
    """

    field: str
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{self.field}: {_show(self.before)} -> {_show(self.after)}"


@dataclass(frozen=True, slots=True)
class Tightened(Generic[M]):
    """The result of a tightening: the new value, what changed, what was ignored."""

    value: M
    applied: tuple[AppliedChange, ...] = ()
    ignored: tuple[IgnoredChange, ...] = ()


def tightened(base: M, claim: M, path: str) -> Tightened[M]:
    applied: list[AppliedChange] = []
    ignored: list[IgnoredChange] = []
    value = _tighten(base, claim, path, applied, ignored)
    return Tightened(value, tuple(applied), tuple(ignored))


_FIELD_NAMES: dict[type[BaseModel], tuple[str, ...]] = {}


def _field_names(model: type[BaseModel]) -> tuple[str, ...]:
    # pydantic's model_fields is a computed property; the hot path reads it once per class.
    names = _FIELD_NAMES.get(model)
    if names is None:
        names = _FIELD_NAMES[model] = tuple(model.model_fields)
    return names


def _tighten(
    base: M, claim: M, path: str, applied: list[AppliedChange], ignored: list[IgnoredChange]
) -> M:
    orders = STRICTNESS.get(type(base), {})
    updates: dict[str, Any] = {}
    for name in _field_names(type(base)):
        wanted = getattr(claim, name)
        current = getattr(base, name)
        if wanted is None:
            continue
        if isinstance(wanted, BaseModel):
            start = current if current is not None else type(wanted)()
            nested = _tighten(start, wanted, f"{path}{name}.", applied, ignored)
            if nested != start:
                updates[name] = nested
            continue
        if wanted == current:
            continue
        order = orders.get(name, FIXED)
        if order.rank is None:
            ignored.append(IgnoredChange(path + name, current, wanted, "not a restriction"))
        elif order.rank(wanted) > order.rank(current):
            updates[name] = wanted
            applied.append(AppliedChange(path + name, current, wanted))
        else:
            ignored.append(IgnoredChange(path + name, current, wanted, "looser than the policy"))
    return base.model_copy(update=updates) if updates else base


def merge(first: M, second: M) -> M:
    orders = STRICTNESS.get(type(first), {})
    updates: dict[str, Any] = {}
    for name in _field_names(type(first)):
        a, b = getattr(first, name), getattr(second, name)
        if b is None or a == b:
            continue
        if a is None:
            updates[name] = b
        elif isinstance(a, BaseModel):
            updates[name] = merge(a, b)
        else:
            order = orders.get(name, FIXED)
            if order.rank is not None and order.rank(b) > order.rank(a):
                updates[name] = b
    return first.model_copy(update=updates) if updates else first
