"""The field types config models are built from: durations, whole seconds, paths, strict models.

They live apart from :mod:`proxy.config` so that every settings model (a state
store's, a backend's, a policy's) can use them without importing the config
machinery that, in turn, knows the services built from those settings.
"""

from __future__ import annotations

import math
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    ValidationInfo,
)

from proxy.secrets import BASE_DIR_CONTEXT_KEY

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"500ms"``, ``"30s"``, ``"1h30m"``, ``"7d"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30s'")
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise ValueError("a duration must be a finite number of seconds, not negative")
        return float(value)
    if isinstance(value, str):
        text = value.replace(" ", "")
        try:
            return parse_duration(float(text))
        except ValueError:
            pass
        parts = _DURATION.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    raise ValueError(f"{value!r} is not a duration (use seconds, or e.g. '30s', '5m', '2h', '7d')")


def _relative_to_config(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get(BASE_DIR_CONTEXT_KEY)
    path = path.expanduser()
    if not path.is_absolute() and base is not None:
        return Path(base) / path
    return path


#: A file named in the config: a relative path is taken from the config file's folder.
ConfigPath = Annotated[Path, AfterValidator(_relative_to_config)]

#: Seconds, written as a number or as ``"30s"``, ``"5m"``, ``"1h30m"``.
Duration = Annotated[float, BeforeValidator(parse_duration)]


def _whole_seconds(value: Any) -> int:
    seconds = parse_duration(value)
    if 0 < seconds < 0.5:
        # It would round to 0, which license settings read as "unlimited".
        raise ValueError(f"{value!r} is less than a second; give whole seconds")
    return round(seconds)


#: Whole seconds, written as a number or a duration string.
Seconds = Annotated[int, BeforeValidator(_whole_seconds)]


def _plain_bool(annotation: Any) -> bool:
    """True for ``bool`` and ``bool | None``, the fields strict validation can take as they are."""
    if annotation is bool:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        return set(typing.get_args(annotation)) == {bool, type(None)}
    return False


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors, values are immutable, and a boolean
    is a TOML boolean (pydantic would read ``"yes"``, ``"off"`` or ``1`` as one)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Make every ``bool`` (and ``bool | None``) field strict, once, as the class is made."""
        super().__pydantic_init_subclass__(**kwargs)
        changed = False
        for field in cls.model_fields.values():
            if _plain_bool(field.annotation) and not any(
                isinstance(item, Strict) for item in field.metadata
            ):
                field.metadata.append(Strict())
                changed = True
        if changed:
            cls.model_rebuild(force=True, raise_errors=False)


__all__ = ["ConfigPath", "Duration", "Seconds", "StrictModel", "parse_duration"]
