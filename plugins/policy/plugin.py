"""The ``policy`` plugin's hooks: validate ``[[policies]]``, elect one per request, tighten it."""

from __future__ import annotations

import logging

from pydantic import TypeAdapter

from plugins.policy.catalog import KeyCatalog, load_catalog
from plugins.policy.claims import (
    PolicyClaimError,
    present_policy_claims,
    read_key_track_types,
    read_policy_claims,
)
from plugins.policy.election import CompiledPolicy, RequestFacts, compile_policies, elect
from plugins.policy.lint import policy_warnings
from plugins.policy.settings import CatalogSettings, ElectionSettings
from plugins.policy.tighten import apply_claim_policies
from proxy import ConfigContext, ProxyError, Reason, hookimpl
from proxy.model import Principal, RequestContext, key_id_uuid
from proxy.policy import EffectivePolicy, Policy, TrackType

log = logging.getLogger("plugins.policy")

_POLICIES = TypeAdapter(list[Policy])


def trusts_policy_claims(principal: Principal) -> bool:
    """True when the principal's issuer is configured to carry policy in its claims."""
    return principal.trusts_policy_claims


class PolicyPlugin:
    """Validates ``[[policies]]``, elects one per request and tightens it with trusted claims."""

    def __init__(self) -> None:
        self.policies: list[Policy] = []
        self.compiled: tuple[CompiledPolicy, ...] = ()
        self.settings = ElectionSettings()
        self.catalog = KeyCatalog()

    @hookimpl
    def proxy_configure(self, config: ConfigContext) -> None:
        """Validate every policy, ``[policy_election]`` and ``[catalog]``; warn about
        policies that can never be elected."""
        config.claim("policies")
        settings = config.section("policy_election", ElectionSettings)
        catalog_settings = config.section("catalog", CatalogSettings)
        if settings is not None:
            self.settings = settings
        if catalog_settings is not None:
            self.catalog = load_catalog(config, catalog_settings)
        raw = config.get("policies", [])
        if not isinstance(raw, list):
            config.error("policies", "must be an array of [[policies]] tables")
            return
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
        if not policies:
            config.warn("policies", "no policy is configured: every request is NO_MATCHING_POLICY")
        for path, message in policy_warnings(
            policies, config.backend_drm_systems, name_claim=self.settings.name_claim
        ):
            config.warn(path, message)
        self.policies = policies
        self.compiled = compile_policies(policies)

    @hookimpl
    def proxy_select_policy(
        self, ctx: RequestContext, principal: Principal
    ) -> EffectivePolicy | None:
        """Elect the candidate with the highest priority, then the most specific, then the
        first listed (or the one the token names); tie key ids to track types; tighten it
        with the policy claims of a trusted issuer."""
        note = ctx.note if ctx.tracing else None
        if self.catalog.foreign_keys(ctx.key_ids, ctx.content_id):
            raise ProxyError(
                Reason.REQUEST_INVALID,
                "a requested key id belongs to another content than the content id",
            )
        election = elect(
            self.compiled,
            RequestFacts.of(ctx, principal),
            name_claim=self.settings.name_claim,
            note=note,
        )
        if election.winner is None:
            return None
        trusted = trusts_policy_claims(principal)
        try:
            key_types = self._key_track_types(ctx, principal, trusted)
            effective = EffectivePolicy.from_policy(
                election.winner.policy, key_types, ctx.drm_system
            )
            if trusted:
                self._tighten(ctx, principal, effective)
            elif note is not None:
                ignored = present_policy_claims(principal.claims, self.settings.policy_claims)
                if ignored:
                    note(
                        f"issuer {principal.issuer!r} is not trusted with policy claims: "
                        f"ignored {', '.join(ignored)}"
                    )
        except PolicyClaimError as exc:
            raise ProxyError(
                Reason.TOKEN_MALFORMED, f"a policy claim can't be read: {exc}"
            ) from None
        return effective

    def _key_track_types(
        self, ctx: RequestContext, principal: Principal, trusted: bool
    ) -> dict[bytes, TrackType]:
        types = self.catalog.track_types(ctx.key_ids, ctx.content_id)
        name = self.settings.key_track_types_claim
        value = principal.claims.get(name) if name else None
        if value is not None and trusted:
            claimed = read_key_track_types(value, name)
            wanted = set(ctx.key_ids) or set(claimed)
            for key_id, track in claimed.items():
                if key_id not in wanted:
                    continue
                known = types.get(key_id)
                if known is None:
                    types[key_id] = track
                elif known is not track:
                    ctx.note(
                        f"key {key_id_uuid(key_id)}: the catalog says {known.value}, claim "
                        f"{name} says {track.value}; the catalog wins"
                    )
        if ctx.tracing:
            for key_id in ctx.key_ids or types:
                typed = types.get(key_id)
                ctx.note(
                    f"key {key_id_uuid(key_id)}: "
                    + (typed.value if typed else "no known track type (DEFAULT rules)")
                )
        return types

    def _tighten(
        self, ctx: RequestContext, principal: Principal, effective: EffectivePolicy
    ) -> None:
        found = read_policy_claims(principal.claims, self.settings.policy_claims, ctx.drm_system)
        if found.empty:
            for line in found.notes:
                ctx.note(line)
            return
        outcome = apply_claim_policies(effective, found)
        for ignored in outcome.ignored:
            log.info(
                "policy %s: ignored a change from a claim of issuer %s: %s",
                effective.name,
                principal.issuer,
                ignored,
            )
        if not ctx.tracing:
            return
        for line in found.notes:
            ctx.note(line)
        ctx.note(
            f"policy claims from trusted issuer {principal.issuer!r}: {', '.join(found.sources)}"
        )
        for change in outcome.applied:
            ctx.note(f"tightened {change}")
        for ignored in outcome.ignored:
            ctx.note(f"ignored a change: {ignored}")
