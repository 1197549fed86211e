"""What an adapter is handed and what it hands back: one call, one HTTP exchange, one license."""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.model import ChallengeInfo, Principal, RequestContext
from proxy.policy import EffectivePolicy, LicenseSettings


@dataclass(slots=True)
class VendorCall:
    """One request as an adapter sees it.

    :ivar license: the license settings after the core's checks (license window,
        ``can_play``, rules the backend can't render), durations capped by the
        policy's ``expiry``: the core runs :func:`proxy.adapters.prepare.prepare`
        before the adapter sees the call and keeps its result here.
    """

    ctx: RequestContext
    challenge: ChallengeInfo
    principal: Principal
    policy: EffectivePolicy
    backend: str
    license: LicenseSettings | None = None

    @property
    def key_ids(self) -> tuple[bytes, ...]:
        """The key ids asked for (challenge, else request hints)."""
        return self.ctx.key_ids

    @property
    def content_id(self) -> str | None:
        """The content id (request, else challenge)."""
        return self.ctx.content_id

    @property
    def request_id(self) -> str:
        """The proxy's request id, sent to the vendor as a correlation id."""
        return self.ctx.request_id


@dataclass(slots=True)
class VendorLicense:
    """What an adapter returns: the raw bytes the CDM takes, and facts to keep."""

    license: bytes
    content_type: str | None = None
    key_ids: tuple[bytes, ...] = ()
    vendor_metadata: dict[str, str] = field(default_factory=dict)
