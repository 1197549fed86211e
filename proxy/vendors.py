"""Vendor adapters and the backends configured from them.

An adapter is a pure translator: from (challenge, principal, policy, backend
settings) it builds the upstream HTTP request, and from the upstream response
it makes a license or a typed error. The core owns the network. A *local*
adapter (ClearKey) answers by itself instead. Both register through
``proxy_register_vendors`` with a :class:`VendorSpec`, which also carries what
else the vendor's package brings: its sandbox wiring (emulator, fresh keys,
backend section) and its FairPlay content-id conventions.

The core judges a backend before it is called, from the vendor's declarations:

- ``adapter.drm_systems`` (optional): the DRM systems this configured backend
  serves (those its settings give a URL for), a subset of its vendor's; the
  dispatcher skips a backend for the others, so the policy's next backend gets
  the request.
- ``VendorSpec.renderings``: what the adapter renders per DRM
  (:class:`~proxy.adapters.Rendering`). Declaring nothing means rendering
  nothing. At start, a rule of a configured policy the backend can't render is a
  config error when the license would be looser without it, a warning otherwise
  (:func:`check_policies`); per request, the dispatcher refuses a rule a trusted
  claim added (:class:`~proxy.adapters.PolicyNotRenderable`) and tries the
  policy's next backend. ``policy_enforced_by_vendor`` on a backend hands the
  rules of the DRMs it names to the vendor account's own configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from proxy.adapters.call import VendorCall, VendorLicense
from proxy.adapters.prepare import PolicyNotRenderable
from proxy.adapters.rendering import PolicyGap, Rendering, config_gaps, renders_nothing
from proxy.adapters.sandbox import VendorSandbox
from proxy.adapters.settings import BackendSettings
from proxy.challenge.fairplay import GENERIC, ContentIdConvention
from proxy.config import ConfigContext
from proxy.model import DrmSystem
from proxy.policy import Policy
from proxy.upstream.messages import UpstreamRequest, UpstreamResponse


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
#: What a vendor renders per DRM: fixed, or a function of a backend's settings.
Renderings = Mapping[DrmSystem, Rendering] | Callable[[Any], Mapping[DrmSystem, Rendering]]


@dataclass(frozen=True, slots=True)
class VendorSpec:
    """A vendor package as registered through ``proxy_register_vendors``.

    :param name: what ``[backends.NAME] vendor = "..."`` refers to.
    :param settings: the pydantic model (a :class:`BackendSettings` subclass)
        that validates a backend's section.
    :param adapter: ``factory(backend_name, settings, services)`` returning the
        adapter for one configured backend; parse keys here, once.
    :param drm_systems: the DRM systems the adapter serves.
    :param renderings: what the adapter puts in its vendor request, per DRM
        (:class:`~proxy.adapters.Rendering`), or a function of a backend's
        settings returning that. A DRM left out renders nothing: every
        restricting rule of a policy served for it fails the start, unless the
        backend sets ``policy_enforced_by_vendor``.
    :param sandbox: makes the vendor's part of ``--sandbox`` and of the
        ``vendor_sandbox`` fixture (a :class:`~proxy.adapters.VendorSandbox`: fresh
        keys, the emulator, the backend section); called only when a sandbox runs,
        so import the emulator inside it.
    :param fairplay_conventions: how the vendor's FairPlay key URIs name the
        content, selectable by name in ``[challenge.fairplay]``.
    :param description: one line for ``license-proxy plugins`` and the docs.
    :param correlation_headers: response headers in which the vendor names the exchange
        (its own request id), tried before the common ones; the core keeps the first
        found as ``vendor_correlation_id`` (:mod:`proxy.upstream.correlation`).
    """

    name: str
    settings: type[BackendSettings]
    adapter: AdapterFactory
    drm_systems: frozenset[DrmSystem]
    description: str = ""
    renderings: Renderings = field(default_factory=dict)
    sandbox: Callable[[], VendorSandbox] | None = None
    fairplay_conventions: tuple[ContentIdConvention, ...] = ()
    correlation_headers: tuple[str, ...] = ()

    def declared_renderings(self, settings: BackendSettings) -> Mapping[DrmSystem, Rendering]:
        """What the adapter renders for a backend with ``settings``, as declared."""
        if callable(self.renderings):
            return self.renderings(settings)
        return self.renderings


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
    renderings: dict[DrmSystem, Rendering] = field(init=False)
    """What this backend renders per DRM its vendor serves (``VendorSpec.renderings``,
    with ``policy_enforced_by_vendor`` applied); the start-up check and the
    dispatcher's per-request check both read it."""

    def __post_init__(self) -> None:
        self.local = isinstance(self.adapter, LocalAdapter)
        declared = getattr(self.adapter, "drm_systems", None)
        self.drm_systems = (
            self.spec.drm_systems & frozenset(declared)
            if declared is not None
            else self.spec.drm_systems
        )
        self.renderings = self.settings.effective_renderings(
            self.spec.name,
            self.spec.declared_renderings(self.settings),
            _ordered(self.spec.drm_systems),
        )

    def rendering(self, drm: DrmSystem) -> Rendering:
        """What this backend renders for ``drm`` (nothing for a DRM its vendor doesn't serve)."""
        return self.renderings.get(drm) or renders_nothing(self.spec.name, drm)


