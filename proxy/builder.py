"""Turns a config document into a ready :class:`~proxy.pipeline.Pipeline`, or every error at once."""

from __future__ import annotations

import asyncio
import logging
import os
import tomllib
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from proxy import config_messages
from proxy.admin.settings import AdminConfig
from proxy.audit import AuditLog, AuditSettings
from proxy.config import ConfigContext, load_toml, validate_core
from proxy.errors import ConfigError
from proxy.listeners import listener_conflicts
from proxy.pipeline import Pipeline
from proxy.pluginhost import PluginHost
from proxy.services import Services
from proxy.state import MemoryStore, StateSettings, store_from_settings, store_lifetime
from proxy.telemetry import Telemetry, TelemetrySettings, start_telemetry
from proxy.vendors import VendorRegistry

_log = logging.getLogger("proxy.reload")

DEFAULT_CONFIG_NAME = "embedded default"


def embedded_default() -> dict[str, Any]:
    """The embedded default config (loopback, ClearKey, development key and seed)."""
    text = resources.files("proxy").joinpath("default.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_config(path: str | Path | None) -> tuple[dict[str, Any], Path]:
    """The raw document and its base folder; the embedded default when ``path`` is None."""
    if path is None:
        return embedded_default(), Path.cwd()
    path = Path(path)
    return load_toml(path), path.resolve().parent


async def rebuilt(build: Callable[[], Pipeline]) -> Pipeline | None:
    """A reload's fresh pipeline, built off the event loop; None when the config has errors
    or the build fails, logged here once (the running configuration stays)."""
    try:
        return await asyncio.to_thread(build)
    except ConfigError as exc:
        _log.error("reload refused, the config has errors:\n%s", exc)
    except Exception:
        _log.exception("reload failed; the running configuration stays")
    return None


def build_pipeline(
    raw: dict[str, Any],
    *,
    base_dir: Path | None = None,
    plugins: Iterable[Any] = (),
    load_entrypoints: bool = True,
    services: Services | None = None,
) -> Pipeline:
    """Validate ``raw`` completely and build the pipeline; raise :class:`ConfigError` with every mistake.

    :param plugins: extra plugin objects (tests, embedding programs), registered
        after the entry-point plugins so that their hooks run first.
    :param load_entrypoints: load the installed ``license_proxy`` plugins.
    """
    base_dir = base_dir or Path.cwd()
    core, errors = validate_core(raw, base_dir)
    host = PluginHost(
        blocked=core.plugins.blocked,
        modules=core.plugins.modules,
        plugins=plugins,
        load_entrypoints=load_entrypoints,
        keep_going=True,
    )
    errors += host.load_errors
    errors += listener_conflicts(raw)
    services = services or Services()
    registry = VendorRegistry()
    errors += host.register_vendors(registry.register)
    errors += registry.errors
    config = ConfigContext(raw=raw, core=core, base_dir=base_dir, services=services)
    config.errors.extend(errors)
    config.plugin_names = frozenset(host.plugin_names())
    config.fairplay_conventions = registry.fairplay_conventions
    # First in, so it stops last: every decision of the pipeline's life is written.
    audit = config.section("audit", AuditSettings)
    if audit is not None and _audit_file_ok(config, audit):
        services.audit = AuditLog(audit)
        config.add_cleanup_ctx(services.audit.lifetime)
    telemetry = _telemetry(config)
    state = config.section("access.state", StateSettings)
    if state is not None:
        services.state = store_from_settings(state)
        config.add_cleanup_ctx(store_lifetime(services.state))
    admin = config.section("admin", AdminConfig) if "admin" in raw else None
    config.claim("admin")
    backends = registry.configure_backends(config)
    config.backend_names = frozenset(backends) | frozenset(config.get("backends", {}) or {})
    config.backend_drm_systems = {name: b.spec.drm_systems for name, b in backends.items()}
    host.configure(config)
    host.drop_idle()
    _state_shared_by_workers(config)
    unread = "no loaded plugin reads it"
    if host.load_errors:
        unread += "; one that failed to load may"
    for path in config.unclaimed():
        hint = config_messages.unclaimed_hint(path, config.claimed).strip(" ()")
        config.error(path, f"unknown key ({unread}{'; ' + hint if hint else ''})")
    if config.errors:
        raise ConfigError(_dedupe(config.errors))
    return Pipeline(
        host=host,
        server=core.server,
        log=core.log,
        backends=backends,
        services=services,
        cleanup_contexts=config.cleanup_contexts,
        warnings=config.warnings,
        request_headers=tuple(config.request_headers),
        telemetry=telemetry,
        admin=admin,
        certificates=dict(config.certificates),
    )


#: The rules whose counts live in the state store (DESIGN.md names their sections).
STATE_RULE_SECTIONS = ("access.replay", "access.concurrency", "access.rate_limit")


def _state_shared_by_workers(config: ConfigContext) -> None:
    """Worker processes each hold their own memory: a replay, concurrency or rate rule
    counting there would count per worker, so with more than one it needs Redis."""
    workers = config.server.worker_count
    if workers < 2 or not isinstance(config.services.state, MemoryStore):
        return
    rules = [section for section in STATE_RULE_SECTIONS if config.get(section) is not None]
    if rules:
        config.error(
            "access.state.store",
            f"{', '.join(rules)} would count in each of the {workers} worker processes' "
            "own memory (server.workers): set access.state.store to a Redis URL "
            "(redis://host:6379/0) so that every worker shares one count",
        )


def _audit_file_ok(config: ConfigContext, audit: AuditSettings) -> bool:
    path = audit.file_path
    if not audit.enabled or path is None:
        return True
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        config.error("audit.file", f"the folder {folder} does not exist")
        return False
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        config.error("audit.file", f"{path} is not writable by this process")
        return False
    return True


def _telemetry(config: ConfigContext) -> Telemetry | None:
    settings = config.section("telemetry", TelemetrySettings)
    if settings is None or not settings.enabled:
        return None
    try:
        return start_telemetry(settings)
    except ImportError as exc:
        config.error("telemetry.enabled", str(exc))
        return None


def _dedupe(errors: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for error in errors:
        if error not in seen:
            seen.add(error)
            unique.append(error)
    return unique


def installed_vendors(
    raw: dict[str, Any] | None = None,
    *,
    base_dir: Path | None = None,
    plugins: Iterable[Any] = (),
    load_entrypoints: bool = True,
) -> VendorRegistry:
    """The vendors the plugins of ``raw`` register (its ``[plugins]`` section honoured),
    without building a pipeline: what the sandbox, ``license-proxy plugins`` and the
    vendor test matrix list. ``raw`` defaults to the embedded default.

    :raises ConfigError: when a plugin can't be loaded or fails to register.
    """
    raw = embedded_default() if raw is None else raw
    core, _ = validate_core(raw, base_dir or Path.cwd())
    host = PluginHost(
        blocked=core.plugins.blocked,
        modules=core.plugins.modules,
        plugins=plugins,
        load_entrypoints=load_entrypoints,
    )
    registry = VendorRegistry()
    errors = host.register_vendors(registry.register) + registry.errors
    if errors:
        raise ConfigError(errors)
    return registry
