"""The hooks of the license pipeline, in the order a request meets them.

Implement any of them in a plugin (a module or a class) decorated with
:data:`proxy.hookimpl`, and register it in the ``license_proxy`` entry-point
group. Each hook's calling rule is declared in code, with :func:`spec` and a
:class:`Rule`, in :data:`HOOKS`; the ``Rule:`` line of each docstring and of
``docs/hooks.md`` says the same in prose (a test holds them together), and
:class:`proxy.pluginhost.PluginHost` resolves results by it:

- **first**: implementations run in order; the first result that is not None
  wins and the rest do not run.
- **all**: every implementation runs, in order, until one raises
  :class:`proxy.ProxyError`: that denial is the answer and later
  implementations do not run, so a later rule never spends state (a
  single-use token, a session slot) on a request that is denied anyway.
- **observer**: every implementation runs; errors are logged and counted and
  never change the answer.
- **startup**: every implementation runs once, synchronously, at start.

Order: pluggy's tiers first (``tryfirst``, unmarked, ``trylast``), then, within
a tier, ascending ``order`` of the plugin (an optional integer attribute,
default 0), then the later-registered plugin first (pluggy's own rule). The
built-in access rules use this to run cheap local checks before the rules that
spend shared state (``docs/hooks.md``, "Order").

Per-request hooks may be plain functions or ``async def``. A ``ProxyError``
keeps its reason code; any other exception denies the request with
``INTERNAL``, logged with the plugin's name (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

if TYPE_CHECKING:
    from proxy.config import ConfigContext
    from proxy.errors import ProxyError
    from proxy.model import ChallengeInfo, LicenseResult, Principal, RequestContext
    from proxy.policy import EffectivePolicy
    from proxy.vendors import VendorSpec

PROJECT_NAME = "license_proxy"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


class Rule(StrEnum):
    """How the host calls a hook and resolves its results (see the module docstring)."""

    FIRST = "first"
    ALL = "all"
    OBSERVER = "observer"
    STARTUP = "startup"

    @property
    def per_request(self) -> bool:
        """True for hooks called once per request (not at start)."""
        return self is not Rule.STARTUP

    @property
    def docstring_line(self) -> str:
        """The ``Rule:`` line a hookspec's docstring carries for this rule."""
        return _DOCSTRING_LINES[self]


_DOCSTRING_LINES = {
    Rule.FIRST: "Rule: first",
    Rule.ALL: "Rule: all",
    Rule.OBSERVER: "Rule: all (observer)",
    Rule.STARTUP: "Rule: all (sync, at start)",
}


@dataclass(frozen=True, slots=True)
class Hook:
    """A declared hook: its name, its calling rule and its spec function."""

    name: str
    rule: Rule
    function: Callable[..., Any]


#: Every hook by name, in pipeline order: the one registry the host, the docs and the
#: meta-tests read.
HOOKS: dict[str, Hook] = {}

F = TypeVar("F", bound=Callable[..., Any])


def spec(rule: Rule) -> Callable[[F], F]:
    """Declare a hook with its calling rule (pluggy's ``hookspec`` plus our registry)."""

    def declare(function: F) -> F:
        HOOKS[function.__name__] = Hook(function.__name__, rule, function)
        return hookspec(function)

    return declare


@spec(Rule.STARTUP)
def proxy_configure(config: ConfigContext) -> None:
    """Read and validate this plugin's own section of the configuration.

    Called once at start (and by ``license-proxy check-config``), before any
    request. Validate with ``config.section("access.replay", MyModel)``: errors
    are recorded with their full key path and the proxy refuses to start,
    after every plugin has reported, so an operator sees every mistake at once.
    Keep what you need on ``self``; register background work (key refreshes,
    connection pools) with ``config.add_cleanup_ctx``.

    Rule: all (sync, at start)

    :param config: a :class:`proxy.config.ConfigContext`: ``raw`` document,
        ``server`` settings, ``services``, ``backend_names``, and the
        ``section``, ``error``, ``warn`` and ``add_cleanup_ctx`` methods.

    Example::

        class ReplayConfig(StrictModel):
            max_uses: int = 1

        @hookimpl
        def proxy_configure(self, config):
            self.settings = config.section("access.replay", ReplayConfig)
    """


