"""The hooks of the license pipeline, in the order a request meets them.

Implement any of them in a plugin (a module or a class) decorated with
:data:`proxy.hookimpl`, and register it in the ``license_proxy`` entry-point
group. Each docstring states the hook's calling rule on its ``Rule:`` line;
:mod:`proxy.pluginhost` reads that line and resolves results accordingly:

- **first**: implementations run in pluggy's order (``tryfirst`` first, later
  registrations before earlier ones); the first result that is not None wins
  and the rest do not run.
- **all**: every implementation runs. For ``proxy_authorize`` a raised
  :class:`proxy.ProxyError` denies the request and stops the chain, so a later
  rule never spends state (a single-use token, a session slot) on a request that
  is denied anyway.

Per-request hooks may be plain functions or ``async def``. A ``ProxyError``
keeps its reason code; any other exception denies the request with
``INTERNAL``, logged with the plugin's name (fail closed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable

    from proxy.config import ConfigContext
    from proxy.errors import ProxyError
    from proxy.model import ChallengeInfo, LicenseResult, Principal, RequestContext
    from proxy.policy import EffectivePolicy
    from proxy.vendors import VendorSpec

PROJECT_NAME = "license_proxy"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
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


@hookspec
def proxy_register_vendors(register: Callable[[VendorSpec], None]) -> None:
    """Register vendor adapters: a name, a settings model and an adapter factory.

    Called once at start, before backends are validated: each
    ``[backends.NAME]`` section names its adapter with ``vendor = "..."``
    and is validated with that adapter's settings model.

    Rule: all (sync, at start)

    :param register: call it with a :class:`proxy.vendors.VendorSpec` for
        each adapter this plugin provides.

    Example::

        @hookimpl
        def proxy_register_vendors(register):
            register(VendorSpec(name="acme", settings=AcmeSettings, adapter=AcmeAdapter,
                                drm_systems=frozenset({DrmSystem.WIDEVINE})))
    """


@hookspec
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


@hookspec
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


@hookspec
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


@hookspec
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


@hookspec
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


@hookspec
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


@hookspec
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


@hookspec
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


#: Every hook, in pipeline order.
HOOK_NAMES: tuple[str, ...] = (
    "proxy_configure",
    "proxy_register_vendors",
    "proxy_inspect_challenge",
    "proxy_authenticate",
    "proxy_authorize",
    "proxy_select_policy",
    "proxy_authorize_policy",
    "proxy_select_backends",
    "proxy_license_issued",
    "proxy_license_denied",
)

__all__ = ["HOOK_NAMES", "PROJECT_NAME", "hookspec"]
