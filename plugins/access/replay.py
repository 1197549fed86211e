"""The ``access_replay`` plugin: a token buys one license (or N) within its lifetime.

A token is known by its issuer and ``jti``; without a ``jti``, by a digest of
its signed part (header and payload). The signed part and not the signature:
an ECDSA signature can be rewritten into a second valid one for the same
token, which would make a "new" token out of a used one. The use counter is
kept until the token expires (plus the issuer's leeway), after which the token
is refused anyway.

Only requests for a new license spend a use: service-certificate requests,
renewals and releases are verified like any other but never spend one.

Players retry: dash.js sends the same license request again after a timeout or any
error, shaka-player too. With ``retry_window``, a byte-identical challenge with the
same token within that many seconds of the first use is the same use: admitted
(the vendor is asked again: a fresh license), never TOKEN_REPLAYED, and counted
once by the rate buckets and the concurrency rule. The use is given back only when
every request riding on it failed.

The use counter carries the hash tag of the token's subject (``subject_claim``,
default ``sub``), so on Redis Cluster it shares a slot with that subject's
sessions and rate bucket and one script settles them all.
"""

from __future__ import annotations

import hashlib

from pydantic import Field, field_validator

from plugins.access.claims import MAX_ID_LENGTH, claim_text, request_type, slot_tag, state_key
from plugins.access.state import StateCheck, queue_check, require_store
from proxy import ConfigContext, Duration, ProxyError, Reason, StrictModel, UseOp, hookimpl
from proxy.model import Principal, RequestContext, RequestType

RULE = "access_replay"
#: The longest ``retry_window``: a player retries within seconds, not minutes.
MAX_RETRY_WINDOW = 300.0


class ReplaySettings(StrictModel):
    """``[access.replay]``: how many licenses one token may buy."""

    max_uses: int = Field(default=1, ge=1)
    """Licenses one token may obtain within its lifetime."""
    max_uses_claim: str | None = None
    """A claim that lowers ``max_uses`` for one token (e.g. Azure's
    ``urn:microsoft:azure:mediaservices:maxuses``); it can never raise it."""
    id_claim: str = "jti"
    """The claim that names a token; the signed part's digest stands in without it."""
    require_id_claim: bool = False
    """Refuse tokens without ``id_claim`` (TOKEN_CLAIM_MISSING) instead of using the digest."""
    default_lifetime: Duration = 86400.0
    """How long uses are remembered for a token without ``exp``."""
    default_leeway: Duration = 30.0
    """Added to the remembered lifetime when the issuer states no leeway of its own."""
    subject_claim: str | None = None
    """The claim whose keys the token's use counter sits beside (one cluster slot): set it to
    ``access.concurrency.subject_claim`` when that is set. Default ``sub``."""
    retry_window: Duration = 0.0
    """Seconds during which the same challenge with the same token is a retry of the same
    use, not a replay (0: off; at most 300)."""
    fail_open: bool = False
    """Admit requests when the state store is unreachable (default: STATE_UNAVAILABLE)."""

    @field_validator("retry_window")
    @classmethod
    def _bounded_window(cls, value: float) -> float:
        if not 0 <= value <= MAX_RETRY_WINDOW:
            raise ValueError(f"must lie between 0 and {MAX_RETRY_WINDOW:.0f} seconds")
        return value


class ReplayRule:
    """Counts the licenses each token buys."""

    order = 10
    """Within the ``trylast`` tier of ``proxy_authorize``: queues its state check first of the state rules (docs/hooks.md, Order)."""

    def __init__(self) -> None:
        self.settings: ReplaySettings | None = None

    @hookimpl
    def proxy_configure(self, config: ConfigContext) -> None:
        """Read ``[access.replay]``; the rule is on when the section is present."""
        if config.get("access.replay") is None:
            config.claim("access.replay")
            self.enabled = False  # nothing to check: the host skips this rule per request
            return
        settings = config.section("access.replay", ReplaySettings)
        if settings is not None and require_store(config, "access.replay"):
            self.settings = settings

    @staticmethod
    def _tag(principal: Principal, settings: ReplaySettings) -> str:
        """The slot tag of the token's subject; none (a slot of its own) without one. A
        token's claims never change, so its counter always lands in the same slot."""
        if settings.subject_claim is None:
            subject = principal.subject.strip() if principal.subject else None
        else:
            subject = claim_text(principal, settings.subject_claim)
        if not subject or len(subject) > MAX_ID_LENGTH:
            return ""
        return slot_tag(subject)

    def _token_id(
        self, principal: Principal, settings: ReplaySettings, tag: str | None = None
    ) -> str:
        if tag is None:
            tag = self._tag(principal, settings)
        value = principal.claims.get(settings.id_claim)
        if isinstance(value, str) and value:
            if len(value) > MAX_ID_LENGTH:
                raise ProxyError(
                    Reason.TOKEN_MALFORMED, f"the token's {settings.id_claim} claim is too long"
                )
            return state_key("replay", "id", principal.issuer or "", value, tag=tag)
        if settings.require_id_claim or not principal.token:
            raise ProxyError(
                Reason.TOKEN_CLAIM_MISSING,
                f"replay prevention needs the token's {settings.id_claim} claim",
            )
        signed_part = principal.token.rpartition(".")[0].encode()
        return state_key("replay", "signed", hashlib.sha256(signed_part).hexdigest(), tag=tag)

    def _max_uses(self, principal: Principal, settings: ReplaySettings) -> int:
        if settings.max_uses_claim is None:
            return settings.max_uses
        value = principal.claims.get(settings.max_uses_claim)
        if value is None:
            return settings.max_uses
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ProxyError(
                Reason.TOKEN_MALFORMED,
                f"the token's {settings.max_uses_claim} claim is not a positive integer",
            )
        return min(value, settings.max_uses)

    def _lifetime(
        self, ctx: RequestContext, principal: Principal, settings: ReplaySettings
    ) -> float:
        leeway = principal.leeway if principal.leeway is not None else settings.default_leeway
        exp = principal.claims.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            return max(1.0, exp - ctx.services.clock.time() + leeway)
        return settings.default_lifetime

    @hookimpl(trylast=True)
    def proxy_authorize(self, ctx: RequestContext, principal: Principal) -> None:
        """Queue one use of this token (new-license requests only)."""
        settings = self.settings
        if settings is None:
            return
        kind = request_type(ctx)
        if kind is not RequestType.NEW:
            ctx.note(f"a {kind.value} request spends no use of the token")
            return
        uses = self._max_uses(principal, settings)
        detail = (
            "the token was already used"
            if uses == 1
            else f"the token was already used {uses} times"
        )
        tag = self._tag(principal, settings)
        token_id = self._token_id(principal, settings, tag)
        lifetime = self._lifetime(ctx, principal, settings)
        if settings.retry_window > 0:
            # the challenge as the player sent it: a retry sends the very same bytes
            challenge = hashlib.blake2b(ctx.request.challenge, digest_size=16).hexdigest()
            retry = state_key("retry", token_id, challenge, tag=tag)
            op = UseOp(token_id, uses, lifetime, retry, settings.retry_window)
        else:
            op = UseOp(token_id, uses, lifetime)
        queue_check(
            ctx,
            StateCheck(op, RULE, Reason.TOKEN_REPLAYED, detail, fail_open=settings.fail_open),
        )
        ctx.note(f"queued: one use of at most {uses}")