@spec(Rule.STARTUP)
def proxy_register_vendors(register: Callable[[VendorSpec], None]) -> None:
    """Register vendor packages: a name, a settings model, an adapter factory, and
    what the adapter renders, its sandbox wiring and its FairPlay conventions.

    Called once at start, before backends are validated: each
    ``[backends.NAME]`` section names its vendor with ``vendor = "..."``
    and is validated with that vendor's settings model. A vendor that declares
    no rendering for a DRM renders nothing there: every restricting policy rule
    served through it fails the start (``docs/vendors.md``).

    Rule: all (sync, at start)

    :param register: call it with a :class:`proxy.VendorSpec` for each vendor
        this plugin provides.

    Example::

        @hookimpl
        def proxy_register_vendors(register):
            register(VendorSpec(name="acme", settings=AcmeSettings, adapter=AcmeAdapter,
                                drm_systems=frozenset({DrmSystem.WIDEVINE}),
                                renderings={DrmSystem.WIDEVINE: WIDEVINE_RENDERING},
                                sandbox=make_sandbox))
    """


@spec(Rule.FIRST)
def proxy_inspect_challenge(ctx: RequestContext) -> ChallengeInfo | None:
    """Read the challenge: which DRM, which key ids, what kind of request.

    Return a :class:`proxy.model.ChallengeInfo` when the challenge is yours,
    None when it is not (the next inspector is asked). Raise
    ``ProxyError(Reason.CHALLENGE_INVALID, "short reason")`` when it is yours
    but unreadable. ``ctx.request.drm_system`` is the DRM the caller named, or
    None when the proxy must detect it. The size limit was checked before.

    Rule: first

    :param ctx: the request context; ``ctx.request.challenge`` holds the bytes.

    Example::

        @hookimpl
        def proxy_inspect_challenge(ctx):
            if ctx.request.drm_system not in (None, DrmSystem.CLEARKEY):
                return None
            return ChallengeInfo(DrmSystem.CLEARKEY, RequestType.NEW, ctx.request.challenge)
    """


@spec(Rule.FIRST)
def proxy_authenticate(ctx: RequestContext) -> Principal | None:
    """Verify the caller's access token and say whom it speaks for.

    Return a :class:`proxy.model.Principal` when you verified the token;
    None when the request is not yours to judge (another authenticator is
    asked). Raise a ``ProxyError`` with a ``TOKEN_*`` reason to reject. When
    every implementation returns None the request is refused with
    ``TOKEN_MISSING``: nothing passes unauthenticated.

    Rule: first

    :param ctx: the request context; the token is in ``ctx.request.token``,
        ``ctx.request.headers`` or ``ctx.request.query``.

    Example::

        @hookimpl
        async def proxy_authenticate(ctx):
            key = ctx.request.headers.get("x-api-key")
            if key is None:
                return None
            if not await lookup(key):
                raise ProxyError(Reason.TOKEN_SIGNATURE_INVALID, "unknown API key")
            return Principal(subject="service-a", issuer="api-keys", claims={})
    """


@spec(Rule.ALL)
def proxy_authorize(ctx: RequestContext, principal: Principal) -> None:
    """Apply an access rule; raise ``ProxyError`` to deny.

    Every implementation runs, in order, until one denies: the first denial
    is the answer and later rules do not run. Rules that spend shared state
    (replay, concurrency) should be ``trylast`` so that they only spend it on
    requests every other rule allowed. The return value is ignored.
    ``ctx.policy`` is not known yet: rules that depend on the elected policy
    belong in ``proxy_authorize_policy``.

    Rule: all

    :param ctx: the request context (client address in ``ctx.request.client``).
    :param principal: the verified principal.

    Example::

        @hookimpl
        def proxy_authorize(ctx, principal):
            if "premium" not in principal.claims.get("groups", ()):
                raise ProxyError(Reason.NOT_ENTITLED, "premium content")
    """


