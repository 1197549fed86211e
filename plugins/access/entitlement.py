"""The ``access_entitlement`` plugin: rules that tie token claims to the content asked for.

Each ``[[access.entitlement.rules]]`` entry applies to the content ids its
``content_ids`` globs match (every request by default) and states what one
claim must hold:

- ``any_of``: one of these values (a list claim must contain one);
- ``all_of``: every one of these values (the claim is a list);
- ``equals_content_id``: the requested content id itself (a list claim must
  contain it), as Verimatrix's ``sub`` and Axinom-style ``content_id`` claims do;
- ``covers_key_ids``: every requested key id (UUID strings), as Azure's
  content key identifier claim does.

Every rule that applies must hold, or the request is NOT_ENTITLED. A request
without a content id meets every rule scoped by ``content_ids`` (it might be
asking for that content), so leaving the content id out never skips a rule.
"""

from __future__ import annotations

import fnmatch
import uuid
from typing import Any

from pydantic import Field, model_validator

from plugins.access.claims import as_list
from plugins.access.metrics import ACCESS_DENIALS
from proxy import ConfigContext, ProxyError, Reason, StrictModel, hookimpl
from proxy.model import DrmSystem, Principal, RequestContext

RULE = "access_entitlement"

ClaimValue = str | int | bool
_DENIALS = ACCESS_DENIALS.labels(RULE, Reason.NOT_ENTITLED.value)


class EntitlementCondition(StrictModel):
    """One ``[[access.entitlement.rules]]`` entry."""

    name: str | None = None
    """Shown in the refusal and in dry-run traces (never a claim value)."""
    content_ids: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Glob patterns of the content ids this rule applies to."""
    drm_systems: list[DrmSystem] | None = None
    """Apply only to these DRM systems."""
    claim: str
    any_of: list[ClaimValue] | None = Field(default=None, min_length=1)
    all_of: list[ClaimValue] | None = Field(default=None, min_length=1)
    equals_content_id: bool = False
    covers_key_ids: bool = False

    @model_validator(mode="after")
    def _one_condition(self) -> EntitlementCondition:
        if not (self.any_of or self.all_of or self.equals_content_id or self.covers_key_ids):
            raise ValueError(
                "give a condition: any_of, all_of, equals_content_id or covers_key_ids"
            )
        return self

    @property
    def label(self) -> str:
        """How refusals name the rule."""
        return self.name or f"{self.claim} rule"


class EntitlementSettings(StrictModel):
    """``[access.entitlement]``."""

    rules: list[EntitlementCondition] = Field(default_factory=list)


def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


def _key_id(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value).bytes
    except ValueError:
        return None


def applies(rule: EntitlementCondition, ctx: RequestContext) -> bool:
    """True when ``rule`` covers this request (an unknown content id is covered by every rule)."""
    if rule.drm_systems is not None and ctx.drm_system not in rule.drm_systems:
        return False
    content_id = ctx.content_id
    if content_id is None:
        return True
    return any(fnmatch.fnmatchcase(content_id, pattern) for pattern in rule.content_ids)


def failure(rule: EntitlementCondition, ctx: RequestContext, principal: Principal) -> str | None:
    """Why the token does not meet ``rule``, or None when it does."""
    value = principal.claims.get(rule.claim)
    if value is None:
        return f"the token has no {rule.claim} claim"
    values = as_list(value)
    if rule.any_of and not any(_same(v, a) for v in values for a in rule.any_of):
        return f"the token's {rule.claim} claim holds none of the required values"
    if rule.all_of and not all(any(_same(v, a) for v in values) for a in rule.all_of):
        return f"the token's {rule.claim} claim lacks a required value"
    if rule.equals_content_id:
        content_id = ctx.content_id
        if content_id is None:
            return "the request names no content id"
        if not any(_same(v, content_id) for v in values):
            return f"the token's {rule.claim} claim is for other content"
    if rule.covers_key_ids:
        wanted = set(ctx.key_ids)
        if not wanted:
            return "the request names no key id"
        if not wanted <= {_key_id(v) for v in values}:
            return f"the token's {rule.claim} claim does not cover every key asked for"
    return None


class EntitlementRule:
    """Refuses content the token's claims don't entitle."""

    order = 30
    """Within the ``tryfirst`` tier of ``proxy_authorize``: a claim lookup, the last of the cheap local checks (docs/hooks.md, Order)."""

    def __init__(self) -> None:
        self.rules: list[EntitlementCondition] = []

    @hookimpl
    def proxy_configure(self, config: ConfigContext) -> None:
        """Read ``[access.entitlement]``."""
        settings = config.section("access.entitlement", EntitlementSettings)
        if settings is not None:
            self.rules = settings.rules
        # With no rules there is nothing to check: the host skips this plugin per request.
        self.enabled = bool(self.rules)

    @hookimpl(tryfirst=True)
    def proxy_authorize(self, ctx: RequestContext, principal: Principal) -> None:
        """Every rule that applies to the requested content must hold."""
        for rule in self.rules:
            if not applies(rule, ctx):
                continue
            reason = failure(rule, ctx, principal)
            if reason is not None:
                _DENIALS.inc()
                raise ProxyError(Reason.NOT_ENTITLED, f"{rule.label}: {reason}")
            ctx.note(f"{rule.label}: entitled")


__all__ = ["EntitlementCondition", "EntitlementRule", "EntitlementSettings"]
