"""The ``access_rate_limit`` plugin: request rates per subject and per client address (GCRA).

Each limit is ``requests`` per ``per`` seconds with a ``burst`` admitted at
once from rest (a token bucket, kept as one timestamp per key by the generic
cell rate algorithm). A refused request is RATE_LIMITED with the seconds until
the next one would pass (``Retry-After`` over HTTP, ``retry-after`` over
gRPC). Every request that reaches the state rules counts, license or not, except
a player's retry within ``access.replay.retry_window`` (it counted the first time).

IPv6 clients are counted per /64 (``ipv6_prefix``): one subscriber line holds
a whole /64 and could otherwise rotate addresses to escape its limit.
"""

from __future__ import annotations

import socket

from pydantic import Field, model_validator

from plugins.access.claims import identity, slot_tag, state_key
from plugins.access.state import StateCheck, queue_check, require_store
from proxy import ConfigContext, Duration, RateOp, Reason, StrictModel, address_key, hookimpl
from proxy.model import Principal, RequestContext

RULE = "access_rate_limit"


class Rate(StrictModel):
    """``requests`` per ``per`` seconds, ``burst`` of them at once."""

    requests: int = Field(ge=1)
    per: Duration = 1.0
    burst: int | None = Field(default=None, ge=1)
    """Requests admitted at once from rest (default: ``requests``)."""

    @model_validator(mode="after")
    def _positive_period(self) -> Rate:
        if self.per <= 0:
            raise ValueError("per must be more than 0 seconds")
        return self

    @property
    def interval(self) -> float:
        """Seconds between requests at the sustained rate."""
        return self.per / self.requests

    @property
    def bucket(self) -> int:
        """The burst size."""
        return self.burst or self.requests


class RateLimitSettings(StrictModel):
    """``[access.rate_limit]``: request rates per subject and per client address."""

    subject: Rate | None = None
    client_ip: Rate | None = None
    subject_claim: str | None = None
    """Count per this claim instead of ``sub``."""
    ipv6_prefix: int = Field(default=64, ge=1, le=128)
    """IPv6 clients are counted per network of this length."""
    fail_open: bool = False
    """Admit requests when the state store is unreachable (default: STATE_UNAVAILABLE)."""


def address_bucket(ip_text: str | None, ipv6_prefix: int) -> str | None:
    """The bucket an address is counted in: the IPv4 address, or its IPv6 /prefix network."""
    key = address_key(ip_text)
    if key is None:
        return None
    version, value = key
    if version == 4:
        return socket.inet_ntoa(value.to_bytes(4, "big"))
    network = value >> (128 - ipv6_prefix) << (128 - ipv6_prefix)
    return f"{socket.inet_ntop(socket.AF_INET6, network.to_bytes(16, 'big'))}/{ipv6_prefix}"


class RateLimitRule:
    """Limits request rates per subject and per client address."""

    order = 20
    """Within the ``trylast`` tier of ``proxy_authorize``: queues its state check after replay's (docs/hooks.md, Order)."""

    def __init__(self) -> None:
        self.settings: RateLimitSettings | None = None

    @hookimpl
    def proxy_configure(self, config: ConfigContext) -> None:
        """Read ``[access.rate_limit]``; the rule is on when the section is present."""
        if config.get("access.rate_limit") is None:
            config.claim("access.rate_limit")
            self.enabled = False  # nothing to check: the host skips this rule per request
            return
        settings = config.section("access.rate_limit", RateLimitSettings)
        if settings is None or not require_store(config, "access.rate_limit"):
            return
        if settings.subject is None and settings.client_ip is None:
            config.warn(
                "access.rate_limit", "neither subject nor client_ip is set: no limit applies"
            )
        self.settings = settings

    def _check(self, key: str, rate: Rate, what: str, fail_open: bool) -> StateCheck:
        detail = f"too many requests {what}: at most {rate.requests} per {rate.per:g}s"
        return StateCheck(
            RateOp(key, rate.interval, rate.bucket), RULE, Reason.RATE_LIMITED, detail, fail_open
        )

    @hookimpl(trylast=True)
    def proxy_authorize(self, ctx: RequestContext, principal: Principal) -> None:
        """Queue one request in the subject's and the client address's buckets."""
        settings = self.settings
        if settings is None:
            return
        if settings.subject is not None:
            subject = identity(principal, settings.subject_claim, "rate limit")
            key = state_key("rate:subject", subject, tag=slot_tag(subject))
            queue_check(
                ctx, self._check(key, settings.subject, "for this subject", settings.fail_open)
            )
        if settings.client_ip is not None:
            bucket = address_bucket(ctx.request.client.ip_address, settings.ipv6_prefix)
            if bucket is None:
                ctx.note("client address unknown: no per-address limit")
            else:
                # the address's own slot (a second script on a cluster, in the same round trip)
                key = state_key("rate:ip", bucket)
                check = self._check(
                    key, settings.client_ip, "from this address", settings.fail_open
                )
                queue_check(ctx, check)
