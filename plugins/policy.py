"""The ``policy`` plugin: ``[[policies]]`` and the election on ``proxy_select_policy``.

A policy is a candidate when every condition of its ``match`` holds; the
candidate with the highest ``priority`` wins, then the one listed first.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from pydantic import TypeAdapter

from proxy import hookimpl
from proxy.config import ConfigContext
from proxy.model import Principal, RequestContext
from proxy.policy import EffectivePolicy, Policy

_POLICIES = TypeAdapter(list[Policy])


def claim_matches(value: Any, condition: Any) -> bool:
    """True when a claim ``value`` satisfies a policy's claim ``condition``.

    A scalar condition must equal the claim (or be one element of a list
    claim); a list condition accepts any of its values; ``{present = true}``
    asks only that the claim exists (``false``: that it does not).
    """
    if isinstance(condition, dict):
        return (value is not None) == condition["present"]
    if value is None:
        return False
    accepted = condition if isinstance(condition, list) else [condition]
    values = value if isinstance(value, list) else [value]
    return any(v == a and type(v) is type(a) for v in values for a in accepted)


def policy_matches(policy: Policy, ctx: RequestContext, principal: Principal) -> bool:
    """True when every condition of the policy's ``match`` holds for this request."""
    match = policy.match
    if match.drm_systems is not None and ctx.drm_system not in match.drm_systems:
        return False
    if match.content_ids is not None:
        content_id = ctx.content_id
        if content_id is None or not any(
            fnmatch.fnmatchcase(content_id, pattern) for pattern in match.content_ids
        ):
            return False
    if match.key_ids is not None:
        wanted = {k.bytes for k in match.key_ids}
        if not ctx.key_ids or not set(ctx.key_ids) <= wanted:
            return False
    claims = principal.claims
    return all(claim_matches(claims.get(n), c) for n, c in match.claims.items())


class PolicyPlugin:
    """Validates ``[[policies]]`` and elects one per request."""

    def __init__(self) -> None:
        self.policies: list[Policy] = []

    @hookimpl
    def proxy_configure(self, config: ConfigContext) -> None:
        """Validate every policy and check that the backends it names exist."""
        config.claim("policies")
        raw = config.get("policies", [])
        policies = config.validate("policies", _POLICIES, raw) if raw else []
        if policies is None:
            return
        names: set[str] = set()
        for i, policy in enumerate(policies):
            if policy.name in names:
                config.error(f"policies[{i}].name", f"policy {policy.name!r} is defined twice")
            names.add(policy.name)
            if not policy.backends:
                config.error(f"policies[{i}].backends", "a policy needs at least one backend")
            for j, backend in enumerate(policy.backends):
                if backend not in config.backend_names:
                    config.error(
                        f"policies[{i}].backends[{j}]",
                        f"no backend named {backend!r} is configured",
                    )
        self.policies = policies

    @hookimpl
    def proxy_select_policy(
        self, ctx: RequestContext, principal: Principal
    ) -> EffectivePolicy | None:
        """Elect the matching policy with the highest priority (then the first listed)."""
        best: Policy | None = None
        for policy in self.policies:
            if not policy_matches(policy, ctx, principal):
                ctx.note(f"{policy.name}: its match does not hold")
                continue
            if best is None or policy.priority > best.priority:
                best = policy
        if best is None:
            return None
        ctx.note(f"{best.name}: elected (priority {best.priority})")
        return EffectivePolicy.from_policy(best)
