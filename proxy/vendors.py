"""Vendor adapters and the backends configured from them.

An adapter is a pure translator: from (challenge, principal, policy, backend
settings) it builds the upstream HTTP request, and from the upstream response
it makes a license or a typed error. The core owns the network. A *local*
adapter (ClearKey) answers by itself instead. Both register through
``proxy_register_vendors`` with a :class:`VendorSpec`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import Field

from proxy.config import ConfigContext, Duration, StrictModel
from proxy.model import ChallengeInfo, DrmSystem, Principal, RequestContext
from proxy.policy import EffectivePolicy


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
class VendorSpec:
    """A vendor adapter as registered through ``proxy_register_vendors``.

    :param name: what ``[backends.NAME] vendor = "..."`` refers to.
    :param settings: the pydantic model (a :class:`BackendSettings` subclass)
        that validates a backend's section.
    :param adapter: ``factory(backend_name, settings, services)`` returning the
        adapter for one configured backend; parse keys here, once.
    :param drm_systems: the DRM systems the adapter serves.
    """

    name: str
    settings: type[BackendSettings]
    adapter: AdapterFactory
    drm_systems: frozenset[DrmSystem]
    description: str = ""


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

    def __post_init__(self) -> None:
        self.local = isinstance(self.adapter, LocalAdapter)


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
        return backends
