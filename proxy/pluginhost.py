"""The one place that knows pluggy: loads plugins, then calls hooks by their rule.

pluggy calls hooks synchronously and takes a coroutine object for an answer,
so per-request hooks are never called through ``pm.hook``. The host takes
each hook's implementations once (pluggy's order, ``tryfirst``/``trylast`` and
blocking included), calls them itself, awaits what is awaitable and resolves
the results by the rule the hookspec's docstring states.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import CoroutineType
from typing import Any

import pluggy

from proxy import hookspecs, metrics
from proxy.config import ConfigContext
from proxy.errors import ConfigError, ProxyError, Reason
from proxy.model import DecisionStep, RequestContext

log = logging.getLogger("proxy.plugins")

_RULE_LINE = re.compile(
    r"^\s*Rule:\s*(first|all)(?:\s*\((observer|sync, at start)\))?", re.MULTILINE
)

PER_REQUEST_HOOKS = (
    "proxy_inspect_challenge",
    "proxy_authenticate",
    "proxy_authorize",
    "proxy_select_policy",
    "proxy_authorize_policy",
    "proxy_select_backends",
    "proxy_license_issued",
    "proxy_license_denied",
)


def hook_rule(name: str) -> str:
    """The calling rule a hookspec's docstring states: ``first``, ``all``,
    ``observer`` (all, errors never change the answer) or ``startup`` (all, sync)."""
    doc = getattr(hookspecs, name).__doc__ or ""
    match = _RULE_LINE.search(doc)
    if match is None:
        raise RuntimeError(f"hookspec {name} does not state its rule")
    if match[2] == "observer":
        return "observer"
    if match[2]:
        return "startup"
    return match[1]


@dataclass(slots=True)
class PluginInfo:
    """A loaded plugin: its name, where it came from and which hooks it implements."""

    name: str
    source: str
    hooks: list[str] = field(default_factory=list)
    idle: bool = False
    """Configured with nothing to do: its per-request hooks are not called."""


@dataclass(slots=True, frozen=True)
class _Impl:
    plugin: str
    function: Callable[..., Any]
    argnames: tuple[str, ...]
    owner: Any = field(compare=False, repr=False, default=None)


def _instantiate(obj: Any) -> Any:
    """Plugins may be modules, instances, or classes (instantiated once per host)."""
    return obj() if inspect.isclass(obj) else obj


class PluginHost:
    """Loads the plugins of one pipeline and calls their hooks.

    :param blocked: plugin names that must not load.
    :param modules: extra ``module`` or ``module:attr`` plugin paths (``[plugins] modules``).
    :param plugins: extra plugin objects, as ``(name, plugin)`` pairs or bare objects
        (tests and embedding programs).
    :param load_entrypoints: load the ``license_proxy`` entry-point group (the
        built-ins and every installed in-house plugin).
    """

    def __init__(
        self,
        *,
        blocked: Iterable[str] = (),
        modules: Iterable[str] = (),
        plugins: Iterable[Any] = (),
        load_entrypoints: bool = True,
    ) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self.blocked = list(blocked)
        for name in self.blocked:
            self._pm.set_blocked(name)
        self.infos: list[PluginInfo] = []
        errors: list[tuple[str, str]] = []
        if load_entrypoints:
            errors += self._load_entrypoints()
        for index, path in enumerate(modules):
            try:
                self._register(_load_path(path), path, "config [plugins] modules")
            except Exception as exc:
                errors.append((f"plugins.modules[{index}]", f"cannot load {path!r}: {exc}"))
        for item in plugins:
            name, obj = item if isinstance(item, tuple) else (None, item)
            obj = _instantiate(obj)
            name = name or getattr(obj, "__name__", None) or type(obj).__name__
            self._register(obj, name, "registered by the embedding program")
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self._pm.get_name(exc.plugin) or type(exc.plugin).__name__
            errors.append((f"plugins.{name}", str(exc)))
        if errors:
            raise ConfigError(errors)
        self._impls: dict[str, tuple[_Impl, ...]] = {}
        self.rules: dict[str, str] = {}
        for name in hookspecs.HOOK_NAMES:
            self._impls[name] = self._collect(name)
            self.rules[name] = hook_rule(name)

    # -- loading ---------------------------------------------------------------

    def _load_entrypoints(self) -> list[tuple[str, str]]:
        errors = []
        for ep in entry_points(group=hookspecs.PROJECT_NAME):
            if self._pm.is_blocked(ep.name) or self._pm.has_plugin(ep.name):
                continue
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            try:
                self._register(_instantiate(ep.load()), ep.name, f"{dist} ({ep.value})")
            except Exception as exc:
                errors.append((f"plugins.{ep.name}", f"cannot load {ep.value}: {exc}"))
        return errors

    def _register(self, plugin: Any, name: str | None, source: str) -> None:
        registered = self._pm.register(plugin, name=name)
        if registered is None:  # blocked
            return
        hooks = [h.name for h in self._pm.get_hookcallers(plugin) or ()]
        self.infos.append(PluginInfo(registered, source, hooks))

    def _collect(self, hook_name: str) -> tuple[_Impl, ...]:
        caller = getattr(self._pm.hook, hook_name)
        impls = []
        # pluggy keeps implementations in registration order and calls them
        # last-first; the host keeps that order.
        for impl in reversed(caller.get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                raise ConfigError(
                    [(f"plugins.{impl.plugin_name}", f"{hook_name} can't be a wrapper")]
                )
            impls.append(_Impl(impl.plugin_name, impl.function, tuple(impl.argnames), impl.plugin))
        return tuple(impls)

    def drop_idle(self) -> list[str]:
        """Stop calling the per-request hooks of plugins that said they have nothing to do.

        A plugin whose section is absent may set ``self.enabled = False`` in
        ``proxy_configure``; its per-request hooks are then skipped for the
        pipeline's lifetime (they would return at once anyway). Returns the
        names of the idle plugins.
        """
        idle = [
            info.name
            for info in self.infos
            if getattr(self._pm.get_plugin(info.name), "enabled", True) is False
        ]
        for hook in PER_REQUEST_HOOKS:
            self._impls[hook] = tuple(impl for impl in self._impls[hook] if impl.plugin not in idle)
        for info in self.infos:
            info.idle = info.name in idle
        return idle

    # -- start-up hooks ----------------------------------------------------------

    def plugin_names(self) -> list[str]:
        """Names of every loaded plugin, in registration order."""
        return [info.name for info in self.infos]

    def implementations(self, hook_name: str) -> list[str]:
        """Plugin names implementing ``hook_name``, in calling order."""
        return [impl.plugin for impl in self._impls[hook_name]]

    def configure(self, config: ConfigContext) -> None:
        """Call every ``proxy_configure``; errors are collected on ``config``, never raised."""
        for name in self.blocked:
            if name not in self._known_names():
                config.warn("plugins.blocked", f"no plugin named {name!r} is installed")
        for impl in self._impls["proxy_configure"]:
            try:
                impl.function(config)
            except ConfigError as exc:
                config.errors.extend(exc.errors)
            except Exception as exc:
                log.exception("plugin %s failed in proxy_configure", impl.plugin)
                config.error(f"plugins.{impl.plugin}", f"failed to configure: {exc}")

    def register_vendors(self, register: Callable[[Any], None]) -> list[tuple[str, str]]:
        """Call every ``proxy_register_vendors``; return errors as ``(path, message)``."""
        errors = []
        for impl in self._impls["proxy_register_vendors"]:
            try:
                impl.function(register)
            except Exception as exc:
                errors.append((f"plugins.{impl.plugin}", f"failed to register vendors: {exc}"))
        return errors

    def _known_names(self) -> set[str]:
        names = {info.name for info in self.infos}
        names.update(ep.name for ep in entry_points(group=hookspecs.PROJECT_NAME))
        return names

    # -- per-request hooks ---------------------------------------------------------

    async def _invoke(self, impl: _Impl, hook: str, kwargs: dict[str, Any]) -> Any:
        try:
            result = impl.function(*[kwargs[a] for a in impl.argnames])
            if _awaitable(result):
                result = await result
            return result
        except ProxyError:
            raise
        except Exception:
            log.exception("plugin %s failed in %s", impl.plugin, hook)
            metrics.PLUGIN_ERRORS.labels(impl.plugin, hook).inc()
            raise ProxyError(Reason.INTERNAL, "a plugin failed; the request was refused") from None

    async def call_first(
        self, hook: str, ctx: RequestContext, describe: Callable[[Any], str], **kwargs: Any
    ) -> tuple[str | None, Any]:
        """Call ``hook`` by the *first* rule; return ``(plugin name, result)`` or ``(None, None)``."""
        kwargs["ctx"] = ctx
        trace = ctx.trace
        for impl in self._impls[hook]:
            if trace is None:
                result = await self._invoke(impl, hook, kwargs)
            else:
                step = DecisionStep(hook, impl.plugin)
                trace.append(step)
                try:
                    result = await self._invoke(impl, hook, kwargs)
                except ProxyError as exc:
                    step.verdict = f"deny:{exc.reason.value}"
                    step.reasons.append(exc.detail)
                    raise
                step.verdict = "no opinion" if result is None else describe(result)
            if result is not None:
                return impl.plugin, result
        return None, None

    async def call_all(self, hook: str, ctx: RequestContext, **kwargs: Any) -> None:
        """Call a deciding hook by the *all* rule: every implementation, until one denies."""
        kwargs["ctx"] = ctx
        trace = ctx.trace
        for impl in self._impls[hook]:
            if trace is None:
                await self._invoke(impl, hook, kwargs)
                continue
            step = DecisionStep(hook, impl.plugin)
            trace.append(step)
            try:
                await self._invoke(impl, hook, kwargs)
            except ProxyError as exc:
                step.verdict = f"deny:{exc.reason.value}"
                step.reasons.append(exc.detail)
                raise
            step.verdict = "allow"

    async def notify(self, hook: str, ctx: RequestContext, **kwargs: Any) -> None:
        """Call an observer hook: every implementation runs; errors are logged and counted."""
        kwargs["ctx"] = ctx
        for impl in self._impls[hook]:
            try:
                result = impl.function(*[kwargs[a] for a in impl.argnames])
                if _awaitable(result):
                    await result
            except Exception:
                log.exception("observer %s failed in %s", impl.plugin, hook)
                metrics.PLUGIN_ERRORS.labels(impl.plugin, hook).inc()

    async def call(
        self, hook: str, ctx: RequestContext, describe: Callable[[Any], str] = str, **kwargs: Any
    ) -> tuple[str | None, Any]:
        """Call a per-request hook by the rule its docstring states.

        *first* returns ``(plugin, result)`` of the first non-None result;
        *all* and *observer* return ``(None, None)``.
        """
        rule = self.rules[hook]
        if rule == "first":
            return await self.call_first(hook, ctx, describe, **kwargs)
        if rule == "all":
            await self.call_all(hook, ctx, **kwargs)
        elif rule == "observer":
            await self.notify(hook, ctx, **kwargs)
        else:
            raise RuntimeError(f"{hook} is a start-up hook")
        return None, None


def _awaitable(result: Any) -> bool:
    # Coroutines first (the usual async answer), then anything with __await__;
    # inspect.isawaitable costs a microsecond per call on the hot path.
    return type(result) is CoroutineType or (
        result is not None and hasattr(type(result), "__await__")
    )


def _load_path(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    return _instantiate(getattr(module, attr) if attr else module)
