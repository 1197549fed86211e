"""The request, its context and its result: the values every hook sees.

These are plain slotted dataclasses, built once per request on the hot path;
configuration models (pydantic) live in :mod:`proxy.config`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from proxy.drm import LICENSE_CONTENT_TYPES, DrmSystem, RequestType, key_id_uuid  # noqa: F401
from proxy.stages import StageClock

if TYPE_CHECKING:
    from proxy.policy import EffectivePolicy
    from proxy.services import Services


@dataclass(slots=True)
class ClientInfo:
    """What is known of the end user's client.

    ``ip_address`` is the resolved client address: the socket peer, or, when
    the peer is a trusted proxy or caller, the address it vouches for.
    ``device_id`` and ``user_agent`` come from trusted callers only.
    """

    ip_address: str | None = None
    device_id: str | None = None
    user_agent: str | None = None
    peer: str | None = None
    trusted: bool = False


@dataclass(slots=True)
class LicenseRequest:
    """A license or inspection request as a transport hands it to the pipeline.

    ``headers`` holds HTTP headers or gRPC metadata with lower-case names;
    ``query`` holds HTTP query parameters (empty over gRPC). Plugins that read
    a token or a device id from a configurable header look there.
    """

    challenge: bytes
    drm_system: DrmSystem | None = None
    token: str | None = field(default=None, repr=False)
    content_id: str | None = None
    key_ids: tuple[bytes, ...] = ()
    client: ClientInfo = field(default_factory=ClientInfo)
    metadata: Mapping[str, str] = field(default_factory=dict)
    dry_run: bool = False
    transport: str = "grpc"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    query: Mapping[str, str] = field(default_factory=dict, repr=False)
    request_id: str = ""
    deadline: float | None = None
    """A ``time.monotonic()`` instant after which the caller has given up."""
    dry_run_gated: bool = False
    """Set by the transports for callers they don't trust: a dry run then needs the token's
    ``server.dry_run_claim`` (in-process callers such as ``explain`` are not gated)."""


@dataclass(slots=True)
class ChallengeInfo:
    """What an inspector read from the challenge.

    :ivar payload: the challenge normalized for vendors (FairPlay: the raw
        SPC whatever framing the player used; PlayReady: the SOAP body, unwrapped).
    :ivar key_ids: canonical 16-byte key ids (big-endian, UUID order).
    :ivar client: what the client says about itself, as strings.
    :ivar details: DRM-specific facts (session type, asset id, custom data...).
    """

    drm_system: DrmSystem
    request_type: RequestType
    payload: bytes
    key_ids: tuple[bytes, ...] = ()
    content_id: str | None = None
    client: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key_id_uuids(self) -> list[str]:
        """The key ids as UUID strings."""
        return [key_id_uuid(k) for k in self.key_ids]


@dataclass(slots=True, frozen=True)
class Principal:
    """Who the verified token speaks for; passed to every hook after authentication.

    :ivar subject: the ``sub`` claim.
    :ivar issuer: the ``iss`` claim (as configured).
    :ivar claims: every claim of the token.
    :ivar key_id: which configured key verified the signature.
    :ivar leeway: the seconds of clock skew the issuer's time claims were judged
        with, or None when the authenticator has no such notion (rules that
        derive a lifetime from ``exp`` then use their own default).
    :ivar trusts_policy_claims: the issuer is trusted to tighten the elected
        policy with claims of its own (``[[auth.issuers]] trust_policy_claims``).
    :ivar token: the raw token, for adapters configured to pass it through;
        never logged.
    :ivar renewal_grace: seconds past its ``exp`` the issuer's token still serves a
        renewal or release of a session begun while it was valid (``renewal_grace``).
    :ivar accepted_after_expiry: the token had expired and was accepted within
        ``renewal_grace`` for the license session in ``ctx.license_session``.
    """

    subject: str | None
    issuer: str | None
    claims: Mapping[str, Any]
    key_id: str | None = None
    leeway: float | None = None
    trusts_policy_claims: bool = False
    token: str | None = field(default=None, repr=False, compare=False)
    renewal_grace: float = 0.0
    accepted_after_expiry: bool = False


@dataclass(frozen=True, slots=True)
class LicenseSession:
    """A license session as its record holds it.

    :ivar started: seconds since the epoch when the new license was asked for.
    :ivar until: seconds since the epoch when the record lapses.
    :ivar playback: the concurrency rule's id of the playback it belongs to, if counted.
    :ivar content_id: the content it was licensed for, if known.
    :ivar key_ids: the key ids it was licensed for.
    """

    started: float
    until: float
    playback: str | None = None
    content_id: str | None = None
    key_ids: tuple[bytes, ...] = ()


@dataclass(slots=True)
class DecisionStep:
    """One hook implementation's verdict, kept for dry runs and ``explain``."""

    hook: str
    plugin: str
    verdict: str = ""
    reasons: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RequestContext:
    """Everything known about one request, handed to every per-request hook.

    Hooks read ``request`` and what earlier steps filled in (``challenge``,
    ``principal``, ``policy``). ``extras`` is a scratch space for plugins that
    cooperate across hooks; keys should be prefixed with the plugin's name.
    Call :meth:`note` to say why a decision was taken: the notes appear in the
    decision trace of dry runs and ``license-proxy explain``.

    ``stages`` holds when each pipeline stage began (:class:`proxy.stages.StageClock`);
    ``cancelled`` is True when the caller went away before the answer (observers
    then see a ``proxy_license_denied`` whose error says so).

    ``license_session`` is the recorded session a renewal or release continues
    (:mod:`proxy.sessions`), when one was found; ``playback`` the id of the playback
    the concurrency rule counts this request in (recorded with a new session).
    """

    request: LicenseRequest
    services: Services
    request_id: str
    challenge: ChallengeInfo | None = None
    principal: Principal | None = None
    policy: EffectivePolicy | None = None
    backend: str | None = None
    trace: list[DecisionStep] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    stages: StageClock = field(default_factory=StageClock)
    cancelled: bool = False
    license_session: LicenseSession | None = None
    playback: str | None = None

    @property
    def drm_system(self) -> DrmSystem | None:
        """The DRM system, from the challenge once inspected, else as requested."""
        if self.challenge is not None:
            return self.challenge.drm_system
        return self.request.drm_system

    @property
    def content_id(self) -> str | None:
        """The content id: the inspector's (read from the challenge, or the request's
        normalized by the DRM's conventions), else the licensed session's (a renewal
        names none), else the request's as given.

        The caller's ``content_id`` is never preferred over what the challenge says:
        entitlement and policy election key on this value.
        """
        if self.challenge is not None and self.challenge.content_id:
            return self.challenge.content_id
        if self.license_session is not None and self.license_session.content_id:
            return self.license_session.content_id
        return self.request.content_id

    @property
    def key_ids(self) -> tuple[bytes, ...]:
        """The key ids asked for: the challenge's, else the licensed session's (a
        renewal names none), else the request's hints."""
        if self.challenge is not None and self.challenge.key_ids:
            return self.challenge.key_ids
        if self.license_session is not None and self.license_session.key_ids:
            return self.license_session.key_ids
        return self.request.key_ids

    @property
    def tracing(self) -> bool:
        """True when this request keeps a decision trace (dry runs, ``explain``)."""
        return self.trace is not None

    def note(self, reason: str) -> None:
        """Record why the current hook implementation decided as it did (traced requests only)."""
        if self.trace:
            self.trace[-1].reasons.append(reason)


@dataclass(slots=True)
class LicenseResult:
    """The answer to a license request, before a transport encodes it."""

    license: bytes
    content_type: str
    drm_system: DrmSystem
    request_type: RequestType
    request_id: str
    key_ids: tuple[bytes, ...] = ()
    backend: str = ""
    vendor: str = ""
    policy: str = ""
    vendor_metadata: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    trace: list[DecisionStep] = field(default_factory=list)
    effective_policy: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """Extra HTTP response headers for the player (rarely needed)."""