@spec(Rule.FIRST)
def proxy_select_policy(ctx: RequestContext, principal: Principal) -> EffectivePolicy | None:
    """Elect the license policy for this request.

    Return a :class:`proxy.policy.EffectivePolicy`, or None to let the next
    implementation choose. When none returns one, the request is refused with
    ``NO_MATCHING_POLICY``. Use ``ctx.note(...)`` to record why this policy
    was chosen (it shows in dry runs and ``license-proxy explain``).

    Rule: first

    :param ctx: the request context (challenge facts in ``ctx.challenge``).
    :param principal: the verified principal, whose claims drive the election.

    Example::

        @hookimpl
        def proxy_select_policy(ctx, principal):
            if principal.claims.get("tier") == "trial":
                return EffectivePolicy.from_policy(TRIAL_POLICY, ctx.key_ids)
    """


@spec(Rule.ALL)
def proxy_authorize_policy(
    ctx: RequestContext, principal: Principal, policy: EffectivePolicy
) -> None:
    """Apply the access rules the elected policy carries; raise ``ProxyError`` to deny.

    Called right after the election, before backends are chosen. Policies may
    carry access rules of their own (``[[policies]] access``: addresses,
    required device ids) on top of the global ``proxy_authorize`` rules; a
    rule that only makes sense for some policies belongs here too. Like
    ``proxy_authorize``, every implementation runs until one denies.

    Rule: all

    :param ctx: the request context (``ctx.policy`` is set).
    :param principal: the verified principal.
    :param policy: the elected :class:`proxy.policy.EffectivePolicy`.

    Example::

        @hookimpl
        def proxy_authorize_policy(ctx, principal, policy):
            if policy.name == "studio-4k" and not principal.claims.get("hdcp_verified"):
                raise ProxyError(Reason.DEVICE_NOT_ALLOWED, "4K needs a verified device")
    """


@spec(Rule.FIRST)
def proxy_select_backends(
    ctx: RequestContext, principal: Principal, policy: EffectivePolicy
) -> list[str] | None:
    """Name the configured backends for this request, in failover order.

    Return a list of ``[backends.NAME]`` names, or None to let the next
    implementation choose. The built-in implementation returns the policy's
    ``backends``. An empty answer from every implementation, or a name that is
    not configured, is ``BACKEND_NOT_CONFIGURED``.

    Rule: first

    :param ctx: the request context.
    :param principal: the verified principal.
    :param policy: the elected policy.

    Example::

        @hookimpl
        def proxy_select_backends(ctx, principal, policy):
            if ctx.request.client.ip_address.startswith("10."):
                return ["vendor-eu", "vendor-us"]
    """


@spec(Rule.OBSERVER)
def proxy_license_issued(ctx: RequestContext, result: LicenseResult) -> None:
    """Observe an issued license (audit, metrics, billing).

    Called after the license is ready and before it is sent. An observer
    never changes the answer: its errors are logged and counted, and the
    license is still delivered. Dry runs are observed too
    (``result.dry_run``).

    Rule: all (observer)

    :param ctx: the request context.
    :param result: the :class:`proxy.model.LicenseResult` about to be sent.

    Example::

        @hookimpl
        async def proxy_license_issued(ctx, result):
            await audit_log.write(ctx.request_id, result.policy, result.backend)
    """


@spec(Rule.OBSERVER)
def proxy_license_denied(ctx: RequestContext, error: ProxyError) -> None:
    """Observe a denied or failed request.

    Called once per refused request with the error about to be sent. Like
    ``proxy_license_issued`` it never changes the answer; its errors are
    logged and counted.

    Rule: all (observer)

    :param ctx: the request context, filled as far as the request got.
    :param error: the :class:`proxy.ProxyError` about to be sent.

    Example::

        @hookimpl
        def proxy_license_denied(ctx, error):
            DENIALS.labels(error.reason.value).inc()
    """


#: Every hook's name, in pipeline order.
HOOK_NAMES: tuple[str, ...] = tuple(HOOKS)

__all__ = ["HOOKS", "HOOK_NAMES", "PROJECT_NAME", "Hook", "Rule", "hookspec", "spec"]