class VendorRegistry:
    """The vendor specs registered at start, and the backends built from config."""

    def __init__(self) -> None:
        self.specs: dict[str, VendorSpec] = {}
        self.errors: list[tuple[str, str]] = []
        self.fairplay_conventions: dict[str, ContentIdConvention] = {GENERIC.name: GENERIC}

    def register(self, spec: VendorSpec) -> None:
        """Add a vendor spec; a second spec with the same name is a start-up error."""
        if not isinstance(spec, VendorSpec):
            self.errors.append(("plugins", f"register() takes a VendorSpec, not {spec!r}"))
            return
        if spec.name in self.specs:
            self.errors.append(("plugins", f"vendor {spec.name!r} is registered twice"))
            return
        self.specs[spec.name] = spec
        for convention in spec.fairplay_conventions:
            if convention.name in self.fairplay_conventions:
                self.errors.append(
                    (
                        "plugins",
                        f"vendor {spec.name!r} registers the FairPlay content id convention "
                        f"{convention.name!r}, which is already registered",
                    )
                )
                continue
            self.fairplay_conventions[convention.name] = convention

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
            backend = Backend(name, spec, settings, adapter)
            if backend.local and settings.policy_enforced_by_vendor:
                config.error(
                    f"{path}.policy_enforced_by_vendor",
                    f"vendor {vendor!r} answers locally: there is no vendor account to "
                    "enforce the policy",
                )
                continue
            backends[name] = backend
        check_policies(config, backends)
        return backends


def check_policies(config: ConfigContext, backends: Mapping[str, Backend]) -> None:
    """Judge every ``[[policies]]`` entry against the backends it names.

    A rule a backend can't render for a DRM it serves (and the policy may be
    elected for) is an error when the license would be looser without it, a
    warning otherwise; a backend whose settings leave out a DRM its vendor serves
    is a warning (its requests for that DRM skip it). Every backend is judged: one
    whose vendor declares no rendering renders nothing. Policies that don't
    validate are left to the policy plugin, which reports them.
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
            grouped: dict[tuple[str, bool, str], list[str]] = {}
            for drm in _ordered(backend.drm_systems & wanted):
                for gap in config_gaps(policy, drm, backend.rendering(drm)):
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


def _ordered(drms: Iterable[DrmSystem]) -> list[DrmSystem]:
    wanted = frozenset(drms)
    return [drm for drm in DrmSystem if drm in wanted]


__all__ = [
    "AdapterFactory",
    "Backend",
    "BackendSettings",
    "LocalAdapter",
    "PolicyGap",
    "PolicyNotRenderable",
    "Renderings",
    "TranslatingAdapter",
    "UpstreamRequest",
    "UpstreamResponse",
    "VendorCall",
    "VendorLicense",
    "VendorRegistry",
    "VendorSpec",
    "check_policies",
]
