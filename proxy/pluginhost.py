"""The one place that knows pluggy: loads plugins, then calls each hook by its declared rule.

pluggy calls hooks synchronously and takes a coroutine object for an answer,
so per-request hooks are never called through ``pm.hook``. The host takes each
hook's implementations once (pluggy's order, ``tryfirst``/``trylast`` and
blocking included, then the plugins' ``order``), calls them itself, awaits what
is awaitable and resolves the results by the rule :data:`proxy.hookspecs.HOOKS`
declares. The pipeline calls one typed method per hook (:meth:`PluginHost.authorize`,
:meth:`PluginHost.select_policy`, ...), never a hook by its name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from proxy import hookspecs, metrics
from proxy.errors import ConfigError, ProxyError, Reason
from proxy.hookspecs import HOOKS, Rule
from proxy.model import DecisionStep
from proxy.pluginload import PluginInfo, PluginLoader, awaitable

if TYPE_CHECKING:
    from proxy.config import ConfigContext
    from proxy.model import ChallengeInfo, LicenseResult, Principal, RequestContext
    from proxy.pluginload import Impl
    from proxy.policy import EffectivePolicy
    from proxy.vendors import VendorSpec

log = logging.getLogger("proxy.plugins")

#: The hooks called once per request, in pipeline order.
PER_REQUEST_HOOKS: tuple[str, ...] = tuple(name for name, h in HOOKS.items() if h.rule.per_request)


def hook_rule(name: str) -> Rule:
    """The calling rule declared for hook ``name``."""
    return HOOKS[name].rule


class PluginHost:
    """Loads the plugins of one pipeline and calls their hooks, one typed method per hook.

    :param blocked: plugin names that must not load.
    :param modules: extra ``module`` or ``module:attr`` plugin paths (``[plugins] modules``).
    :param plugins: extra plugin objects, as ``(name, plugin)`` pairs or bare objects
        (tests and embedding programs). One whose class (or module) an installed entry
        point also loads replaces that entry point's copy, under its name and in its
        place, so a plugin is never loaded twice.
    :param load_entrypoints: load the ``license_proxy`` entry-point group (the
        built-ins and every installed in-house plugin).
    :param keep_going: record plugins that fail to load in :attr:`load_errors` instead
        of raising, and serve with the others (the builder then refuses the config).
    """

    def __init__(
        self,
        *,
        blocked: Iterable[str] = (),
        modules: Iterable[str] = (),
        plugins: Iterable[Any] = (),
        load_entrypoints: bool = True,
        keep_going: bool = False,
    ) -> None:
        loader = PluginLoader(blocked)
        #: Plugins that failed to load, as ``(key path, message)`` (with ``keep_going``).
        self.load_errors: list[tuple[str, str]] = []
        try:
            loader.load(modules=modules, plugins=plugins, load_entrypoints=load_entrypoints)
        except ConfigError as exc:
            # Every other plugin is registered by now: with keep_going the config is
            # checked on, so that one run lists every mistake.
            if not keep_going:
                raise
            self.load_errors = list(exc.errors)
        self._loader = loader
        self.blocked = loader.blocked
        self.infos: list[PluginInfo] = loader.infos
        self._impls: dict[str, tuple[Impl, ...]] = {name: loader.collect(name) for name in HOOKS}

    # -- what is loaded ------------------------------------------------------------

    def plugin_names(self) -> list[str]:
        """Names of every loaded plugin, in registration order."""
        return [info.name for info in self.infos]

    def implementations(self, hook_name: str) -> list[str]:
        """Plugin names implementing ``hook_name``, in calling order."""
        return [impl.plugin for impl in self._impls[hook_name]]

    def drop_idle(self) -> list[str]:
        """Stop calling the per-request hooks of plugins that said they have nothing to do.

        A plugin with nothing configured may set ``self.enabled = False`` in
        ``proxy_configure``; its per-request hooks are then skipped for the
        pipeline's lifetime. Returns the names of the idle plugins.
        """
        idle = self._loader.idle_names()
        for hook in PER_REQUEST_HOOKS:
            self._impls[hook] = tuple(impl for impl in self._impls[hook] if impl.plugin not in idle)
        for info in self.infos:
            info.idle = info.name in idle
        return sorted(idle)

    # -- start-up hooks ----------------------------------------------------------

    def configure(self, config: ConfigContext) -> None:
        """``proxy_configure`` on every plugin; errors are collected on ``config``, never raised."""
        known = self._loader.known_names()
        for name in self.blocked:
            if name not in known:
                config.warn("plugins.blocked", f"no plugin named {name!r} is installed")
        for impl in self._impls["proxy_configure"]:
            try:
                impl.function(config)
            except ConfigError as exc:
                config.errors.extend(exc.errors)
            except Exception as exc:
                log.exception("plugin %s failed in proxy_configure", impl.plugin)
                config.error(f"plugins.{impl.plugin}", f"failed to configure: {exc}")

    def register_vendors(self, register: Callable[[VendorSpec], None]) -> list[tuple[str, str]]:
        """``proxy_register_vendors`` on every plugin; errors as ``(path, message)``."""
        errors = []
        for impl in self._impls["proxy_register_vendors"]:
            try:
                impl.function(register)
            except Exception as exc:
                errors.append((f"plugins.{impl.plugin}", f"failed to register vendors: {exc}"))
        return errors

    # -- per-request hooks, one typed method each ---------------------------------------

    async def inspect_challenge(self, ctx: RequestContext) -> ChallengeInfo | None:
        """``proxy_inspect_challenge``: the first inspector that recognises the challenge."""
        return await self._first("proxy_inspect_challenge", ctx, _describe_challenge, (ctx,))

    async def authenticate(self, ctx: RequestContext) -> Principal | None:
        """``proxy_authenticate``: the first authenticator that verified the token."""
        return await self._first("proxy_authenticate", ctx, _describe_principal, (ctx,))

    async def authorize(self, ctx: RequestContext, principal: Principal) -> None:
        """``proxy_authorize``: every access rule, until one denies (raises ``ProxyError``)."""
        await self._all("proxy_authorize", ctx, (ctx, principal))

    async def select_policy(
        self, ctx: RequestContext, principal: Principal
    ) -> EffectivePolicy | None:
        """``proxy_select_policy``: the first elected policy."""
        return await self._first("proxy_select_policy", ctx, _describe_policy, (ctx, principal))

    async def authorize_policy(
        self, ctx: RequestContext, principal: Principal, policy: EffectivePolicy
    ) -> None:
        """``proxy_authorize_policy``: every policy-bound rule, until one denies."""
        await self._all("proxy_authorize_policy", ctx, (ctx, principal, policy))

    async def select_backends(
        self, ctx: RequestContext, principal: Principal, policy: EffectivePolicy
    ) -> list[str] | None:
        """``proxy_select_backends``: the first backend list, in failover order."""
        return await self._first(
            "proxy_select_backends", ctx, _describe_backends, (ctx, principal, policy)
        )

    async def license_issued(self, ctx: RequestContext, result: LicenseResult) -> None:
        """``proxy_license_issued``: every observer; their errors never change the answer."""
        await self._notify("proxy_license_issued", (ctx, result))

    async def license_denied(self, ctx: RequestContext, error: ProxyError) -> None:
        """``proxy_license_denied``: every observer; their errors never change the answer."""
        await self._notify("proxy_license_denied", (ctx, error))

    # -- the rules ------------------------------------------------------------------

    async def _invoke(self, impl: Impl, hook: str, args: Sequence[Any]) -> Any:
        try:
            result = impl.call(args)
            if awaitable(result):
                result = await result
            return result
        except ProxyError:
            raise
        except Exception:
            log.exception("plugin %s failed in %s", impl.plugin, hook)
            metrics.PLUGIN_ERRORS.labels(impl.plugin, hook).inc()
            raise ProxyError(Reason.INTERNAL, "a plugin failed; the request was refused") from None

    async def _first(
        self,
        hook: str,
        ctx: RequestContext,
        describe: Callable[[Any], str],
        args: Sequence[Any],
    ) -> Any:
        """The *first* rule: implementations in order until one answers (not None)."""
        trace = ctx.trace
        for impl in self._impls[hook]:
            if trace is None:
                result = await self._invoke(impl, hook, args)
            else:
                step = DecisionStep(hook, impl.plugin)
                trace.append(step)
                try:
                    result = await self._invoke(impl, hook, args)
                except ProxyError as exc:
                    step.verdict = f"deny:{exc.reason.value}"
                    step.reasons.append(exc.detail)
                    raise
                step.verdict = "no opinion" if result is None else describe(result)
            if result is not None:
                return result
        return None

    async def _all(self, hook: str, ctx: RequestContext, args: Sequence[Any]) -> None:
        """The *all* rule for deciding hooks: every implementation, until one denies."""
        trace = ctx.trace
        for impl in self._impls[hook]:
            if trace is None:
                await self._invoke(impl, hook, args)
                continue
            step = DecisionStep(hook, impl.plugin)
            trace.append(step)
            try:
                await self._invoke(impl, hook, args)
            except ProxyError as exc:
                step.verdict = f"deny:{exc.reason.value}"
                step.reasons.append(exc.detail)
                raise
            step.verdict = "allow"

    async def _notify(self, hook: str, args: Sequence[Any]) -> None:
        """The *observer* rule: every implementation runs; errors are logged and counted."""
        for impl in self._impls[hook]:
            try:
                result = impl.call(args)
                if awaitable(result):
                    await result
            except Exception:
                log.exception("observer %s failed in %s", impl.plugin, hook)
                metrics.PLUGIN_ERRORS.labels(impl.plugin, hook).inc()


def _describe_challenge(info: ChallengeInfo) -> str:
    return f"{info.drm_system.value}:{info.request_type.value}"


def _describe_principal(principal: Principal) -> str:
    return f"principal:{principal.subject or '-'}@{principal.issuer or '-'}"


def _describe_policy(policy: EffectivePolicy) -> str:
    return f"policy:{policy.name}"


def _describe_backends(names: list[str]) -> str:
    return "backends:" + ",".join(names)


__all__ = ["PER_REQUEST_HOOKS", "PluginHost", "PluginInfo", "hook_rule", "hookspecs"]
