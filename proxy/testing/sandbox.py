"""Every registered vendor's emulator on loopback, with fresh keys and a proxy config routed to them.

``license-proxy serve --sandbox`` runs this; the ``vendor_sandbox`` fixture of
:mod:`proxy.testing` hands it to tests. Each vendor package brings its part
(``VendorSpec.sandbox``, a :class:`~proxy.adapters.VendorSandbox`: fresh keys, its
emulator, its backend section), so an installed in-house vendor joins as the
built-in ones do. Each vendor gets one backend, named after it, and one policy
that a token elects with the claim ``vendor = "<name>"`` (``license-proxy token
vendor=axinom``); tokens without the claim keep the config's own policies (the
embedded default's ClearKey one).
"""

from __future__ import annotations

import asyncio
import copy
import sys
from dataclasses import dataclass, field
from typing import Any

from proxy.adapters.sandbox import VendorSandbox
from proxy.testing.emulator import RunningEmulator, start_emulator
from proxy.vendors import VendorRegistry

#: What each vendor's sandbox policy asks for, before its own tweaks: a rental with SD/HD rules.
SANDBOX_POLICY: dict[str, Any] = {
    "license": {
        "can_play": True,
        "persistent": False,
        "license_duration": "2d",
        "rental_duration": "2d",
        "playback_duration": "4h",
    },
    "tracks": {
        "SD": {"widevine_security_level": 1, "hdcp": "NONE"},
        "HD": {"widevine_security_level": 3, "hdcp": "V1", "playready_min_security_level": 3000},
    },
}


def _registered() -> VendorRegistry:
    from proxy.builder import installed_vendors

    return installed_vendors()


@dataclass
class Sandbox:
    """The registered vendors' sandboxes (fresh keys each), their emulators, and a config
    that routes to them.

    :param registry: the vendors to run; the installed ones (entry points) by default.
    """

    registry: VendorRegistry = field(default_factory=_registered)
    vendors: dict[str, VendorSandbox] = field(init=False)
    """Each vendor's part of this run, by vendor name (its keys are attributes)."""
    emulators: dict[str, RunningEmulator] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vendors = {
            name: spec.sandbox()
            for name, spec in sorted(self.registry.specs.items())
            if spec.sandbox is not None
        }

    async def start(self, host: str = "127.0.0.1") -> Sandbox:
        """Serve every vendor's emulator on ``host`` (ephemeral ports); local vendors run none."""
        try:
            for name, vendor in self.vendors.items():
                app = vendor.emulator()
                if app is not None:
                    self.emulators[name] = await start_emulator(app, host)
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        """Stop every emulator."""
        for emulator in self.emulators.values():
            await emulator.stop()
        self.emulators.clear()

    def __getitem__(self, vendor: str) -> RunningEmulator:
        return self.emulators[vendor]

    def is_local(self, vendor: str) -> bool:
        """True for a vendor that answers by itself (it runs no emulator)."""
        return vendor in self.vendors and vendor not in self.emulators

    def backend(self, vendor: str, **overrides: Any) -> dict[str, Any]:
        """The ``[backends.NAME]`` section for ``vendor``'s emulator (``overrides`` merged)."""
        emulator = self.emulators.get(vendor)
        section = self.vendors[vendor].backend(emulator.url if emulator is not None else None)
        section.update(overrides)
        return section

    def policy(self, vendor: str) -> dict[str, Any]:
        """The policy that a token with the claim ``vendor = "<vendor>"`` elects."""
        tweaked = self.vendors[vendor].policy(copy.deepcopy(SANDBOX_POLICY))
        return {
            "name": f"sandbox-{vendor.replace('_', '-')}",
            "priority": 10,
            "match": {"claims": {"vendor": vendor}},
            "backends": [vendor],
            **tweaked,
        }

    def config(self, base: dict[str, Any]) -> dict[str, Any]:
        """``base`` plus one backend per vendor and one policy electing each by claim.

        A backend of the vendor's name in ``base`` is replaced (the sandbox is for
        trying vendors with no account), except a local vendor's: it needs no account.
        """
        config = copy.deepcopy(base)
        backends = config.setdefault("backends", {})
        policies = config.setdefault("policies", [])
        for vendor in self.vendors:
            if not (self.is_local(vendor) and vendor in backends):
                backends[vendor] = self.backend(vendor)
            policies.append(self.policy(vendor))
        return config

    def describe(self) -> str:
        """What a developer needs to know, for the console."""
        lines = ["vendor emulators on loopback:"]
        for vendor in self.vendors:
            emulator = self.emulators.get(vendor)
            where = emulator.url if emulator is not None else "local: no emulator"
            lines.append(f"  {vendor:<15} {where}")
        lines.append("elect one with a token claim, e.g.: license-proxy token vendor=axinom")
        return "\n".join(lines)


async def _serve(
    raw: dict[str, Any],
    base_dir: Any,
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> int:
    from proxy.builder import build_pipeline, installed_vendors, load_config
    from proxy.errors import ConfigError
    from proxy.overrides import with_overrides
    from proxy.pipeline import Pipeline
    from proxy.server import ProxyApp

    try:
        registry = installed_vendors(raw, base_dir=base_dir)
    except ConfigError as exc:
        for path, message in exc.errors:
            print(f"{path}: {message}", file=sys.stderr)
        return 2
    sandbox = await Sandbox(registry).start()
    try:
        try:
            pipeline = build_pipeline(sandbox.config(raw), base_dir=base_dir)
        except ConfigError as exc:
            print(f"sandbox config: {len(exc.errors)} error(s)", file=sys.stderr)
            for path, message in exc.errors:
                print(f"  {path}: {message}", file=sys.stderr)
            return 2
        server = pipeline.server
        if not (server.grpc.is_loopback and server.http.is_loopback):
            print("--sandbox serves on loopback listeners only", file=sys.stderr)
            return 2
        print(sandbox.describe(), file=sys.stderr, flush=True)

        def rebuild() -> Pipeline:
            # SIGHUP: the file read again, routed to the same running emulators.
            fresh, fresh_base = load_config(config) if config is not None else (raw, base_dir)
            fresh = with_overrides(fresh, overrides or {})
            return build_pipeline(sandbox.config(fresh), base_dir=fresh_base)

        await ProxyApp(pipeline, rebuild=rebuild).serve_forever()
    finally:
        await sandbox.stop()
    return 0


def serve_sandbox(config: str | None, overrides: dict[str, Any] | None = None) -> int:
    """``license-proxy serve --sandbox``: the emulators, then the proxy routed to them, until
    SIGTERM (``overrides``: the ``[server]`` settings the command line gives)."""
    from proxy.builder import load_config
    from proxy.errors import ConfigError
    from proxy.logs import setup_logging
    from proxy.overrides import with_overrides

    try:
        raw, base_dir = load_config(config)
        raw = with_overrides(raw, overrides or {})
    except ConfigError as exc:
        for path, message in exc.errors:
            print(f"{path}: {message}", file=sys.stderr)
        return 2
    log = raw.get("log", {}) if isinstance(raw.get("log"), dict) else {}
    setup_logging(str(log.get("level", "INFO")), str(log.get("format", "text")))
    try:
        return asyncio.run(_serve(raw, base_dir, config, overrides))
    except OSError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
