"""Loading plugins into pluggy, and listing each hook's implementations in calling order.

Plugins come from three places, registered in this order: the ``license_proxy``
entry-point group (built-ins and installed in-house plugins, by name), the
config's ``[plugins] modules``, and objects an embedding program or a test
hands over. An object whose class (or module) an entry point also loads takes
that entry point's name and place instead of loading a second copy.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import CoroutineType, ModuleType
from typing import Any

import pluggy

from proxy import hookspecs
from proxy.errors import ConfigError


@dataclass(slots=True)
class PluginInfo:
    """A loaded plugin: its name, where it came from and which hooks it implements."""

    name: str
    source: str
    hooks: list[str] = field(default_factory=list)
    idle: bool = False
    """Configured with nothing to do: its per-request hooks are not called."""
    order: int = 0
    """Its place within a pluggy tier (lower runs first)."""


@dataclass(slots=True, frozen=True)
class Impl:
    """One implementation of a hook, ready to call with the hook's arguments in spec order."""

    plugin: str
    function: Callable[..., Any]
    positions: tuple[int, ...]
    """For each argument the implementation takes, its index among the spec's arguments."""
    full: bool
    """True when the implementation takes every argument, in spec order."""

    def call(self, args: Sequence[Any]) -> Any:
        """Call the implementation with the arguments it declares."""
        if self.full:
            return self.function(*args)
        return self.function(*[args[i] for i in self.positions])


def awaitable(result: Any) -> bool:
    """True when a hook's result must be awaited."""
    # Coroutines first (the usual async answer), then anything with __await__;
    # inspect.isawaitable costs a microsecond per call on the hot path.
    return type(result) is CoroutineType or (
        result is not None and hasattr(type(result), "__await__")
    )


def _instantiate(obj: Any) -> Any:
    """Plugins may be modules, instances, or classes (instantiated once per host)."""
    return obj() if inspect.isclass(obj) else obj


def _load_path(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    return _instantiate(getattr(module, attr) if attr else module)


def _origin(obj: Any) -> Any:
    """What an entry point would load for ``obj``: its module, or its class."""
    if isinstance(obj, ModuleType) or inspect.isclass(obj):
        return obj
    return type(obj)


def _order(plugin: Any) -> int:
    order = getattr(plugin, "order", 0)
    return order if isinstance(order, int) and not isinstance(order, bool) else 0


class PluginLoader:
    """Registers plugins with a pluggy manager and reports every loading mistake at once."""

    def __init__(self, blocked: Iterable[str] = ()) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.blocked = list(blocked)
        for name in self.blocked:
            self.pm.set_blocked(name)
        self.infos: list[PluginInfo] = []

    def load(
        self, *, modules: Iterable[str], plugins: Iterable[Any], load_entrypoints: bool
    ) -> None:
        """Register every plugin; raise :class:`ConfigError` listing every failure."""
        errors: list[tuple[str, str]] = []
        explicit: list[tuple[str | None, Any]] = []
        for item in plugins:
            name, obj = item if isinstance(item, tuple) else (None, item)
            explicit.append((name, _instantiate(obj)))
        if load_entrypoints:
            errors += self._load_entrypoints(explicit)
        for index, path in enumerate(modules):
            try:
                self._register(_load_path(path), path, "config [plugins] modules")
            except Exception as exc:
                errors.append((f"plugins.modules[{index}]", f"cannot load {path!r}: {exc}"))
        for name, obj in explicit:
            name = name or getattr(obj, "__name__", None) or type(obj).__name__
            self._register(obj, name, "registered by the embedding program")
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or type(exc.plugin).__name__
            errors.append((f"plugins.{name}", str(exc)))
        if errors:
            raise ConfigError(errors)

    def _load_entrypoints(self, explicit: list[tuple[str | None, Any]]) -> list[tuple[str, str]]:
        errors = []
        for ep in sorted(entry_points(group=hookspecs.PROJECT_NAME), key=lambda ep: ep.name):
            if self.pm.is_blocked(ep.name) or self.pm.has_plugin(ep.name):
                continue
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            try:
                loaded = ep.load()
            except Exception as exc:
                errors.append((f"plugins.{ep.name}", f"cannot load {ep.value}: {exc}"))
                continue
            replacement = _take_replacement(explicit, loaded)
            if replacement is not None:
                self._register(replacement, ep.name, f"{dist} ({ep.value}), passed explicitly")
                continue
            try:
                self._register(_instantiate(loaded), ep.name, f"{dist} ({ep.value})")
            except Exception as exc:
                errors.append((f"plugins.{ep.name}", f"cannot load {ep.value}: {exc}"))
        return errors

    def _register(self, plugin: Any, name: str | None, source: str) -> None:
        registered = self.pm.register(plugin, name=name)
        if registered is None:  # blocked
            return
        hooks = [h.name for h in self.pm.get_hookcallers(plugin) or ()]
        self.infos.append(PluginInfo(registered, source, hooks, order=_order(plugin)))

    def collect(self, hook_name: str) -> tuple[Impl, ...]:
        """``hook_name``'s implementations in calling order (see :mod:`proxy.hookspecs`)."""
        caller = getattr(self.pm.hook, hook_name)
        spec_args = tuple(caller.spec.argnames) if caller.spec is not None else ()
        ranked = []
        # pluggy keeps implementations in registration order and calls them
        # last-first, trylast ones first in its list; the host keeps that order
        # and sorts (stably) by tier, then by the plugin's order.
        for impl in reversed(caller.get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                raise ConfigError(
                    [(f"plugins.{impl.plugin_name}", f"{hook_name} can't be a wrapper")]
                )
            tier = 0 if impl.tryfirst else 2 if impl.trylast else 1
            positions = tuple(spec_args.index(a) for a in impl.argnames)
            full = positions == tuple(range(len(spec_args)))
            ranked.append(
                (
                    (tier, _order(impl.plugin)),
                    Impl(impl.plugin_name, impl.function, positions, full),
                )
            )
        ranked.sort(key=lambda pair: pair[0])
        return tuple(impl for _, impl in ranked)

    def idle_names(self) -> set[str]:
        """Plugins that set ``enabled = False`` while configuring."""
        return {
            info.name
            for info in self.infos
            if getattr(self.pm.get_plugin(info.name), "enabled", True) is False
        }

    def known_names(self) -> set[str]:
        """Every loaded plugin's name and every installed entry point's."""
        names = {info.name for info in self.infos}
        names.update(ep.name for ep in entry_points(group=hookspecs.PROJECT_NAME))
        return names


def _take_replacement(explicit: list[tuple[str | None, Any]], loaded: Any) -> Any:
    """Remove and return the explicit plugin that is the entry point's own plugin, if any."""
    for index, (_, obj) in enumerate(explicit):
        if obj is loaded or _origin(obj) is loaded:
            del explicit[index]
            return obj
    return None


__all__ = ["Impl", "PluginInfo", "PluginLoader", "awaitable"]
