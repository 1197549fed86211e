"""Vendor adapters and the backends configured from them.

An adapter is a pure translator: from (challenge, principal, policy, backend
settings) it builds the upstream HTTP request, and from the upstream response
it makes a license or a typed error. The core owns the network. A *local*
adapter (ClearKey) answers by itself instead. Both register through
``proxy_register_vendors`` with a :class:`VendorSpec`.

Two optional adapter members let the core judge a backend before it is called:

- ``drm_systems``: the DRM systems this configured backend serves (those its
  settings give a URL for), a subset of its vendor's; the dispatcher skips a
  backend for the others, so the policy's next backend gets the request.
- ``policy_gaps(policy, drm)``: the rules of a configured policy that the adapter
  can't put in its vendor request for ``drm`` (:class:`PolicyGap`). At start, a gap
  that would make the license looser than the policy is a config error, any other
  a warning. At request time an adapter raises :class:`PolicyNotRenderable` for a
  rule it can't render (one a trusted claim added), and the dispatcher tries the
  policy's next backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import Field, ValidationError

from proxy.config import ConfigContext, Duration, StrictModel
from proxy.errors import ProxyError, Reason
from proxy.model import ChallengeInfo, DrmSystem, Principal, RequestContext
from proxy.policy import EffectivePolicy, Policy


class BackendSettings(StrictModel):
    """Settings every ``[backends.NAME]`` section has; adapters extend this model."""

    vendor: str
    description: str = ""
    timeout: Duration = 10.0
    """Total seconds for one upstream call (bounded by the caller's deadline)."""
    connect_timeout: Duration = 3.0
    max_response_bytes: int = Field(default=4 * 1024 * 1024, gt=0)


@dataclass(slots=True)
class VendorCall:
    """One request as an adapter sees it."""

    ctx: RequestContext
    challenge: ChallengeInfo
    principal: Principal
    policy: EffectivePolicy
    backend: str

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


@dataclass(slots=True)
class UpstreamRequest:
    """An HTTP request for the core to send to a vendor."""

    url: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


@dataclass(slots=True)
class UpstreamResponse:
    """A vendor's HTTP answer, read completely (within the size limit)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@runtime_checkable
class LocalAdapter(Protocol):
    """An adapter that answers by itself (no upstream call)."""

    async def issue(self, call: VendorCall) -> VendorLicense:
        """Issue the license for ``call`` or raise ``ProxyError``."""
        ...


@runtime_checkable
class TranslatingAdapter(Protocol):
    """An adapter that translates to and from a vendor's HTTP API."""

    def build_request(self, call: VendorCall) -> UpstreamRequest:
        """The upstream request for ``call`` (mint the vendor's token here)."""
        ...

    def parse_response(self, call: VendorCall, response: UpstreamResponse) -> VendorLicense:
        """The license in ``response``, or raise ``ProxyError`` with an ``UPSTREAM_*`` reason."""
        ...


AdapterFactory = Callable[[str, Any, Any], LocalAdapter | TranslatingAdapter]


@dataclass(frozen=True, slots=True)
class PolicyGap:
    """A rule of a policy that a backend's adapter can't put in its vendor request.

    :ivar field: the rule's path in the policy (``tracks.HD.playready_min_security_level``).
    :ivar drm: the DRM it can't be rendered for.
    :ivar error: True when leaving it out would make the license looser than the
        policy (a start-up error); False when nothing is loosened (a warning).
    :ivar why: what the operator can do about it, or why it is harmless.
    """

    field: str
    drm: DrmSystem
    error: bool
    why: str


class PolicyNotRenderable(ProxyError):
    """The request's policy has a rule the backend can't put in its vendor request.

    Refused rather than dropped (``UPSTREAM_REJECTED``, ``vendor_code =
    POLICY_NOT_RENDERABLE``, the rules in ``policy_fields``); no vendor was asked,
    so the dispatcher tries the policy's next backend.
    """

    def __init__(self, backend: str, vendor: str, drm: DrmSystem, fields: Sequence[str]) -> None:
        super().__init__(
            Reason.UPSTREAM_REJECTED,
            f"backend {backend!r} can't enforce {', '.join(fields)} for {drm.value}: "
            "the license would be looser than the policy",
            metadata={
                "backend": backend,
                "vendor": vendor,
                "vendor_code": "POLICY_NOT_RENDERABLE",
                "policy_fields": ",".join(fields),
            },
        )


@dataclass(frozen=True, slots=True)
class VendorSpec:
    """A vendor adapter as registered through ``proxy_register_vendors``.

    :param name: what ``[backends.NAME] vendor = "..."`` refers to.
    :param settings: the pydantic model (a :class:`BackendSettings` subclass)
        that validates a backend's section.
    :param adapter: ``factory(backend_name, settings, services)`` returning the
        adapter for one configured backend; parse keys here, once.
    :param drm_systems: the DRM systems the adapter serves.
    :param correlation_headers: response headers in which the vendor names the exchange
        (its own request id), tried before the common ones; the core keeps the first
        found as ``vendor_correlation_id`` (:mod:`proxy.upstream.correlation`).
    """

    name: str
    settings: type[BackendSettings]
    adapter: AdapterFactory
    drm_systems: frozenset[DrmSystem]
    description: str = ""
    correlation_headers: tuple[str, ...] = ()


@dataclass(slots=True)
class Backend:
    """A configured ``[backends.NAME]``: its vendor, settings and adapter."""

    name: str
    spec: VendorSpec
    settings: BackendSettings
    adapter: LocalAdapter | TranslatingAdapter
    local: bool = field(init=False)
    """True when the adapter answers by itself (decided once: a runtime Protocol
    check costs microseconds, too much to repeat per request)."""
    drm_systems: frozenset[DrmSystem] = field(init=False)
    """The DRM systems this backend serves: its vendor's, narrowed by the adapter's own
    ``drm_systems`` (a backend whose ``urls`` leave a DRM out does not serve it)."""

    def __post_init__(self) -> None:
        self.local = isinstance(self.adapter, LocalAdapter)
        declared = getattr(self.adapter, "drm_systems", None)
        self.drm_systems = (
            self.spec.drm_systems & frozenset(declared)
            if declared is not None
            else self.spec.drm_systems
        )


class VendorRegistry:
    """The vendor specs registered at start, and the backends built from config."""

    def __init__(self) -> None:
        self.specs: dict[str, VendorSpec] = {}
        self.errors: list[tuple[str, str]] = []

    def register(self, spec: VendorSpec) -> None:
        """Add a vendor spec; a second spec with the same name is a start-up error."""
        if spec.name in self.specs:
            self.errors.append(("plugins", f"vendor {spec.name!r} is registered twice"))
            return
        self.specs[spec.name] = spec

    def configure_backends(self, config: ConfigContext) -> dict[str, Backend]:
        """Validate every ``[backends.NAME]`` with its vendor's settings and build its adapter."""
        config.claim("backends")
        raw = config.get("backends", {})
        if not isinstance(raw, dict):
            config.error("backends", "must be a table of [backends.NAME] sections")
            return {}
        backends: dict[str, Backend] = {}
        for name, section in raw.items():
            path = f"backends.{name}"
            if not isinstance(section, dict):
                config.error(path, "must be a table")
                continue
            vendor = section.get("vendor")
            if not vendor:
                config.error(f"{path}.vendor", "missing required key")
                continue
            spec = self.specs.get(vendor)
            if spec is None:
                known = ", ".join(sorted(self.specs)) or "none"
                config.error(f"{path}.vendor", f"unknown vendor {vendor!r} (installed: {known})")
                continue
            settings = config.validate(path, spec.settings, section)
            if settings is None:
                continue
            try:
                adapter = spec.adapter(name, settings, config.services)
            except ValueError as exc:
                config.error(path, str(exc))
                continue
            if not isinstance(adapter, LocalAdapter | TranslatingAdapter):
                config.error(
                    path,
                    f"vendor {vendor!r} built an adapter with neither issue() nor build_request()",
                )
                continue
            backends[name] = Backend(name, spec, settings, adapter)
        check_policies(config, backends)
        return backends


def check_policies(config: ConfigContext, backends: Mapping[str, Backend]) -> None:
    """Judge every ``[[policies]]`` entry against the backends it names.

    A rule a backend can't render for a DRM it serves (and the policy may be
    elected for) is an error when the license would be looser without it, a
    warning otherwise; a backend whose settings leave out a DRM its vendor serves
    is a warning (its requests for that DRM skip it). Policies that don't validate
    are left to the policy plugin, which reports them.
    """
    raw = config.get("policies", [])
    if not isinstance(raw, list):
        return
    for i, doc in enumerate(raw):
        try:
            policy = Policy.model_validate(doc)
        except (ValidationError, ValueError, TypeError):
            continue
        wanted = set(policy.match.drm_systems or DrmSystem)
        for j, name in enumerate(policy.backends):
            backend = backends.get(name)
            if backend is None:
                continue
            vendor = backend.spec.name
            for drm in _ordered((backend.spec.drm_systems - backend.drm_systems) & wanted):
                config.warn(
                    f"policies[{i}].backends[{j}]",
                    f"backend {name!r} has no {drm.value} URL: {drm.value} requests of "
                    f"policy {policy.name!r} skip it",
                )
            gaps_of = getattr(backend.adapter, "policy_gaps", None)
            if gaps_of is None:
                continue
            grouped: dict[tuple[str, bool, str], list[str]] = {}
            for drm in _ordered(backend.drm_systems & wanted):
                for gap in gaps_of(policy, drm):
                    grouped.setdefault((gap.field, gap.error, gap.why), []).append(drm.value)
            for (rule, error, why), drms in grouped.items():
                path = f"policies[{i}].{rule}"
                where = f"backend {name!r} ({vendor}) for {', '.join(drms)}"
                if error:
                    config.error(
                        path, f"{where} can't render this: the license would be looser. {why}"
                    )
                else:
                    config.warn(path, f"{where} does not render this: {why}")


def _ordered(drms: set[DrmSystem] | frozenset[DrmSystem]) -> list[DrmSystem]:
    return [drm for drm in DrmSystem if drm in drms]
